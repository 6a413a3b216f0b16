"""Running a call while watching the client: a client that leaves cancels its work.

Cancelling the task that awaits a muse call (or iterates its stream) closes the call, and a
closed call frees its rows in the local engine before the next decode step. Both the plain and
the streaming paths therefore run the work in one task and a watch on ``http.disconnect`` in
another; whichever ends first ends the other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from muse_sdk.core.streaming import AsyncStream
from muse_sdk.core.types import StreamChunk

__all__ = ["ClientDisconnectedError", "EventStream", "merged", "until_disconnect"]

T = TypeVar("T")


class ClientDisconnectedError(Exception):
    """The client disconnected before its reply was ready."""


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_disconnect(work: Awaitable[T], receive: Receive) -> T:
    """Await ``work``; if the client disconnects first, cancel it (``ClientDisconnectedError``)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ClientDisconnectedError
    return task.result()


class EventStream(Response):
    """A ``text/event-stream`` reply whose producer is cancelled when the client leaves.

    (Starlette's ``StreamingResponse`` only does so on ASGI spec versions below 2.4; this
    does it always.) ``on_close`` runs once the stream has ended, however it ended.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncIterator[bytes],
        headers: dict[str, str],
        on_close: Callable[[], Awaitable[None]],
    ) -> None:
        # Not Response.__init__: it would declare "content-length: 0" for the missing body.
        self.status_code = 200
        self.background = None
        quiet = {"cache-control": "no-cache", "x-accel-buffering": "no"}  # proxies: don't buffer
        self.init_headers({**quiet, **headers})
        self._events = events
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the events until they end or the client disconnects."""
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)
            await self._on_close()

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        events = self._events
        try:
            async for event in events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]


async def merged(streams: Sequence[AsyncStream]) -> AsyncIterator[tuple[int, StreamChunk]]:
    """The chunks of several streams as they come, tagged with the stream's position."""
    if len(streams) == 1:
        async with streams[0] as only:
            async for chunk in only:
                yield 0, chunk
        return
    queue: asyncio.Queue[tuple[int, StreamChunk | BaseException | None]] = asyncio.Queue()

    async def pump(k: int, stream: AsyncStream) -> None:
        try:
            async with stream:
                async for chunk in stream:
                    await queue.put((k, chunk))
        except Exception as exc:
            await queue.put((k, exc))
        else:
            await queue.put((k, None))

    tasks = [asyncio.ensure_future(pump(k, s)) for k, s in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            k, item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                running -= 1
            else:
                yield k, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
