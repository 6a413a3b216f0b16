"""How a call runs: its attempts (retried), its repair rounds, its features and its bills.

``Generator.run`` and ``arun`` are thin: the work is here, in one place for both.

- one *request* (:func:`_once`): the retry policy's attempts, each through the call's scope
  (rate limit, span); replies billed before a retry are kept as :class:`Bill` s; the response
  cache sits in front of it, one flight per key;
- one *call* (:func:`run`): its requests, then the reply validated against the call's structure
  and asked again up to ``repair_attempts`` times; the scope hears of the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from muse_sdk.core.calls import Scope, scope_for
from muse_sdk.core.types import Bill, GenerationResult, Usage
from muse_sdk.errors import ProviderError, RefusalError, StructuredOutputError

if TYPE_CHECKING:
    from muse_sdk.cache._flights import Flights
    from muse_sdk.core._stream_watch import Watch
    from muse_sdk.core.generator import Generator, Request

__all__ = ["arun", "run", "stream_parts"]

_FLIGHTS: list[Flights] = []


def _flights() -> Flights:
    """The process's requests in flight by cache key (made on the first cached call)."""
    if not _FLIGHTS:
        from muse_sdk.cache._flights import Flights

        _FLIGHTS.append(Flights())
    return _FLIGHTS[0]


def run(gen: Generator, request: Request) -> GenerationResult:
    """Run ``request`` on ``gen``: requests, repairs and features."""
    request = request.started()
    scope = scope_for(gen, request, stream=False)
    if scope is None:
        return _settled(gen, request, None)
    try:
        result = _settled(gen, request, scope)
    except BaseException as exc:
        scope.failed(exc)
        raise
    scope.succeeded(result)
    return result


async def arun(gen: Generator, request: Request) -> GenerationResult:
    """Async twin of :func:`run`."""
    request = request.started()
    scope = scope_for(gen, request, stream=False)
    if scope is None:
        return await _asettled(gen, request, None)
    try:
        result = await _asettled(gen, request, scope)
    except BaseException as exc:
        scope.failed(exc)
        raise
    scope.succeeded(result)
    return result


def _settled(gen: Generator, request: Request, scope: Scope | None) -> GenerationResult:
    result = _cached(gen, request, scope)
    structure = request.structure
    if structure is None:
        return result
    from muse_sdk.structured import finish, repair_prompt

    for repairs_left in range(structure.repair_attempts, -1, -1):
        try:
            return finish(result, structure)
        except StructuredOutputError as exc:
            _unrepairable(exc, result, repairs_left)
            request = dataclasses.replace(request, prompt=repair_prompt(request.prompt, exc))
            result = after(result, _cached(gen, request, scope))
    raise AssertionError("unreachable")  # pragma: no cover


async def _asettled(gen: Generator, request: Request, scope: Scope | None) -> GenerationResult:
    result = await _acached(gen, request, scope)
    structure = request.structure
    if structure is None:
        return result
    from muse_sdk.structured import finish, repair_prompt

    for repairs_left in range(structure.repair_attempts, -1, -1):
        try:
            return finish(result, structure)
        except StructuredOutputError as exc:
            _unrepairable(exc, result, repairs_left)
            request = dataclasses.replace(request, prompt=repair_prompt(request.prompt, exc))
            result = after(result, await _acached(gen, request, scope))
    raise AssertionError("unreachable")  # pragma: no cover


def _unrepairable(exc: StructuredOutputError, result: GenerationResult, left: int) -> None:
    """Raise ``exc`` (with the call's bills) unless a repair round is left for it."""
    if left > 0 and not isinstance(exc, RefusalError):
        return
    exc.bills = (*result.bills, result.billed())
    raise exc


def after(previous: GenerationResult, repaired: GenerationResult) -> GenerationResult:
    """A repair round's result, billed for the rounds before it."""
    return repaired.model_copy(
        update={
            "attempts": previous.attempts + repaired.attempts,
            "bills": (*previous.bills, previous.billed(), *repaired.bills),
        }
    )


# --- one request, cached ---------------------------------------------------------------------


def _cache_key(gen: Generator, request: Request, scope: Scope | None) -> str | None:
    if scope is None or scope.cache is None:
        return None
    from muse_sdk.cache._keys import cacheable, request_key

    if not cacheable(request, gen.features.cache_sampled):
        return None
    return request_key(gen, request)


def _cached(gen: Generator, request: Request, scope: Scope | None) -> GenerationResult:
    key = _cache_key(gen, request, scope)
    if key is None:
        return _once(gen, request, scope)
    assert scope is not None
    from muse_sdk.cache._entries import dump_entry, load_entry

    start = time.perf_counter()
    hit = scope.cache.get(key)
    if hit is not None:
        return _hit(load_entry(hit)[0], start)
    flight, leads = _flights().join(key)
    if not leads:  # an identical call is running: its reply is this one's
        led = flight.result(timeout=request.deadline_s)
        return _once(gen, request, scope) if led is LEADER_GONE else _hit(led, start)
    try:
        result = _once(gen, request, scope)
    except BaseException as exc:
        _land_failed(key, flight, exc)
        raise
    scope.cache.set(key, dump_entry(result))
    _flights().land(key, flight, result)
    return result


async def _acached(gen: Generator, request: Request, scope: Scope | None) -> GenerationResult:
    key = _cache_key(gen, request, scope)
    if key is None:
        return await _aonce(gen, request, scope)
    assert scope is not None
    from muse_sdk.cache._entries import dump_entry, load_entry

    start = time.perf_counter()
    hit = scope.cache.get(key)
    if hit is not None:
        return _hit(load_entry(hit)[0], start)
    flight, leads = _flights().join(key)
    if not leads:
        led = await asyncio.wait_for(asyncio.wrap_future(flight), request.deadline_s)
        return await _aonce(gen, request, scope) if led is LEADER_GONE else _hit(led, start)
    try:
        result = await _aonce(gen, request, scope)
    except BaseException as exc:
        _land_failed(key, flight, exc)
        raise
    scope.cache.set(key, dump_entry(result))
    _flights().land(key, flight, result)
    return result


#: What a flight's waiters get when its leader was cancelled: no answer, so they ask themselves.
LEADER_GONE = object()


def _land_failed(key: str, flight: Any, exc: BaseException) -> None:
    """End a flight whose leader failed: its error, or (cancelled) a word to ask again."""
    if isinstance(exc, Exception):
        _flights().land(key, flight, error=exc)
    else:  # the leader's caller gave up, not the request: the others still want an answer
        _flights().land(key, flight, LEADER_GONE)


def _hit(result: GenerationResult, start: float) -> GenerationResult:
    update = {"cached": True, "bills": (), "attempts": 1, "latency_s": time.perf_counter() - start}
    return result.model_copy(update=update)


# --- one request, retried --------------------------------------------------------------------


class Retries:
    """What the retry policy tells of failed attempts: what they billed, and the scope."""

    __slots__ = ("scope", "usages")

    def __init__(self, scope: Scope | None) -> None:
        self.scope = scope
        self.usages: list[Usage] = []

    def __call__(self, error: Exception, attempt: int, wait_s: float) -> None:
        usage = getattr(error, "usage", None)
        if usage is not None:  # a reply that was billed although it failed
            self.usages.append(usage)
        if self.scope is not None:
            self.scope.retrying(error, attempt, wait_s)

    def bills(self, provider: str, model: str) -> tuple[Bill, ...]:
        """The retried attempts' bills, for the model that was asked."""
        return tuple(Bill(provider=provider, model=model, usage=u) for u in self.usages)

    def charge(self, error: ProviderError, gen: Generator) -> None:
        """Leave the bills of the retried attempts on the error that ends the request."""
        if self.usages:
            error.bills = (*error.bills, *self.bills(gen.provider, gen.model))


def _once(gen: Generator, request: Request, scope: Scope | None) -> GenerationResult:
    start = time.perf_counter()
    retries = Retries(scope)
    fn: Callable[[], GenerationResult] = lambda: gen._generate(request)  # noqa: E731
    if scope is not None:
        fn = scope.attempt(fn, request)
    try:
        result, attempts = gen.retry.call(fn, deadline_s=request.deadline_s, on_retry=retries)
    except ProviderError as exc:
        retries.charge(exc, gen)
        raise
    return finished(result, start, attempts, retries.bills(gen.provider, gen.model))


async def _aonce(gen: Generator, request: Request, scope: Scope | None) -> GenerationResult:
    start = time.perf_counter()
    retries = Retries(scope)
    fn: Callable[[], Awaitable[GenerationResult]] = lambda: gen._agenerate(request)  # noqa: E731
    if scope is not None:
        fn = scope.aattempt(fn, request)
    try:
        result, attempts = await gen.retry.acall(
            fn, deadline_s=request.deadline_s, on_retry=retries
        )
    except ProviderError as exc:
        retries.charge(exc, gen)
        raise
    return finished(result, start, attempts, retries.bills(gen.provider, gen.model))


def finished(
    result: GenerationResult, start: float, attempts: int, bills: tuple[Bill, ...] = ()
) -> GenerationResult:
    """``result`` timed from ``start``, its attempts counted and its retries' bills added."""
    # A result may already count attempts made below this call (a fallback chain's members).
    update: dict[str, object] = {
        "latency_s": time.perf_counter() - start,
        "attempts": attempts + result.attempts - 1,
    }
    if bills:
        update["bills"] = (*result.bills, *bills)
    return result.model_copy(update=update)


# --- streams -------------------------------------------------------------------------------


def stream_parts(
    gen: Generator, request: Request, *, is_async: bool
) -> tuple[Callable[[], Any] | None, Watch | None]:
    """A stream's watch (``None`` when nothing watches it) and, on a cache hit, its opener."""
    scope = scope_for(gen, request, stream=True)
    if scope is None and request.structure is None:
        return None, None
    from muse_sdk.core._stream_watch import Watch, cached_astream, cached_stream

    key = _cache_key(gen, request, scope)
    if key is not None:
        assert scope is not None
        hit = scope.cache.get(key)
        if hit is not None:
            opener = cached_astream(hit) if is_async else cached_stream(hit)
            return opener, Watch(request, scope, None, cached=True)
    return None, Watch(request, scope, key)
