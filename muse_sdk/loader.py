"""``muse.load()``: from a name, a profile or nothing at all to a ready ``Generator``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from muse_sdk.config import KWARGS_SOURCE, Config, Profile
from muse_sdk.core.generator import Generator
from muse_sdk.registry import get_provider
from muse_sdk.retry import RetryPolicy, RetrySettings

__all__ = ["build", "load"]


def load(
    model: str | None = None,
    /,
    *,
    profile: str | None = None,
    config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Generator:
    """Return a generator for ``"provider:model"``, a named profile, or the configured default.

    ``overrides`` replace profile keys: provider settings (``base_url``, ``api_key``, ``device``),
    default parameters (``temperature``, ``max_tokens``, ``timeout``), ``retry`` (a table, a
    max-attempts count or a :class:`RetryPolicy`) and ``fallbacks``.
    """
    cfg = Config.coerce(config)
    name, table = cfg.table_for(model, profile)
    policy = overrides.pop("retry", None)
    if isinstance(policy, dict):
        table["retry"] = {**(table.get("retry") or {}), **policy}
        policy = None
    elif isinstance(policy, int | RetrySettings) and not isinstance(policy, bool):
        policy = RetryPolicy.coerce(policy)
    source = cfg.source if name is not None and not overrides else None
    resolved = Profile.from_table(
        {**table, **overrides}, name=name, source=source if not overrides else KWARGS_SOURCE
    )
    return build(resolved, retry=policy)


def build(profile: Profile, *, retry: RetryPolicy | None = None) -> Generator:
    """Construct the generator a validated profile describes."""
    cls = get_provider(profile.provider)
    return cls(
        profile.model,
        profile.settings,
        defaults=profile.params,
        retry=retry if retry is not None else RetryPolicy(profile.retry),
        name=profile.name,
    )
