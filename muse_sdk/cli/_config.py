"""``muse models`` and ``muse config check``: what can run, and what is wrong with the config."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from muse_sdk.cli._errors import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from muse_sdk.config import Config, Profile

__all__ = ["config_app", "models"]

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
#: API-key variables always reported, beside those the profiles name.
KNOWN_KEY_VARS = ("OPENAI_API_KEY",)
MUSE_VARS = ("MUSE_CONFIG", "MUSE_MODEL", "MUSE_PROFILE")


def _stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _config_file(ctx: typer.Context) -> Path | None:
    from muse_sdk.config import config_path

    given: Path | None = (ctx.obj or {}).get("config")
    return given if given is not None else config_path()


def _default_source(cfg: Config) -> tuple[str, str]:
    """What ``muse.load()`` with no arguments picks, and why."""
    from muse_sdk.config import DEFAULT_MODEL, ENV_MODEL, ENV_PROFILE

    for var in (ENV_MODEL, ENV_PROFILE):
        if os.environ.get(var):
            return os.environ[var], f"${var}"
    if cfg.default is not None:
        return cfg.default, f"'default' in {cfg.source}"
    return DEFAULT_MODEL, "built-in default"


def models(ctx: typer.Context) -> None:
    """List the providers and the configured profiles, marking the default."""
    from rich.table import Table

    from muse_sdk.config import Config
    from muse_sdk.registry import BUILTIN_PROVIDERS, provider_names

    path = _config_file(ctx)
    cfg = Config.from_file(path) if path is not None else Config()
    default, why = _default_source(cfg)
    console = _stdout()
    providers = Table("provider", "from", title="Providers (use -m provider:model)")
    for name in provider_names():
        providers.add_row(name, "built in" if name in BUILTIN_PROVIDERS else "plugin")
    console.print(providers)
    profiles = Table("profile", "model", "", title=f"Profiles ({path or 'no config file'})")
    for name, profile in cfg.profiles.items():
        mark = "default" if name == default else ""
        profiles.add_row(name, f"{profile.provider}:{profile.model}", mark)
    if cfg.profiles:
        console.print(profiles)
    console.print(f"default: {default} ({why})", markup=False)


@config_app.command("check")
def check(ctx: typer.Context) -> None:
    """Validate the config file and the environment; exit 2 when something is wrong.

    Says which file is used, whether each profile is valid (or its exact error), and which API-key
    variables are set or missing. Key values are never printed.
    """
    console = _stdout()
    problems = 0
    try:
        path = _config_file(ctx)
    except Exception as exc:  # a bad MUSE_CONFIG: report it like any other problem
        console.print(f"✗ config file: {exc}", markup=False)
        raise typer.Exit(ExitCode.USAGE) from None
    console.print(f"config file: {path or 'none (built-in defaults)'}", markup=False)
    data, problems = _read(path, console)
    profiles = _check_profiles(data.get("profiles", {}), path, console)
    problems += sum(1 for profile in profiles.values() if profile is None)
    problems += _check_default(data, profiles, path, console)
    problems += _check_keys(profiles, console)
    _check_muse_vars(console)
    if problems:
        console.print(f"{problems} problem(s) found", markup=False)
        raise typer.Exit(ExitCode.USAGE)
    console.print("everything looks fine", markup=False)


def _read(path: Path | None, console: Console) -> tuple[dict[str, Any], int]:
    if path is None:
        return {}, 0
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        console.print(f"✗ {path}: cannot be read as TOML: {exc}", markup=False)
        return {}, 1
    unknown = sorted(set(data) - {"default", "profiles"})
    for key in unknown:
        console.print(
            f"✗ unknown top-level key {key!r}: a config has 'default' and [profiles.NAME]",
            markup=False,
        )
    if not isinstance(data.get("profiles", {}), Mapping):
        console.print("✗ 'profiles' must hold tables ([profiles.NAME])", markup=False)
        data["profiles"] = {}
        unknown.append("profiles")
    return data, len(unknown)


def _check_profiles(
    tables: Mapping[str, Any], path: Path | None, console: Console
) -> dict[str, Profile | None]:
    """Validate each profile on its own, so that one error does not hide the others."""
    from muse_sdk.config import Profile
    from muse_sdk.errors import MuseError

    checked: dict[str, Profile | None] = {}
    for name, table in tables.items():
        try:
            if not isinstance(table, Mapping):
                raise TypeError("must be a table ([profiles.NAME])")
            profile = Profile.from_table(table, name=name, source=str(path))
        except (MuseError, TypeError) as exc:
            console.print(f"✗ profile {name!r}: {exc}", markup=False)
            checked[name] = None
        else:
            console.print(f"✓ profile {name!r}: {profile.provider}:{profile.model}", markup=False)
            checked[name] = profile
    return checked


def _check_default(
    data: Mapping[str, Any], valid: Mapping[str, Any], path: Path | None, console: Console
) -> int:
    """Check what ``muse.load()`` would pick with no arguments (valid profiles only)."""
    from muse_sdk.config import Config, Profile
    from muse_sdk.errors import MuseError

    tables = {name: data["profiles"][name] for name, profile in valid.items() if profile}
    source = str(path) if path is not None else None
    try:
        default = data.get("default")
        if isinstance(default, str) and default in valid and valid[default] is None:
            raise ValueError(f"the default profile {default!r} is invalid (see above)")
        kept = {"default": default} if default is not None else {}
        cfg = Config.from_mapping({**kept, "profiles": tables}, source=source)
        choice, why = _default_source(cfg)
        name, table = cfg.table_for(None, None)
        Profile.from_table(table, name=name, source=cfg.source)
    except (MuseError, ValueError) as exc:
        console.print(f"✗ default: {exc}", markup=False)
        return 1
    console.print(f"✓ default: {choice} ({why})", markup=False)
    return 0


def _check_keys(profiles: Mapping[str, Profile | None], console: Console) -> int:
    """Report each API-key variable as set or missing; a profile's missing key is a problem."""
    needed: dict[str, list[str]] = {var: [] for var in KNOWN_KEY_VARS}
    for name, profile in profiles.items():
        settings = profile.settings if profile is not None else None
        var = getattr(settings, "api_key_env", None)
        if getattr(settings, "api_key", None) is not None:
            console.print(f"  profile {name!r} holds its API key in the file", markup=False)
        elif isinstance(var, str) and var:
            needed.setdefault(var, []).append(name)
    problems = 0
    for var, users in needed.items():
        used_by = f" (used by {', '.join(map(repr, users))})" if users else ""
        if os.environ.get(var, "").strip():
            console.print(f"✓ {var} is set{used_by}", markup=False)
        elif users:
            console.print(f"✗ {var} is missing{used_by}: export {var}=...", markup=False)
            problems += 1
        else:
            console.print(f"  {var} is not set (no profile needs it)", markup=False)
    return problems


def _check_muse_vars(console: Console) -> None:
    for var in MUSE_VARS:
        value = os.environ.get(var)
        if value:
            console.print(f"  ${var} = {value}", markup=False)
