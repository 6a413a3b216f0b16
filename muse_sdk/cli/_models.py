"""``muse models``: the providers, the model names muse knows, and the configured profiles."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from muse_sdk.cli._config import config_file, default_source, stdout_console
from muse_sdk.cli._errors import report_error

if TYPE_CHECKING:
    from rich.console import Console

    from muse_sdk.config import Config

__all__ = ["models"]


def models(ctx: typer.Context) -> None:
    """List the providers, the local model names and the profiles, marking the default.

    A profile that does not validate is listed as invalid; 'muse config check' says why.
    """
    from rich.markup import escape
    from rich.table import Table

    from muse_sdk.config import Config
    from muse_sdk.models import known_model_names
    from muse_sdk.registry import BUILTIN_PROVIDERS, provider_names

    path = config_file(ctx)
    cfg = Config.from_file(path) if path is not None else Config()
    default, why = default_source(cfg)
    console = stdout_console()
    providers = Table("provider", "from", title="Providers (use -m provider:model)")
    for name in provider_names():
        providers.add_row(escape(name), "built in" if name in BUILTIN_PROVIDERS else "plugin")
    console.print(providers)
    names = Table("model", title="Local models muse knows (use -m local:NAME)")
    for name in known_model_names():
        names.add_row(escape(name))
    console.print(names)
    invalid = _print_profiles(cfg, default, path, console)
    missing = "" if ":" in default or default in cfg.tables else "; no such profile"
    console.print(f"default: {default} ({why}{missing})", markup=False)
    if invalid:
        noun = "profile is" if invalid == 1 else "profiles are"
        report_error(f"{invalid} {noun} invalid: 'muse config check' says why", kind="warning")


def _print_profiles(cfg: Config, default: str, path: Path | None, console: Console) -> int:
    """Print the profiles table (if any); return how many profiles are invalid."""
    from rich.markup import escape
    from rich.table import Table

    from muse_sdk.errors import MuseError

    if not cfg.tables:
        return 0
    table = Table("profile", "model", "", title=escape(f"Profiles ({path})"))
    invalid = 0
    for name, raw in cfg.tables.items():
        marks = ["default"] if name == default else []
        try:
            profile = cfg.profiles[name]
            spec = f"{profile.provider}:{profile.model}"
        except MuseError as exc:  # validated one by one, so that one error hides no other
            invalid += 1
            spec = f"{raw.get('provider', '?')}:{raw.get('model', '?')}"
            field = getattr(exc, "field", None)
            marks.append(f"invalid ({field})" if field else "invalid")
        table.add_row(escape(name), escape(spec), escape(", ".join(marks)))
    console.print(table)
    return invalid
