"""Delivering events to hooks: per generator and process-wide, sync or async, never fatal."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from muse_sdk.hooks._events import Event

__all__ = ["Hook", "add_hook", "dispatch", "global_hooks", "remove_hook"]

logger = logging.getLogger("muse_sdk.hooks")

#: A hook takes an event; it may be ``async`` (awaited on the caller's loop, or run to the end).
Hook: TypeAlias = "Callable[[Event], Awaitable[None] | None]"

_GLOBAL: tuple[Hook, ...] = ()
_LOCK = threading.Lock()
#: Tasks of async hooks started on a running loop: kept so they are not collected mid-run.
_PENDING: set[asyncio.Task[Any]] = set()


def add_hook(hook: Hook) -> None:
    """Call ``hook`` for every event of every generator in this process."""
    global _GLOBAL
    if not callable(hook):
        from muse_sdk.errors import InvalidParameterError

        raise InvalidParameterError("hook", f"must be callable, got {type(hook).__name__}")
    with _LOCK:
        _GLOBAL = (*_GLOBAL, hook)


def remove_hook(hook: Hook) -> None:
    """Stop calling a hook added with :func:`add_hook` (no error if it was not added)."""
    global _GLOBAL
    with _LOCK:
        _GLOBAL = tuple(h for h in _GLOBAL if h is not hook)


def global_hooks() -> tuple[Hook, ...]:
    """The process-wide hooks, in the order they were added."""
    return _GLOBAL


def dispatch(event: Event, hooks: Iterable[Hook]) -> None:
    """Give ``event`` to each hook; a hook that raises is logged and the call goes on."""
    for hook in hooks:
        try:
            outcome = hook(event)
            if inspect.isawaitable(outcome):
                _await(outcome, hook)
        except Exception:  # a hook must never break the call
            logger.warning("hook %s raised on %s", _name(hook), type(event).__name__, exc_info=True)


def _await(outcome: Awaitable[None], hook: Hook) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a sync call: run the hook to its end here
        asyncio.run(_guarded(outcome, hook))
        return
    task = loop.create_task(_guarded(outcome, hook))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


async def _guarded(outcome: Awaitable[None], hook: Hook) -> None:
    try:
        await outcome
    except Exception:  # a hook must never break the call
        logger.warning("async hook %s raised", _name(hook), exc_info=True)


def _name(hook: Hook) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)
