"""Hooks: typed events for every call, per generator (``hooks=[...]``) and process-wide.

>>> import muse_sdk as muse
>>> seen = []
>>> gen = muse.load("fake:echo", hooks=[lambda event: seen.append(type(event).__name__)])
>>> _ = gen.generate("hello")
>>> seen
['RequestStarted', 'ResponseReceived']

Names are imported on first use, so a call with no hook pays for none of this.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from muse_sdk.hooks._dispatch import Hook, add_hook, dispatch, global_hooks, remove_hook
    from muse_sdk.hooks._events import (
        AttemptFailed,
        Event,
        RequestFailed,
        RequestStarted,
        ResponseReceived,
        StreamChunkReceived,
    )

__all__ = [
    "AttemptFailed",
    "Event",
    "Hook",
    "RequestFailed",
    "RequestStarted",
    "ResponseReceived",
    "StreamChunkReceived",
    "add_hook",
    "dispatch",
    "global_hooks",
    "remove_hook",
]

_DISPATCH = ("Hook", "add_hook", "dispatch", "global_hooks", "remove_hook")


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'muse_sdk.hooks' has no attribute {name!r}")
    module = "_dispatch" if name in _DISPATCH else "_events"
    value = getattr(importlib.import_module(f"muse_sdk.hooks.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
