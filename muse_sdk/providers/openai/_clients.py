"""One async openai client per event loop, retired cleanly when its loop has ended.

An async client's connections belong to the loop that opened them. A generator used from two
``asyncio.run()`` calls (or from loops in two threads) therefore needs a client per loop. A client
whose loop has closed cannot be closed through that loop; left alone, openai would schedule its
close on whichever loop runs when it is garbage-collected, which fails with "Event loop is closed".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import openai

__all__ = ["LoopClients"]


class LoopClients:
    """The async clients of one generator, keyed by event loop."""

    def __init__(self, make: Callable[[], openai.AsyncOpenAI]) -> None:
        self._make = make
        self._clients: dict[asyncio.AbstractEventLoop, openai.AsyncOpenAI] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<LoopClients {len(self._clients)}>"

    def get(self) -> openai.AsyncOpenAI:
        """The running loop's client, created on first use."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            with self._lock:
                self._retire_ended()
                client = self._clients.setdefault(loop, self._make())
        return client

    async def aclose(self) -> None:
        """Close the running loop's client; retire those of ended loops."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
            self._retire_ended()
        if client is not None:
            await client.close()

    def _retire_ended(self) -> None:
        for loop in [loop for loop in self._clients if loop.is_closed()]:
            _mark_closed(self._clients.pop(loop))


def _mark_closed(client: openai.AsyncOpenAI) -> None:
    """Flag a client of an ended loop as closed, without any loop.

    Stepping its ``close()`` coroutine once by hand marks the httpx client closed (its first
    statement), so openai never schedules that close on another loop; the sockets are closed
    with their transports when those are collected.
    """
    closing = client.close()
    try:
        closing.send(None)
    except (StopIteration, RuntimeError):  # done, or it reached the ended loop
        pass
    finally:
        closing.close()
