"""The rate limiter, on virtual clocks: sliding-window rpm/tpm, FIFO, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias, cast

import pytest

from muse_sdk.core import Message
from muse_sdk.errors import InvalidParameterError, MuseError
from muse_sdk.errors import TimeoutError as MuseTimeoutError
from muse_sdk.ratelimit import (
    DEFAULT_MAX_TOKENS,
    Clock,
    MonotonicClock,
    Permit,
    RateLimiter,
    estimate_tokens,
    limiter_for,
)


class StepClock:
    """A clock for one caller at a time: sleeping just moves virtual time forward."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class VirtualClock:
    """Virtual time shared by threads and coroutines: it moves only while every worker sleeps.

    ``run()`` (the driver, in the test's thread) waits until each live worker is asleep, then
    jumps to the earliest wake-up and wakes whoever is due. Workers call ``done()`` when they end.
    """

    def __init__(self, workers: int) -> None:
        self.t = 0.0
        self._cond = threading.Condition()
        self._live = workers
        self._asleep = 0
        self._heap: list[tuple[float, int, list[object]]] = []  # (wake, seq, [waker, alive])
        self._seq = itertools.count()

    def now(self) -> float:
        with self._cond:
            return self.t

    def _push(self, seconds: float, waker: object) -> list[object]:
        entry: list[object] = [waker, True]
        with self._cond:
            heapq.heappush(self._heap, (self.t + max(0.0, seconds), next(self._seq), entry))
            self._asleep += 1
            self._cond.notify_all()
        return entry

    def sleep(self, seconds: float) -> None:
        event = threading.Event()
        self._push(seconds, event)
        event.wait()

    async def asleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        entry = self._push(seconds, (loop, future))
        try:
            await future
        except asyncio.CancelledError:
            with self._cond:
                if entry[1]:  # still in the heap: it no longer counts as asleep
                    entry[1] = False
                    self._asleep -= 1
                    self._cond.notify_all()
            raise

    def done(self) -> None:
        with self._cond:
            self._live -= 1
            self._cond.notify_all()

    def run(self, timeout: float = 10.0) -> None:
        give_up = time.monotonic() + timeout
        with self._cond:
            while self._live:
                if self._asleep < self._live:
                    if not self._cond.wait(timeout=give_up - time.monotonic()):
                        raise AssertionError(f"stuck at virtual t={self.t}")
                    continue
                while not self._heap[0][2][1]:
                    heapq.heappop(self._heap)  # a cancelled sleeper
                self.t = max(self.t, self._heap[0][0])
                while self._heap and self._heap[0][0] <= self.t:
                    _, _, entry = heapq.heappop(self._heap)
                    if not entry[1]:
                        continue
                    entry[1] = False
                    self._asleep -= 1
                    waker = entry[0]
                    if isinstance(waker, threading.Event):
                        waker.set()
                    else:
                        loop, future = cast(_AsyncWaker, waker)
                        loop.call_soon_threadsafe(_resolve, future)


_AsyncWaker: TypeAlias = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def run_workers(
    clock: VirtualClock,
    threads: Sequence[Callable[[], None]] = (),
    coroutines: Sequence[Callable[[], Awaitable[None]]] = (),
    control: Callable[[list[asyncio.Task[None]]], Awaitable[None]] | None = None,
) -> list[BaseException]:
    """Run the workers (and ``control``, given the coroutine tasks) to the end; their errors."""
    errors: list[BaseException] = []

    def in_thread(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)
        finally:
            clock.done()

    async def in_task(fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await fn()
        except BaseException as exc:
            errors.append(exc)
        finally:
            clock.done()

    async def main() -> None:
        tasks = [asyncio.create_task(in_task(fn)) for fn in coroutines]
        if control is not None:
            tasks.append(asyncio.create_task(in_task(lambda: control(tasks[: len(coroutines)]))))
        await asyncio.gather(*tasks, return_exceptions=True)

    workers = [threading.Thread(target=in_thread, args=(fn,)) for fn in threads]
    if coroutines or control is not None:
        workers.append(threading.Thread(target=asyncio.run, args=(main(),)))
    for worker in workers:
        worker.start()
    try:
        clock.run()
    finally:
        for worker in workers:
            worker.join(timeout=5)
    return errors


def max_per_window(times: Sequence[float], weights: Sequence[int] | None = None) -> int:
    """The most requests (or tokens) granted within any window [t, t + 60)."""
    pairs = sorted(zip(times, weights or [1] * len(times), strict=True))
    return max(sum(w for t, w in pairs if start <= t < start + 60.0) for start, _ in pairs)


# --- rpm under concurrency -----------------------------------------------------------------


def _check_rpm_grants(permits: list[Permit], returned_at: dict[int, float]) -> None:
    assert len(permits) == 200
    times = [permit.granted_at for permit in permits]
    assert max_per_window(times) <= 60
    assert max_per_window(list(returned_at.values())) <= 60
    assert all(returned_at[p.ticket] == p.granted_at for p in permits)  # no sleep after a grant
    by_ticket = sorted(permits, key=lambda p: p.ticket)
    assert [p.ticket for p in by_ticket] == list(range(200))
    assert all(a.granted_at <= b.granted_at for a, b in itertools.pairwise(by_ticket))  # FIFO
    assert 180.0 - 1e-9 <= max(times) < 181.0  # three full windows, then the last 20


def test_200_coroutines_at_rpm_60_never_exceed_60_per_window() -> None:
    clock = VirtualClock(workers=200)
    limiter = RateLimiter(
        rpm=60,
        clock=clock,
    )
    permits: list[Permit] = []
    returned_at: dict[int, float] = {}

    async def call() -> None:
        permit = await limiter.aacquire(1)
        returned_at[permit.ticket] = clock.now()
        permits.append(permit)

    started = time.monotonic()
    assert run_workers(clock, coroutines=[call] * 200) == []
    assert time.monotonic() - started < 5.0  # virtual minutes, real milliseconds
    _check_rpm_grants(permits, returned_at)
    assert limiter.waiting == 0


def test_100_threads_and_100_coroutines_share_one_limiter() -> None:
    clock = VirtualClock(workers=200)
    limiter = RateLimiter(
        rpm=60,
        clock=clock,
    )
    permits: list[Permit] = []
    returned_at: dict[int, float] = {}
    kinds: list[str] = []
    lock = threading.Lock()

    def record(permit: Permit, kind: str) -> None:
        with lock:
            returned_at[permit.ticket] = clock.now()
            permits.append(permit)
            kinds.append(kind)

    def thread_call() -> None:
        record(limiter.acquire(1), "thread")

    async def task_call() -> None:
        record(await limiter.aacquire(1), "task")

    started = time.monotonic()
    assert run_workers(clock, threads=[thread_call] * 100, coroutines=[task_call] * 100) == []
    assert time.monotonic() - started < 5.0  # virtual minutes, real milliseconds
    _check_rpm_grants(permits, returned_at)
    assert kinds.count("thread") == kinds.count("task") == 100
    assert limiter.waiting == 0


# --- tpm -----------------------------------------------------------------------------------


def test_tpm_is_never_exceeded_and_settle_frees_room() -> None:
    clock = VirtualClock(workers=40)
    limiter = RateLimiter(tpm=1000, clock=clock)
    grants: list[tuple[float, int]] = []  # (time, actual tokens)

    async def call() -> None:
        permit = await limiter.aacquire(300)
        permit.settle(100)  # the reply was shorter than the estimate
        grants.append((permit.granted_at, permit.tokens))

    assert run_workers(clock, coroutines=[call] * 40) == []
    times = [t for t, _ in grants]
    assert len(grants) == 40
    assert max_per_window(times, [actual for _, actual in grants]) <= 1000
    # Each settle freed 200 tokens: 8 calls fit a window (100 * 7 + 300 <= 1000), not 3, and
    # waiters that planned on estimates take the freed room within recheck_s (1 s).
    assert times.count(0.0) == 8
    assert max_per_window(times) == 8
    assert max(times) <= 4 * 61.0


def test_settle_up_consumes_room() -> None:
    clock = StepClock()
    limiter = RateLimiter(tpm=1000, clock=clock)
    limiter.acquire(100).settle(900)  # far longer than estimated
    start = clock.now()
    with pytest.raises(MuseTimeoutError):
        limiter.acquire(200, deadline_at=start + 30)
    permit = limiter.acquire(200)
    assert permit.granted_at == start + 60
    assert limiter.acquire(800).granted_at == start + 60  # the 900 expired: 200 + 800 fit


def test_cancelled_permit_gives_its_room_back() -> None:
    clock = StepClock()
    limiter = RateLimiter(rpm=1, tpm=100, clock=clock)
    permit = limiter.acquire(50)
    permit.cancel()
    permit.cancel()  # idempotent
    permit.settle(70)  # a no-op on the window once cancelled
    assert limiter.acquire(100).granted_at == clock.now() and clock.sleeps == []


def test_a_request_above_tpm_goes_alone_once_the_window_is_empty() -> None:
    clock = StepClock()
    limiter = RateLimiter(tpm=100, clock=clock)
    start = clock.now()
    assert limiter.acquire(500).granted_at == start  # empty window: admitted
    assert limiter.acquire(10).granted_at == start + 60  # the 500 holds the window alone
    assert limiter.acquire(500).granted_at == start + 120  # waits for the window to empty


def test_a_big_request_is_not_overtaken_by_small_ones() -> None:
    clock = VirtualClock(workers=3)
    limiter = RateLimiter(tpm=1000, clock=clock)
    grants: dict[str, float] = {}

    async def call(name: str, tokens: int, delay: float) -> None:
        await clock.asleep(delay)
        grants[name] = (await limiter.aacquire(tokens)).granted_at

    workers = [
        lambda: call("first", 500, 0),
        lambda: call("big", 900, 1),
        lambda: call("small", 100, 2),  # would fit at t=2, but the big one came first
    ]
    assert run_workers(clock, coroutines=workers) == []
    assert grants["first"] == 0.0 and grants["big"] == 60.0
    # Right behind the big one (a due waiter gives the head a millisecond to take its turn).
    assert 60.0 <= grants["small"] <= 60.01


# --- deadlines and leaving the queue -------------------------------------------------------


def test_a_wait_past_the_deadline_raises_at_once() -> None:
    clock = StepClock()
    limiter = RateLimiter(rpm=1, clock=clock)
    start = clock.now()
    limiter.acquire(1)
    with pytest.raises(MuseTimeoutError, match="rate limit queue") as info:
        limiter.acquire(1, deadline_at=start + 30)
    assert clock.now() == start and clock.sleeps == []  # no sleep until the deadline first
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, MuseError)
    assert "rpm" in str(info.value) and "timeout" in str(info.value)
    assert not info.value.retryable
    assert limiter.waiting == 0
    assert limiter.acquire(1, deadline_at=start + 60).granted_at == start + 60  # exactly fits


async def test_async_deadline_raises_at_once() -> None:
    clock = StepClock()
    limiter = RateLimiter(tpm=100, clock=clock)
    await limiter.aacquire(100)
    with pytest.raises(MuseTimeoutError):
        await limiter.aacquire(1, deadline_at=clock.now() + 59)
    assert clock.sleeps == [] and limiter.waiting == 0


def test_a_cancelled_coroutine_leaves_the_queue() -> None:
    clock = VirtualClock(workers=3)  # two waiters and the controller
    limiter = RateLimiter(rpm=1, clock=clock)
    limiter.acquire(1)  # t=0: the window is full until t=60
    grants: list[float] = []

    async def waiter() -> None:
        grants.append((await limiter.aacquire(1)).granted_at)

    async def control(tasks: list[asyncio.Task[None]]) -> None:
        await clock.asleep(1)
        assert limiter.waiting == 2
        tasks[0].cancel()
        await clock.asleep(0)
        assert limiter.waiting == 1

    errors = run_workers(clock, coroutines=[waiter, waiter], control=control)
    assert [type(e) for e in errors] == [asyncio.CancelledError]
    assert grants == [pytest.approx(60.0, abs=1.0)]  # the cancelled waiter's turn, not the next
    assert limiter.waiting == 0


def test_a_waiting_thread_and_coroutine_both_progress() -> None:
    clock = VirtualClock(workers=4)
    limiter = RateLimiter(rpm=2, clock=clock)
    grants: list[tuple[str, float]] = []

    def thread_call() -> None:
        for _ in range(3):
            grants.append(("thread", limiter.acquire(1).granted_at))

    async def task_call() -> None:
        for _ in range(3):
            grants.append(("task", (await limiter.aacquire(1)).granted_at))

    assert run_workers(clock, threads=[thread_call] * 2, coroutines=[task_call] * 2) == []
    assert len(grants) == 12
    assert [kind for kind, _ in grants].count("thread") == 6
    assert max_per_window([t for _, t in grants]) <= 2
    assert max(t for _, t in grants) == pytest.approx(300.0, abs=0.1)


def test_real_clock_threads_and_coroutines() -> None:
    limiter = RateLimiter(rpm=2, window_s=0.2)
    assert isinstance(limiter.clock, MonotonicClock) and isinstance(limiter.clock, Clock)
    granted: list[float] = []

    def thread_call() -> None:
        granted.append(limiter.acquire(1).granted_at)

    async def main() -> None:
        worker = threading.Thread(target=thread_call)
        worker.start()
        permits = await asyncio.gather(*(limiter.aacquire(1) for _ in range(3)))
        granted.extend(p.granted_at for p in permits)
        await asyncio.to_thread(worker.join)

    asyncio.run(main())
    granted.sort()
    assert len(granted) == 4
    assert granted[2] - granted[0] >= 0.2 and granted[3] - granted[1] >= 0.2


# --- validation, estimates and the registry ------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rpm": 0}, "rpm"),
        ({"rpm": -5}, "rpm"),
        ({"rpm": 1.5}, "rpm"),
        ({"rpm": True}, "rpm"),
        ({"tpm": "1000"}, "tpm"),
        ({"window_s": 0}, "window_s"),
        ({"recheck_s": 0}, "recheck_s"),
        ({"recheck_s": -1.0}, "recheck_s"),
    ],
)
def test_limits_are_validated(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        RateLimiter(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_tokens_are_validated() -> None:
    limiter = RateLimiter(rpm=10, clock=StepClock())
    with pytest.raises(InvalidParameterError, match="tokens"):
        limiter.acquire(-1)
    permit = limiter.acquire(0)
    with pytest.raises(InvalidParameterError, match="actual_tokens"):
        permit.settle(-3)
    assert limiter.waiting == 0


def test_no_limits_never_wait() -> None:
    clock = StepClock()
    limiter = RateLimiter(clock=clock)
    for _ in range(1000):
        limiter.acquire(10**6)
    assert clock.sleeps == []


def test_estimate_tokens() -> None:
    assert estimate_tokens("abcdefgh", 10) == 2 + 10
    assert estimate_tokens("abcdefghi", None) == 3 + DEFAULT_MAX_TOKENS
    messages = [Message(role="system", content="x" * 40), {"role": "user", "content": "hi"}]
    assert estimate_tokens(messages, 5) == 3 + (4 + 10) + (4 + 1) + 5
    parts = [{"role": "user", "content": [{"type": "text", "text": "abcd"}]}]
    assert estimate_tokens(parts, 0) == 3 + 4 + 1
    assert estimate_tokens(["x" * 40, "hi"], 5) == 3 + (4 + 10) + (4 + 1) + 5  # bare texts


def test_limiter_for_shares_one_limiter_per_key() -> None:
    first = limiter_for("test-ratelimit-profile", 60, None)
    assert limiter_for("test-ratelimit-profile", 60, None) is first
    assert limiter_for("test-ratelimit-other", 60, None) is not first
    assert limiter_for("test-ratelimit-profile", 30, 5000) is first
    assert (first.rpm, first.tpm) == (30, 5000)
    with pytest.raises(InvalidParameterError):
        limiter_for("test-ratelimit-profile", 0, None)


def test_limiter_for_is_thread_safe() -> None:
    seen: list[RateLimiter] = []
    barrier = threading.Barrier(8)

    def get() -> None:
        barrier.wait()
        seen.append(limiter_for("test-ratelimit-race", 10, None))

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(limiter) for limiter in seen}) == 1


def test_without_recheck_a_waiter_sleeps_once_until_its_turn() -> None:
    clock = StepClock()
    limiter = RateLimiter(rpm=1, clock=clock, recheck_s=None)
    limiter.acquire(1)
    assert limiter.acquire(1).granted_at == 1060.0
    assert clock.sleeps == [60.0]
    limiter = RateLimiter(rpm=1, clock=clock)  # the default looks every second
    limiter.acquire(1)
    clock.sleeps.clear()
    limiter.acquire(1)
    assert clock.sleeps == [1.0] * 60
