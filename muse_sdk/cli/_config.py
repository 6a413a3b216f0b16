"""``muse config check``: what is wrong with the config file and the environment.

Every problem is one ``✗`` line and counts toward the verdict; any problem exits with 2. A file
that does not parse gets no ``✓`` at all: nothing in it can be checked.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from muse_sdk.cli._errors import ExitCode
from muse_sdk.cli._help import MuseCommand, PlainFlagsGroup

if TYPE_CHECKING:
    from rich.console import Console

    from muse_sdk.config import Config, Profile

__all__ = ["config_app", "config_file", "default_source", "stdout_console"]

config_app = typer.Typer(
    cls=PlainFlagsGroup, help="Inspect the configuration.", no_args_is_help=True
)
#: API-key variables always reported, beside those the profiles name.
KNOWN_KEY_VARS = ("OPENAI_API_KEY",)
MUSE_VARS = ("MUSE_CONFIG", "MUSE_MODEL", "MUSE_PROFILE")
TOP_LEVEL_KEYS = ("default", "profiles")
#: A profile's verdict: the validated profile, or ``None`` when it is invalid.
Checked = Mapping[str, "Profile | None"]


def stdout_console() -> Console:
    """A console on stdout that never reads markup into what it prints."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def config_file(ctx: typer.Context) -> Path | None:
    """The config file in use: ``--config``, else the one ``muse.load()`` would find."""
    from muse_sdk.config import config_path

    given: Path | None = (ctx.obj or {}).get("config")
    return given if given is not None else config_path()


def default_source(cfg: Config) -> tuple[str, str]:
    """What ``muse.load()`` with no arguments picks, and why."""
    from muse_sdk.config import DEFAULT_MODEL, ENV_MODEL, ENV_PROFILE

    for var in (ENV_MODEL, ENV_PROFILE):
        if os.environ.get(var):
            return os.environ[var], f"${var}"
    if cfg.default is not None:
        return cfg.default, f"'default' in {cfg.source}"
    return DEFAULT_MODEL, "built-in default"


def _good(console: Console, message: str) -> None:
    console.print(f"✓ {message}", markup=False)


def _bad(console: Console, message: str) -> int:
    console.print(f"✗ {message}", markup=False)
    return 1


@config_app.command("check", cls=MuseCommand)
def check(ctx: typer.Context) -> None:
    """Validate the config file and the environment; exit 2 when something is wrong.

    Says which file is used, whether each profile and fallback is valid (or its exact error),
    what muse.load() would pick, and which API-key variables are set or missing. Key values
    are never printed.
    """
    from muse_sdk.errors import MuseError

    console = stdout_console()
    try:
        path = config_file(ctx)
    except MuseError as exc:  # a bad MUSE_CONFIG
        _verdict(console, _bad(console, f"config file: {exc}"))
        return
    console.print(f"config file: {path or 'none (built-in defaults)'}", markup=False)
    data, problems = _read(path, console)
    if data is None:
        console.print("  profiles, default and API keys are checked once it parses", markup=False)
        _verdict(console, problems)
        return
    profiles = _check_profiles(data["profiles"], path, console)
    problems += sum(1 for profile in profiles.values() if profile is None)
    problems += _check_fallbacks(profiles, console)
    problems += _check_default(data, profiles, path, console)
    problems += _check_keys(profiles, console)
    _check_muse_vars(console)
    _verdict(console, problems)


def _verdict(console: Console, problems: int) -> None:
    if not problems:
        console.print("everything looks fine", markup=False)
        return
    console.print(f"{problems} problem{'s' if problems > 1 else ''} found", markup=False)
    raise typer.Exit(ExitCode.USAGE)


def _read(path: Path | None, console: Console) -> tuple[dict[str, Any] | None, int]:
    """The file's ``default`` and ``profiles``, and its problems; ``None`` if it does not parse."""
    from muse_sdk.errors import did_you_mean

    if path is None:
        return {"profiles": {}}, 0
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return None, _bad(console, f"{path}: cannot be read as TOML: {exc}")
    problems = 0
    for key in sorted(set(data) - set(TOP_LEVEL_KEYS)):
        hint = did_you_mean(key, TOP_LEVEL_KEYS)
        problems += _bad(
            console,
            f"unknown top-level key {key!r}{hint}: a config has 'default' and [profiles.NAME]",
        )
    if not isinstance(data.get("profiles", {}), Mapping):
        problems += _bad(console, "'profiles' must hold tables ([profiles.NAME])")
        data["profiles"] = {}
    return {"profiles": {}, **{k: v for k, v in data.items() if k in TOP_LEVEL_KEYS}}, problems


def _check_profiles(tables: Mapping[str, Any], path: Path | None, console: Console) -> Checked:
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
            _bad(console, f"profile {name!r}: {exc}")
            checked[name] = None
        else:
            _good(console, f"profile {name!r}: {profile.provider}:{profile.model}")
            checked[name] = profile
    return checked


def _check_fallbacks(profiles: Checked, console: Console) -> int:
    """A profile loads with its whole chain: each fallback must load too."""
    problems = 0
    for name, profile in profiles.items():
        for member in profile.fallbacks if profile is not None else ():
            why = _fallback_problem(member, profiles)
            if why:
                problems += _bad(console, f"profile {name!r}: fallback {member!r} {why}")
    return problems


def _fallback_problem(member: str, profiles: Checked) -> str | None:
    from muse_sdk.config import Profile, parse_model
    from muse_sdk.errors import MuseError, did_you_mean

    if member in profiles:
        return None if profiles[member] is not None else "is an invalid profile (see above)"
    if ":" not in member:
        return f"is neither a profile{did_you_mean(member, profiles)} nor a 'provider:model'"
    try:
        provider, model = parse_model(member)
        Profile.from_table({"provider": provider, "model": model})
    except MuseError as exc:
        return f"cannot be loaded: {exc}"
    return None


def _check_default(
    data: Mapping[str, Any], profiles: Checked, path: Path | None, console: Console
) -> int:
    """Check what ``muse.load()`` with no arguments would pick."""
    from muse_sdk.config import Config, Profile
    from muse_sdk.errors import MuseError

    tables = {name: table for name, table in data["profiles"].items() if profiles.get(name)}
    source = str(path) if path is not None else None
    try:
        cfg = Config.from_mapping({**data, "profiles": tables}, source=source)
        choice, why = default_source(cfg)
        if choice in profiles and profiles[choice] is None:
            raise ValueError(f"the default profile {choice!r} is invalid (see above)")
        name, table = cfg.table_for(None, None)
        if name is None:  # a 'provider:model' default: nothing validated it yet
            Profile.from_table(table, source=cfg.source)
    except (MuseError, ValueError) as exc:
        return _bad(console, f"default: {exc}")
    _good(console, f"default: {choice} ({why})")
    return 0


def _check_keys(profiles: Checked, console: Console) -> int:
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
            _good(console, f"{var} is set{used_by}")
        elif users:
            problems += _bad(console, f"{var} is missing{used_by}: export {var}=...")
        else:
            console.print(f"  {var} is not set (no profile needs it)", markup=False)
    return problems


def _check_muse_vars(console: Console) -> None:
    for var in MUSE_VARS:
        value = os.environ.get(var)
        if value:
            console.print(f"  ${var} = {value}", markup=False)
