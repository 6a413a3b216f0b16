"""Concurrent identical calls make one request: the first leads, the others wait for it."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

__all__ = ["Flights"]


class Flights:
    """Requests in flight by cache key, shared by threads and event loops alike."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Future[Any]] = {}

    def join(self, key: str) -> tuple[Future[Any], bool]:
        """The flight for ``key``, and whether the caller leads it (and must :meth:`land` it)."""
        with self._lock:
            running = self._running.get(key)
            if running is not None:
                return running, False
            future: Future[Any] = Future()
            self._running[key] = future
            return future, True

    def land(self, key: str, future: Future[Any], result: Any = None, error: Any = None) -> None:
        """End the flight: waiters get ``result`` (or ``error`` raised)."""
        with self._lock:
            self._running.pop(key, None)
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
