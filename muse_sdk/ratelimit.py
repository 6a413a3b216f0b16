"""Client-side rate limits: ``rpm`` and ``tpm`` per profile, shared by the whole process.

A :class:`RateLimiter` keeps a sliding window: a request counts against ``rpm`` for ``window_s``
(60 s) after it was granted, and its tokens count against ``tpm`` for as long. Calls queue rather
than fail, in arrival order (FIFO), so a big request is never starved by small ones and nobody
overtakes. One limiter serves threads (:meth:`RateLimiter.acquire`) and coroutines
(:meth:`RateLimiter.aacquire`) at once: a lock guards the state and every wait sleeps outside it.

Tokens are estimated before a call (:func:`estimate_tokens`) and corrected after it with the real
usage (:meth:`Permit.settle`). :func:`limiter_for` hands every generator built from one profile
the same limiter.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from muse_sdk.errors import InvalidParameterError, TimeoutError

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "Clock",
    "MonotonicClock",
    "Permit",
    "RateLimiter",
    "estimate_tokens",
    "limiter_for",
]

#: The completion budget :func:`estimate_tokens` assumes when a call sets no ``max_tokens``.
DEFAULT_MAX_TOKENS = 256
# OpenAI's chat format spends about 4 tokens on each message's framing and 3 on priming the reply.
_PER_MESSAGE = 4
_PER_REPLY = 3
# How long a due waiter behind a due head (whose thread or task has not run yet) waits for it.
_HEAD_LAG_S = 0.001


@runtime_checkable
class Clock(Protocol):
    """The time source of a limiter; tests pass a virtual clock so that nothing really sleeps."""

    def now(self) -> float:
        """The current time in seconds (any origin, never going backwards)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling coroutine for ``seconds``."""
        ...


class MonotonicClock:
    """The default clock: :func:`time.monotonic`, :func:`time.sleep` and :func:`asyncio.sleep`."""

    def now(self) -> float:
        """The monotonic time in seconds."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        time.sleep(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling coroutine for ``seconds``."""
        await asyncio.sleep(max(0.0, seconds))


class _Grant:
    """One granted request; ``tokens`` changes when its permit is settled."""

    __slots__ = ("at", "live", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens
        self.live = True  # still in the window: not expired nor cancelled


class _Waiter:
    """One queued request, its planned ``turn`` and when it next looks at the queue."""

    __slots__ = ("queued", "ticket", "tokens", "turn", "version", "wake_at")

    def __init__(self, ticket: int, tokens: int) -> None:
        self.ticket = ticket
        self.tokens = tokens
        self.queued = True
        self.turn = float("-inf")  # the earliest grant time, as last planned
        self.version = -1  # the limiter's version when the turn was planned
        self.wake_at = float("-inf")


class Permit:
    """The right to send one request: ``granted_at`` (clock time), ``ticket`` (arrival order)."""

    __slots__ = ("_grant", "_limiter", "granted_at", "ticket")

    def __init__(self, limiter: RateLimiter, grant: _Grant, ticket: int) -> None:
        self._limiter = limiter
        self._grant = grant
        self.granted_at = grant.at
        self.ticket = ticket

    @property
    def tokens(self) -> int:
        """The tokens the window counts for this request (the estimate until settled)."""
        return self._grant.tokens

    def settle(self, actual_tokens: int) -> None:
        """Replace the estimate with the real usage, freeing or consuming room in the window."""
        self._limiter._settle(self._grant, _check_tokens("actual_tokens", actual_tokens))

    def cancel(self) -> None:
        """Give back a permit whose request never went out (e.g. a cache hit); idempotent."""
        self._limiter._cancel(self._grant)


class RateLimiter:
    """Sliding-window ``rpm``/``tpm`` limits shared by every thread and coroutine that holds it.

    ``None`` leaves a limit off. A single request estimated above ``tpm`` could never fit, so it
    is admitted once the window is empty (it then holds the window alone until it expires).

    A waiter sleeps until its planned turn, at most ``recheck_s`` at a time (on the clock), so
    that room freed meanwhile (by :meth:`Permit.settle`, :meth:`Permit.cancel`, a waiter that
    leaves the queue or :meth:`set_limits`) is used within ``recheck_s``; such a look is cheap
    when nothing was freed. ``None`` sleeps until the planned turn, whatever happens.
    """

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        clock: Clock | None = None,
        window_s: float = 60.0,
        recheck_s: float | None = 1.0,
    ) -> None:
        self._rpm, self._tpm = _check_limit("rpm", rpm), _check_limit("tpm", tpm)
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._window_s = _check_seconds("window_s", window_s)
        self._recheck_s = None if recheck_s is None else _check_seconds("recheck_s", recheck_s)
        self._version = 0  # bumped whenever room is freed, so that sleeping waiters plan again
        self._lock = threading.Lock()
        self._window: deque[_Grant] = deque()  # granted requests, oldest first
        self._used = 0  # the tokens of the requests in the window
        self._queue: deque[_Waiter] = deque()  # waiters in arrival order
        self._tickets = itertools.count()

    @property
    def rpm(self) -> int | None:
        """Requests per window, or ``None`` for no limit."""
        return self._rpm

    @property
    def tpm(self) -> int | None:
        """Tokens per window, or ``None`` for no limit."""
        return self._tpm

    @property
    def clock(self) -> Clock:
        """The clock whose ``now()`` timescale ``deadline_at`` uses."""
        return self._clock

    @property
    def waiting(self) -> int:
        """How many calls are queued now."""
        with self._lock:
            return len(self._queue)

    def set_limits(self, rpm: int | None, tpm: int | None) -> None:
        """Change the limits; requests already in the window keep counting against the new ones."""
        rpm, tpm = _check_limit("rpm", rpm), _check_limit("tpm", tpm)
        with self._lock:
            self._rpm, self._tpm = rpm, tpm
            self._version += 1

    def acquire(self, tokens: int, *, deadline_at: float | None = None) -> Permit:
        """Block until a request of ``tokens`` fits both limits, in arrival order.

        Raises :class:`muse_sdk.errors.TimeoutError` at once (without sleeping first) when the
        wait would end after ``deadline_at``, a time on :attr:`clock`'s ``now()`` timescale.
        """
        waiter = self._enter(tokens)
        try:
            while True:
                step = self._poll(waiter, deadline_at)
                if isinstance(step, Permit):
                    return step
                self._clock.sleep(step)
        finally:
            self._leave(waiter)  # a waiter that timed out or was interrupted frees its place

    async def aacquire(self, tokens: int, *, deadline_at: float | None = None) -> Permit:
        """The async twin of :meth:`acquire`; a cancelled waiter leaves the queue."""
        waiter = self._enter(tokens)
        try:
            while True:
                step = self._poll(waiter, deadline_at)
                if isinstance(step, Permit):
                    return step
                await self._clock.asleep(step)
        finally:
            self._leave(waiter)

    def __repr__(self) -> str:
        return f"RateLimiter(rpm={self._rpm}, tpm={self._tpm}, window_s={self._window_s})"

    # --- internals (every method below but _enter/_leave runs under self._lock) -------------

    def _enter(self, tokens: int) -> _Waiter:
        tokens = _check_tokens("tokens", tokens)
        with self._lock:
            waiter = _Waiter(next(self._tickets), tokens)
            self._queue.append(waiter)
            return waiter

    def _leave(self, waiter: _Waiter) -> None:
        with self._lock:
            if waiter.queued:
                waiter.queued = False
                self._queue.remove(waiter)
                self._version += 1

    def _poll(self, waiter: _Waiter, deadline_at: float | None) -> Permit | float:
        """Grant ``waiter`` now, or return how long it should sleep before asking again."""
        with self._lock:
            now = self._clock.now()
            self._expire(now)
            head = self._queue[0]
            # A plan stays good until its time comes or room is freed; only then plan again.
            if head is waiter or waiter.version != self._version or waiter.turn <= now:
                waiter.turn, waiter.version = self._turn(waiter, now), self._version
                if waiter.turn <= now and head is waiter:
                    self._queue.popleft()
                    waiter.queued = False
                    grant = _Grant(now, waiter.tokens)
                    self._window.append(grant)
                    self._used += grant.tokens
                    return Permit(self, grant, waiter.ticket)
                if deadline_at is not None and waiter.turn > deadline_at:
                    raise TimeoutError(
                        f"the rate limit queue would hold this call {waiter.turn - now:.1f} s, "
                        f"past its deadline ({max(0.0, deadline_at - now):.1f} s away; "
                        f"rpm={self._rpm}, tpm={self._tpm}): raise the profile's rpm/tpm if the "
                        "provider allows more, or raise the timeout",
                        retryable=False,  # a retry would queue again behind the same calls
                    )
            wake_at = max(waiter.turn, now + _HEAD_LAG_S)
            if head is not waiter and head.wake_at > now:
                # Nobody can go before the head (FIFO), so don't wake up before it does.
                wake_at = max(wake_at, head.wake_at)
            if self._recheck_s is not None:
                wake_at = min(wake_at, now + self._recheck_s)
            waiter.wake_at = wake_at
            return wake_at - now

    def _expire(self, now: float) -> None:
        while self._window and self._window[0].at + self._window_s <= now:
            grant = self._window.popleft()
            grant.live = False
            self._used -= grant.tokens

    def _turn(self, target: _Waiter, now: float) -> float:
        """The earliest time ``target`` fits, if everybody ahead goes at their earliest."""
        rpm, tpm, span = self._rpm, self._tpm, self._window_s
        if self._queue[0] is target and _fits(len(self._window), self._used, target, rpm, tpm):
            return now  # the common case, without simulating the queue
        ats = [grant.at for grant in self._window]
        sizes = [grant.tokens for grant in self._window]
        first, used, at = 0, self._used, now
        for waiter in self._queue:
            # Let the oldest requests expire until this waiter fits; its turn is the last expiry.
            while first < len(ats):
                expired = ats[first] + span <= at
                if not expired and _fits(len(ats) - first, used, waiter, rpm, tpm):
                    break
                if not expired:
                    at = ats[first] + span
                used -= sizes[first]
                first += 1
            if waiter is target:
                return at
            ats.append(at)
            sizes.append(waiter.tokens)
            used += waiter.tokens
        raise AssertionError("a waiter polled after leaving the queue")  # pragma: no cover

    def _settle(self, grant: _Grant, tokens: int) -> None:
        with self._lock:
            if grant.live:
                self._used += tokens - grant.tokens
                if tokens < grant.tokens:
                    self._version += 1
            grant.tokens = tokens

    def _cancel(self, grant: _Grant) -> None:
        with self._lock:
            if grant.live:
                grant.live = False
                self._window.remove(grant)
                self._used -= grant.tokens
                self._version += 1


def _fits(count: int, used: int, waiter: _Waiter, rpm: int | None, tpm: int | None) -> bool:
    """Whether ``waiter`` fits a window holding ``count`` requests and ``used`` tokens."""
    if count == 0:
        return True  # an empty window admits anything, even a request estimated above tpm
    return (rpm is None or count < rpm) and (tpm is None or used + waiter.tokens <= tpm)


def _check_limit(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidParameterError(
            name, f"must be a positive integer (per minute) or None for no limit, got {value!r}"
        )
    return value


def _check_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidParameterError(name, f"must be a positive number of seconds, got {value!r}")
    return float(value)


def _check_tokens(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterError(name, f"must be an integer >= 0, got {value!r}")
    return value


def estimate_tokens(prompt: str | Sequence[object], max_tokens: int | None) -> int:
    """A cheap upper-leaning estimate of a call's tokens, to be corrected by :meth:`Permit.settle`.

    About one token per 4 characters of text, plus 4 per chat message and 3 for the reply, plus
    ``max_tokens`` (or :data:`DEFAULT_MAX_TOKENS` when ``None``). Messages may be
    :class:`~muse_sdk.core.Message` objects, mappings with ``content``, or bare texts.
    """
    budget = DEFAULT_MAX_TOKENS if max_tokens is None else max(0, max_tokens)
    if isinstance(prompt, str):
        return _text_tokens(prompt) + budget
    total = _PER_REPLY
    for message in prompt:
        content, name, calls = (_field(message, key) for key in ("content", "name", "tool_calls"))
        total += _PER_MESSAGE + _text_tokens(content) + _text_tokens(name)
        if calls:
            total += _text_tokens(str(calls))  # rough, but tool calls are rarely long
    return total + budget


def _field(message: object, key: str) -> object:
    if isinstance(message, str):  # a bare message text
        return message if key == "content" else None
    return message.get(key) if isinstance(message, Mapping) else getattr(message, key, None)


def _text_tokens(text: object) -> int:
    if isinstance(text, str):
        return -(-len(text) // 4)
    if isinstance(text, Sequence):  # content parts: [{"type": "text", "text": ...}, ...]
        return sum(_text_tokens(part.get("text")) for part in text if isinstance(part, Mapping))
    return 0


_registry: dict[str, RateLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(key: str, rpm: int | None, tpm: int | None) -> RateLimiter:
    """The process-wide limiter for ``key`` (a profile), created on first use.

    Every generator built from one profile gets the same limiter, so the limits hold across all
    of them. A later call with other limits updates that limiter in place (see
    :meth:`RateLimiter.set_limits`), keeping the requests already in its window.
    """
    rpm, tpm = _check_limit("rpm", rpm), _check_limit("tpm", tpm)
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = RateLimiter(rpm, tpm)
        elif (limiter.rpm, limiter.tpm) != (rpm, tpm):
            limiter.set_limits(rpm, tpm)
        return limiter
