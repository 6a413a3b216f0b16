"""Time limits of local calls: ``timeout.read`` between tokens, ``timeout.total`` for the call.

Generation runs off the caller's thread: in the engine's decode loop (``_engine``), or for the
transformers path in a worker running ``model.generate``. Either reports to the caller through
a queue of events, and the caller waits for each with the budget left (:func:`follow`, or
:func:`afollow` on an event loop), so a limit raises on time even while a step is still
running. On expiry (or when the caller leaves) the caller cancels the generation, which stops
at the end of the step in progress: the engine drops the row, the worker's
:class:`~muse_sdk.providers.local._decode.Tracker` ends ``generate`` and releases the model.

Local timeouts are **not retried** (``retryable=False``): the same prompt on the same model
costs the same time again, so a retry would spend the rest of the budget to fail once more.
``timeout.connect`` has no meaning in-process and is ignored.
"""

from __future__ import annotations

import asyncio
import builtins
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from muse_sdk.core.generator import Request
from muse_sdk.errors import TimeoutError

__all__ = [
    "STARTED",
    "STEP",
    "AnyChannel",
    "AsyncChannel",
    "AsyncTextEvents",
    "Budget",
    "Channel",
    "Event",
    "TextEvents",
    "Watch",
    "afollow",
    "deliver",
    "follow",
]


@dataclass(frozen=True, slots=True)
class Budget:
    """The read and total limits of one call, on the ``time.monotonic()`` clock."""

    read: float | None = None
    total: float | None = None
    deadline_at: float | None = None

    @classmethod
    def of(cls, requests: Sequence[Request]) -> Budget:
        """The budget of requests run together (they share parameters): the earliest deadline."""
        timeout = requests[0].params.timeout
        # A request not stamped yet (a native batch unit) starts its budget now.
        deadlines = [d for r in requests if (d := r.started().deadline_at) is not None]
        return cls(
            timeout.read if timeout is not None else None,
            timeout.total if timeout is not None else None,
            min(deadlines, default=None),
        )

    def left(self) -> float | None:
        """Seconds left of ``total`` (never negative), or ``None`` without one."""
        if self.deadline_at is None:
            return None
        return max(0.0, self.deadline_at - time.monotonic())

    def wait_s(self, generating: bool) -> float | None:
        """The longest wait for the next event: ``read`` applies once generation has started."""
        limits = [s for s in (self.left(), self.read if generating else None) if s is not None]
        return min(limits) if limits else None

    @contextmanager
    def hold(self, lock: threading.Lock) -> Iterator[None]:
        """Hold ``lock``, waiting for it no longer than the total budget allows."""
        left = self.left()
        if not lock.acquire(timeout=-1 if left is None else left):
            raise self.expired(generating=False)
        try:
            yield
        finally:
            lock.release()

    def expired(self, generating: bool) -> TimeoutError:
        """The error for a call past its limit (which one depends on what ran out)."""
        left = self.left()
        # Before generation starts only ``total`` is waited on; a lock wait may wake a hair early.
        if left is not None and (left <= 1e-3 or not generating or self.read is None):
            where = "generating" if generating else "waiting for the model (busy with other calls)"
            limit = "its total time budget" if self.total is None else f"({self.total:g} s)"
            message = (
                f"the local call ran past timeout.total {limit} while {where}: "
                "raise timeout.total, lower max_tokens, or run fewer calls at once"
            )
        else:
            message = (
                f"the local model took longer than timeout.read ({self.read or 0:g} s) to "
                "produce the next token: raise timeout.read, shorten the prompt, or use a "
                "faster device"
            )
        return TimeoutError(message, provider="local", retryable=False)


class _Mark:
    """A sentinel on the event queue."""


#: Generation has the model (``read`` applies from now on); one decode step is done.
STARTED, STEP = _Mark(), _Mark()
#: What a generation reports: ``(row, text)``, a mark, its error, or ``None`` at the end.
Event = tuple[int, str] | _Mark | BaseException | None
#: ``(row, text)`` pairs as generation produces them; closing it cancels the generation.
TextEvents = Generator[tuple[int, str], None, None]
#: The same on an event loop; closing it (or cancelling the task) cancels the generation.
AsyncTextEvents = AsyncGenerator[tuple[int, str], None]


class Channel:
    """Where a generation puts one call's events for a thread to read (:func:`follow`)."""

    loop: asyncio.AbstractEventLoop | None = None

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def put(self, event: Event) -> None:
        """Hand over one event (from any thread)."""
        self.queue.put(event)


class AsyncChannel:
    """Where a generation puts one call's events for a coroutine on ``loop`` (:func:`afollow`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop: asyncio.AbstractEventLoop | None = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()

    def put(self, event: Event) -> None:
        """Hand over one event (on the loop's thread: :func:`deliver` schedules it there)."""
        self.queue.put_nowait(event)


AnyChannel = Channel | AsyncChannel


def deliver(outbox: Sequence[tuple[AnyChannel, Event]]) -> list[AnyChannel]:
    """Hand events to their channels: at once to threads, in one callback per event loop.

    One ``call_soon_threadsafe`` per loop and batch (not per event) keeps the wake-ups of an
    event loop serving many calls to one per step. Returns the channels whose loop is closed.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[AnyChannel, Event]]] = {}
    for channel, event in outbox:
        if channel.loop is None:
            channel.put(event)
        else:
            by_loop.setdefault(channel.loop, []).append((channel, event))
    lost: list[AnyChannel] = []
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put_all, items)
        except RuntimeError:  # the loop is closed: nobody will read these events
            lost.extend(channel for channel, _ in items)
    return lost


def _put_all(items: list[tuple[AnyChannel, Event]]) -> None:
    for channel, event in items:
        channel.put(event)


def follow(
    events: queue.SimpleQueue[Event], budget: Budget, cancel: Callable[[], None]
) -> TextEvents:
    """Yield the text of a generation that reports to ``events``, within ``budget``.

    Raises the generation's error, or :class:`~muse_sdk.errors.TimeoutError` when a limit runs
    out; ``cancel()`` runs however the consumer leaves (the end, an error, ``close()``).
    """
    generating = False
    try:
        while True:
            try:
                event = events.get(timeout=budget.wait_s(generating))
            except queue.Empty:
                raise budget.expired(generating) from None
            if event is None:
                return
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, _Mark):
                generating = generating or event is STARTED
                continue
            yield event
    finally:
        cancel()  # after a timeout or an abandoned stream: frees the model at the next step


async def afollow(
    events: asyncio.Queue[Event], budget: Budget, cancel: Callable[[], None]
) -> AsyncTextEvents:
    """The event-loop twin of :func:`follow`: awaits events, never blocks a thread.

    Cancelling the awaiting task cancels the generation too (through the ``finally``).
    """
    generating = False
    try:
        while True:
            if not events.empty():  # the common case under load: no timer, no task
                event = events.get_nowait()
            else:
                try:
                    event = await asyncio.wait_for(events.get(), budget.wait_s(generating))
                except builtins.TimeoutError:
                    raise budget.expired(generating) from None
            if event is None:
                return
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, _Mark):
                generating = generating or event is STARTED
                continue
            yield event
    finally:
        cancel()


class Watch:
    """One ``model.generate`` run in a worker thread, waited for within a :class:`Budget`.

    The worker reports through :meth:`started` (it holds the model), :meth:`step` (after every
    decode step) and :meth:`text` (streamed text); :meth:`run` yields the text and raises
    :class:`~muse_sdk.errors.TimeoutError` when a limit runs out.
    """

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def started(self) -> None:
        """The worker holds the model: from now on ``read`` bounds every wait."""
        self._events.put(STARTED)

    def step(self) -> None:
        """One decode step is done."""
        self._events.put(STEP)

    def text(self, row: int, text: str) -> None:
        """Text of ``row`` that is final (a stream's chunk)."""
        self._events.put((row, text))

    def run(self, work: Callable[[], None], cancel: Callable[[], None]) -> TextEvents:
        """Run ``work()`` in a worker thread and yield its text; ``cancel()`` on leaving early."""
        events = self._events

        def produce() -> None:
            try:
                work()
                events.put(None)  # the end
            except BaseException as exc:  # handed to the consumer, which re-raises it
                events.put(exc)

        threading.Thread(target=produce, name="muse-local-generate", daemon=True).start()
        yield from follow(events, self.budget, cancel)
