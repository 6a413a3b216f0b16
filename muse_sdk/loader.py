"""``muse.load()``: from a name, a profile or nothing at all to a ready ``Generator``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from muse_sdk.config import KWARGS_SOURCE, Config, Profile
from muse_sdk.core.features import Features, FeatureSettings
from muse_sdk.core.generator import Generator
from muse_sdk.errors import InvalidConfigError
from muse_sdk.registry import get_provider
from muse_sdk.retry import RetryPolicy, RetrySettings

__all__ = ["build", "load"]

_NO_FEATURES = FeatureSettings()
#: Feature overrides of ``muse.load`` that the fallbacks get too (rate limits stay per profile).
_CHAIN_FEATURES = ("hooks", "tracing", "trace_content", "log", "cache", "cache_sampled")
ConfigInput = Config | Mapping[str, Any] | str | os.PathLike[str] | None


def load(
    model: str | None = None,
    /,
    *,
    profile: str | None = None,
    config: ConfigInput = None,
    **overrides: Any,
) -> Generator:
    """Return a generator for ``"provider:model"``, a named profile, or the configured default.

    ``overrides`` replace profile keys: provider settings (``base_url``, ``api_key``, ``device``),
    default parameters (``temperature``, ``max_tokens``, ``timeout``), ``retry`` (a table, a
    max-attempts count or a :class:`RetryPolicy`), ``fallbacks`` (profile names,
    ``"provider:model"`` strings or ready generators, tried in order when the primary is down)
    and features (``hooks``, ``cache``, ``rpm``, ``tpm``, ``log``, ``tracing``; all but the rate
    limits apply to the fallbacks named here too).
    """
    cfg = Config.coerce(config)
    fallbacks = overrides.pop("fallbacks", None)
    primary, profile_fallbacks = _load_one(cfg, model, profile, overrides)
    chain: Sequence[str | Generator] = profile_fallbacks if fallbacks is None else fallbacks
    if isinstance(chain, str | Generator):
        chain = [chain]
    if not chain:
        return primary
    from muse_sdk.fallback import FallbackGenerator

    # Hooks, tracing, the log and the cache given here watch the whole chain, not just its head.
    shared = {k: v for k, v in overrides.items() if k in _CHAIN_FEATURES}
    members = [m if isinstance(m, Generator) else _load_one(cfg, m, None, shared)[0] for m in chain]
    return FallbackGenerator([primary, *members])


def _load_one(
    cfg: Config, model: str | None, profile: str | None, overrides: dict[str, Any]
) -> tuple[Generator, tuple[str, ...]]:
    """Build one generator (no fallbacks); also return the fallbacks its profile names."""
    name, table = cfg.table_for(model, profile)
    if cfg.log is not None:
        table.setdefault("log", cfg.log)
    if cfg.prices:
        from muse_sdk.pricing import prices_from_config

        prices_from_config(cfg.prices)
    overrides = dict(overrides)
    policy = overrides.pop("retry", None)
    if not isinstance(policy, RetryPolicy | None):
        table["retry"] = {**(table.get("retry") or {}), **_retry_table(policy)}
        policy = None
    source = KWARGS_SOURCE if overrides else cfg.source
    resolved = Profile.from_table({**table, **overrides}, name=name, source=source)
    return build(resolved, retry=policy), resolved.fallbacks


def _retry_table(value: object) -> dict[str, Any]:
    """Turn a ``retry=`` override (table, max-attempts count, settings) into a table."""
    if isinstance(value, RetrySettings):
        return value.model_dump()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return {"max_attempts": value}
    raise InvalidConfigError(
        f"retry must be a table, a max-attempts count or a RetryPolicy, got {value!r}",
        source=KWARGS_SOURCE,
        field="retry",
    )


def build(profile: Profile, *, retry: RetryPolicy | None = None) -> Generator:
    """Construct the generator a validated profile describes (fallbacks aside)."""
    cls = get_provider(profile.provider)
    gen = cls(
        profile.model,
        profile.settings,
        defaults=profile.params,
        retry=retry if retry is not None else RetryPolicy(profile.retry),
        name=profile.name,
    )
    if profile.features != _NO_FEATURES:
        gen.features = Features.build(profile.features, profile.name or gen.name)
    return gen
