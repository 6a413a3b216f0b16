"""Hooks: typed events for every call, per generator (``hooks=[...]``) and process-wide.

>>> import muse_sdk as muse
>>> seen = []
>>> gen = muse.load("fake:echo", hooks=[lambda event: seen.append(type(event).__name__)])
>>> _ = gen.generate("hello")
>>> seen
['RequestStarted', 'ResponseReceived']
"""

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
