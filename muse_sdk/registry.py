"""Where provider names map to ``Generator`` classes.

Built-in providers are listed below (one line each). Third-party providers register a
``Generator`` subclass under the entry-point group ``muse_sdk.providers``::

    [project.entry-points."muse_sdk.providers"]
    myprovider = "my_package.module:MyGenerator"

Provider modules are imported only when their name is looked up, and importing them is cheap:
each imports its heavy dependencies (torch, openai) only when a generator is built.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from muse_sdk.errors import BackendUnavailableError, UnknownProviderError

if TYPE_CHECKING:
    from muse_sdk.core.generator import Generator

__all__ = ["ENTRY_POINT_GROUP", "get_provider", "provider_names", "register"]

ENTRY_POINT_GROUP = "muse_sdk.providers"

BUILTIN_PROVIDERS: dict[str, str] = {
    "fake": "muse_sdk.providers.fake:FakeGenerator",
    "local": "muse_sdk.providers.local:LocalGenerator",
    "openai": "muse_sdk.providers.openai:OpenAIGenerator",
}

_registered: dict[str, type[Generator] | str] = {}
_lock = threading.Lock()


def register(name: str, target: type[Generator] | str) -> None:
    """Register a provider in code: a ``Generator`` subclass or a ``"module:Class"`` string."""
    with _lock:
        _registered[name] = target


def _plugin_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def provider_names() -> list[str]:
    """Every known provider: built in, registered in code, or found through entry points."""
    return sorted({*BUILTIN_PROVIDERS, *_registered, *_plugin_targets()})


def _import_target(name: str, target: str) -> object:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute) if attribute else module
    except (ImportError, AttributeError) as exc:
        raise BackendUnavailableError(
            f"provider {name!r} points at {target!r}, which cannot be imported ({exc}); "
            "reinstall the package that provides it"
        ) from exc


def get_provider(name: str) -> type[Generator]:
    """Return the ``Generator`` class registered as ``name``."""
    from muse_sdk.core.generator import Generator

    target: type[Generator] | str | object | None = _registered.get(name)
    if target is None:
        target = BUILTIN_PROVIDERS.get(name) or _plugin_targets().get(name)
    if target is None:
        raise UnknownProviderError(name, provider_names())
    cls = _import_target(name, target) if isinstance(target, str) else target
    if not (isinstance(cls, type) and issubclass(cls, Generator)):
        raise BackendUnavailableError(
            f"provider {name!r} resolves to {cls!r}, which is not a muse_sdk Generator subclass"
        )
    return cls
