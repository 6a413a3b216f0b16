"""Configuration: profiles from a TOML file, the environment and keyword arguments.

Precedence, highest first: explicit arguments to ``muse.load()`` > environment (``MUSE_MODEL``,
``MUSE_PROFILE``) > the config file's ``default`` > the built-in default (the shipped tiny model).
The file is ``MUSE_CONFIG``, else ``./muse.toml``, else ``<user config dir>/muse/muse.toml``.

A profile table mixes three kinds of keys, told apart here so that providers never leak into the
core: ``provider``/``model``/``retry``/``fallbacks``; default generation parameters
(``temperature``, ``max_tokens``, ``timeout``, ...); and the provider's own settings, validated by
that provider's ``Settings`` model.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializeAsAny, ValidationError

from muse_sdk.core.features import FEATURE_KEYS, FeatureSettings
from muse_sdk.core.settings import ProviderSettings
from muse_sdk.core.types import GenerationParams
from muse_sdk.errors import InvalidConfigError, did_you_mean
from muse_sdk.registry import get_provider, provider_names
from muse_sdk.retry import RetrySettings

__all__ = ["DEFAULT_MODEL", "Config", "Profile", "Profiles", "config_path", "parse_model"]

DEFAULT_MODEL = "local:muse-tiny"
_TOP_KEYS = ("default", "log", "prices", "profiles")
ENV_CONFIG, ENV_MODEL, ENV_PROFILE = "MUSE_CONFIG", "MUSE_MODEL", "MUSE_PROFILE"
CORE_KEYS = ("provider", "model", "retry", "fallbacks")
KWARGS_SOURCE = "muse.load() arguments"


def parse_model(spec: str) -> tuple[str, str]:
    """Split ``"provider:model"``; the model part may itself contain colons."""
    provider, sep, model = spec.partition(":")
    if not sep or not provider or not model:
        raise InvalidConfigError(
            f"{spec!r} is not of the form 'provider:model' (e.g. 'openai:gpt-4o-mini', "
            f"'local:muse-tiny'); known providers: {', '.join(provider_names())}",
            field="model",
        )
    return provider, model


class Profile(BaseModel):
    """One validated profile: which provider and model, with which defaults and settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    provider: str
    model: str
    params: GenerationParams = GenerationParams()
    retry: RetrySettings = RetrySettings()
    fallbacks: tuple[str, ...] = ()
    settings: SerializeAsAny[ProviderSettings] = ProviderSettings()
    #: Hooks, tracing, cache, rate limits and the call log.
    features: FeatureSettings = FeatureSettings()

    @classmethod
    def from_table(
        cls, table: Mapping[str, Any], *, name: str | None = None, source: str | None = None
    ) -> Profile:
        """Validate a profile table; errors name the source, the profile and the field."""

        def fail(message: str, field: str | None) -> InvalidConfigError:
            return InvalidConfigError(message, source=source, profile=name, field=field)

        for key in ("provider", "model"):
            if not isinstance(table.get(key), str) or not table[key]:
                raise fail(f"'{key}' is required and must be a non-empty string", key)
        provider_cls = get_provider(table["provider"])
        params = {k: v for k, v in table.items() if k in GenerationParams.model_fields}
        features = {k: v for k, v in table.items() if k in FEATURE_KEYS}
        own = {
            k: v
            for k, v in table.items()
            if k not in params and k not in CORE_KEYS and k not in features
        }
        known = [
            *CORE_KEYS,
            *GenerationParams.model_fields,
            *FEATURE_KEYS,
            *provider_cls.Settings.model_fields,
        ]
        for key in own:
            if key not in provider_cls.Settings.model_fields:
                raise fail(
                    f"unknown key {key!r}{did_you_mean(key, known)} for provider "
                    f"{table['provider']!r}; known keys: {', '.join(known)}",
                    key,
                )
        try:
            return cls(
                name=name,
                provider=table["provider"],
                model=table["model"],
                params=_validated(GenerationParams, params, "", fail),
                retry=_validated(RetrySettings, table.get("retry") or {}, "retry.", fail),
                fallbacks=_fallbacks(table.get("fallbacks", ()), fail),
                settings=_validated(provider_cls.Settings, own, "", fail),
                features=_validated(FeatureSettings, features, "", fail),
            )
        except ValidationError as exc:  # pragma: no cover - every part was validated above
            raise fail(str(exc), None) from exc


def _validated(model: type[Any], data: Any, prefix: str, fail: Any) -> Any:
    if not isinstance(data, Mapping):
        raise fail(f"must be a table, got {type(data).__name__}", prefix.rstrip(".") or None)
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = prefix + ".".join(str(p) for p in err["loc"])
        if not (err["loc"] and _is_secret(model, str(err["loc"][0]))):
            got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
            raise fail(f"{err['msg']}{got}", field) from exc
    # Raised outside the handler: pydantic's error quotes the value, so it may not even be the
    # context of this one.
    raise fail(f"{err['msg']} (the value is a secret and is not shown)", field)


_SECRET_NAMES = ("key", "token", "secret", "password")


def _is_secret(model: type[Any], name: str) -> bool:
    """Whether a settings field holds a secret: a ``SecretStr``, or a key-like name."""
    info = getattr(model, "model_fields", {}).get(name)
    if info is not None and "Secret" in str(info.annotation):
        return True
    return name.endswith(_SECRET_NAMES) and not name.endswith("_env")


def _fallbacks(value: Any, fail: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise fail("must be a list of profile names or 'provider:model' strings", "fallbacks")
    return tuple(value)


def config_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The config file in use: ``MUSE_CONFIG``, ``./muse.toml`` or the user's, if any exists."""
    env = os.environ if env is None else env
    if env.get(ENV_CONFIG):
        path = Path(env[ENV_CONFIG]).expanduser()
        if not path.is_file():
            raise InvalidConfigError(
                f"{ENV_CONFIG} points at {str(path)!r}, which is not a file: "
                "fix the path or unset it"
            )
        return path
    for candidate in (Path("muse.toml"), _user_config_dir(env) / "muse" / "muse.toml"):
        if candidate.is_file():
            return candidate
    return None


def _user_config_dir(env: Mapping[str, str]) -> Path:
    if sys.platform == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"])
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")


class Profiles(Mapping[str, Profile]):
    """A config's profiles by name, each validated when first read.

    Names, ``in`` and ``len`` never validate; ``profiles[name]`` validates that profile only (and
    raises its :class:`InvalidConfigError`), so one broken profile never breaks the others.
    """

    def __init__(self, tables: Mapping[str, Mapping[str, Any]], source: str | None) -> None:
        self._tables = tables
        self._source = source
        self._valid: dict[str, Profile] = {}

    def __getitem__(self, name: str) -> Profile:
        if name not in self._valid:
            table = self._tables[name]
            self._valid[name] = Profile.from_table(table, name=name, source=self._source)
        return self._valid[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tables  # Mapping's default would validate the profile

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def __repr__(self) -> str:
        return f"Profiles({list(self._tables)!r})"


class Config:
    """A parsed config file (or mapping): a default and named profile tables.

    The file's shape is checked when it is read; each profile, and the ``default`` reference,
    only when used, so that one broken profile breaks only the loads that use it.
    """

    def __init__(
        self,
        profiles: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        default: str | None = None,
        source: str | None = None,
        log: bool | None = None,
        prices: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self.source = source
        self.default = default
        #: ``log = true``: record every call of every profile (``MUSE_LOG`` overrides).
        self.log = log
        #: ``[prices."provider:model"]``: prices that extend or override the shipped table.
        self.prices = dict(prices or {})
        self.tables = {name: dict(table) for name, table in (profiles or {}).items()}
        self.profiles = Profiles(self.tables, source)

    def __repr__(self) -> str:
        names = list(self.tables)
        return f"Config(source={self.source!r}, default={self.default!r}, profiles={names})"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str | None = None) -> Config:
        """Build from a parsed TOML document or an equivalent dict."""
        unknown = set(data) - set(_TOP_KEYS)
        if unknown:
            key = sorted(unknown)[0]
            raise InvalidConfigError(
                f"unknown top-level key {key!r}{did_you_mean(key, _TOP_KEYS)}; a config has "
                "'default', 'log', [prices] and [profiles.NAME] tables",
                source=source,
                field=key,
            )
        profiles, default = data.get("profiles", {}), data.get("default")
        if not isinstance(profiles, Mapping) or not all(
            isinstance(t, Mapping) for t in profiles.values()
        ):
            raise InvalidConfigError(
                "'profiles' must hold tables ([profiles.NAME])", source=source, field="profiles"
            )
        if default is not None and not isinstance(default, str):
            raise InvalidConfigError("'default' must be a string", source=source, field="default")
        log, prices = data.get("log"), data.get("prices", {})
        if log is not None and not isinstance(log, bool):
            raise InvalidConfigError("'log' must be true or false", source=source, field="log")
        if not isinstance(prices, Mapping):
            raise InvalidConfigError(
                "'prices' must hold tables ([prices.\"provider:model\"])",
                source=source,
                field="prices",
            )
        return cls(profiles, default=default, source=source, log=log, prices=prices)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Config:
        """Read a TOML config file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except FileNotFoundError as exc:
            raise InvalidConfigError(f"config file {str(path)!r} does not exist") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidConfigError(f"not valid TOML: {exc}", source=str(path)) from exc
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def discover(cls, env: Mapping[str, str] | None = None) -> Config:
        """The config in use (see :func:`config_path`), or an empty one."""
        path = config_path(env)
        return cls.from_file(path) if path is not None else cls()

    @classmethod
    def coerce(cls, value: Config | Mapping[str, Any] | str | os.PathLike[str] | None) -> Config:
        """Accept a Config, a mapping, a file path, or ``None`` (discover)."""
        if value is None:
            return cls.discover()
        if isinstance(value, Config):
            return value
        if isinstance(value, Mapping):
            return cls.from_mapping(value, source="<mapping>")
        return cls.from_file(value)

    def table_for(
        self, model: str | None, profile: str | None, env: Mapping[str, str] | None = None
    ) -> tuple[str | None, dict[str, Any]]:
        """Pick the profile table by precedence; return its name (if any) and a copy."""
        env = os.environ if env is None else env
        if model is None and profile is None:
            model = env.get(ENV_MODEL) or None
            if model is None:
                profile = env.get(ENV_PROFILE) or self.default_spec()
        if profile is not None and profile not in self.tables and ":" in profile:
            model, profile = profile, None
        if model is not None and ":" not in model and profile is None:
            model, profile = None, model
        table = self._profile_table(profile) if profile is not None else {}
        if model is not None:
            provider, model_name = parse_model(model)
            if table and table["provider"] != provider:
                raise InvalidConfigError(
                    f"model {model!r} is for provider {provider!r}, but the profile uses "
                    f"{table['provider']!r}: pass one or the other",
                    source=self.source,
                    profile=profile,
                    field="model",
                )
            table.update(provider=provider, model=model_name)
        return profile, table

    def default_spec(self) -> str:
        """The file's ``default`` (checked now that it is used), else the built-in default."""
        default = self.default
        if default is None:
            return DEFAULT_MODEL
        if ":" not in default and default not in self.tables:
            raise InvalidConfigError(
                f"default profile {default!r} is not defined{did_you_mean(default, self.tables)}",
                source=self.source,
                field="default",
            )
        return default

    def _profile_table(self, name: str) -> dict[str, Any]:
        if name in self.tables:
            return dict(self.tables[name])
        where = f" in {self.source}" if self.source else " (no config file found)"
        hint = did_you_mean(name, self.profiles)
        if name in provider_names():
            hint = f"; to use the provider directly, write '{name}:MODEL'"
        elif not hint:  # perhaps a model name without its provider, such as "gpt2"
            import difflib

            from muse_sdk.models import known_model_names  # reads the HF cache: errors only

            close = difflib.get_close_matches(name, known_model_names(), n=1, cutoff=0.75)
            if close and close[0] == name:
                hint = f"; to run the local model, write 'local:{name}'"
            elif close:
                hint = f" (did you mean 'local:{close[0]}'?)"
            else:
                hint = "; for a model, name its provider too: 'local:gpt2', 'openai:gpt-4o-mini'"
        raise InvalidConfigError(f"no profile named {name!r}{where}{hint}", field="profile")
