"""What a generator does around each call beside generating: hooks, tracing, cache, limits, log.

All opt-in. A generator with none of them on (the default) takes the plain path: one check per
call, nothing imported, nothing recorded.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from muse_sdk.errors import InvalidConfigError

__all__ = ["FEATURE_KEYS", "FeatureSettings", "Features", "env_flag"]

#: Profile keys (and ``muse.load`` arguments) that configure features, not the provider.
FEATURE_KEYS = ("hooks", "cache", "cache_sampled", "rpm", "tpm", "log", "tracing", "trace_content")


class FeatureSettings(BaseModel):
    """A profile's features, as written in ``muse.toml`` or passed to ``muse.load``."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    #: Callables, or ``"package.module:function"`` strings in a config file.
    hooks: tuple[Any, ...] = ()
    #: ``"memory"``, ``"sqlite:PATH"`` or an object with ``get``/``set``.
    cache: Any = None
    #: Cache sampled replies too (``temperature > 0`` without a ``seed``).
    cache_sampled: bool = False
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    #: Record every call in the SQLite log (``MUSE_LOG`` overrides).
    log: bool | None = None
    #: Emit OpenTelemetry spans when the application configured a tracer provider.
    tracing: bool = True
    #: Record prompt and completion text on spans (off: they may hold personal data).
    trace_content: bool = False

    @field_validator("hooks", mode="before")
    @classmethod
    def _hook_list(cls, value: Any) -> Any:
        if value is None:
            return ()
        return (value,) if callable(value) or isinstance(value, str) else value


@dataclass(frozen=True)
class Features:
    """A generator's features, ready to use (hooks imported, cache and limiter built)."""

    hooks: tuple[Callable[[Any], Any], ...] = ()
    cache: Any = None
    cache_sampled: bool = False
    limiter: Any = None
    log: bool | None = None
    tracing: bool = True
    trace_content: bool = False
    profile: str | None = None

    @classmethod
    def build(cls, settings: FeatureSettings, profile: str | None) -> Features:
        """Resolve hook strings, open the cache, share the profile's rate limiter."""
        limiter = None
        if settings.rpm is not None or settings.tpm is not None:
            from muse_sdk.ratelimit import limiter_for

            limiter = limiter_for(profile or "", settings.rpm, settings.tpm)
        cache = None
        if settings.cache is not None and settings.cache is not False:
            from muse_sdk.cache import cache_from

            cache = cache_from(settings.cache)
        return cls(
            hooks=tuple(_hook(h) for h in settings.hooks),
            cache=cache,
            cache_sampled=settings.cache_sampled,
            limiter=limiter,
            log=settings.log,
            tracing=settings.tracing,
            trace_content=settings.trace_content,
            profile=profile,
        )

    @property
    def logging_on(self) -> bool:
        """Whether calls are logged: ``MUSE_LOG`` if set, else the profile's ``log``."""
        if not self.log and "MUSE_LOG" not in os.environ:
            return False  # the common case, decided without importing the log
        from muse_sdk.calllog import log_enabled

        return log_enabled(self.log)

    @property
    def tracing_on(self) -> bool:
        """Whether spans may be emitted: ``MUSE_TRACING=0`` turns them off everywhere."""
        return self.tracing and env_flag("MUSE_TRACING") is not False


def env_flag(name: str, env: Mapping[str, str] | None = None) -> bool | None:
    """``True``/``False`` for ``1/true/yes/on`` and ``0/false/no/off``; ``None`` when unset."""
    value = (env if env is not None else os.environ).get(name)
    if value is None or not value.strip():
        return None
    return value.strip().lower() not in ("0", "false", "no", "off")


def _hook(hook: Any) -> Callable[[Any], Any]:
    if callable(hook):
        return hook  # type: ignore[no-any-return]
    if isinstance(hook, str) and ":" in hook:
        module, _, name = hook.partition(":")
        try:
            found = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise InvalidConfigError(f"cannot import hook {hook!r}: {exc}", field="hooks") from exc
        if callable(found):
            return found  # type: ignore[no-any-return]
    raise InvalidConfigError(
        f"a hook must be a callable or a 'package.module:function' string, got {hook!r}",
        field="hooks",
    )
