"""Fallbacks: a ``Generator`` that tries other generators when one is down.

Each generator in the chain applies its own retry policy first; only when it gives up on a
*retryable* error (rate limit, 5xx, connection, timeout) is the next one asked. Errors that are
bugs to see (401, 400, 404, bad input) are raised at once, never hidden behind a fallback.
A stream falls back only before its first chunk: text the caller has seen is never repeated.

The chain validates a call once and hands each member the validated :class:`Request`, which the
member merges with its own defaults (:meth:`Generator.rebase`). ``timeout.total`` bounds the
whole call, every member included. When every member fails, one :class:`FallbackError` names
each failure and counts every request made.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from pydantic import Field

from muse_sdk.core.generator import Generator, Request
from muse_sdk.core.settings import CallOptions
from muse_sdk.core.types import Bill, GenerationParams, GenerationResult, StreamChunk
from muse_sdk.errors import FallbackError, InvalidConfigError, ProviderError, TimeoutError
from muse_sdk.retry import RetryPolicy

__all__ = ["FallbackGenerator"]

logger = logging.getLogger("muse_sdk.fallback")


class _ChainOptions(CallOptions):
    """The caller's provider-only options, validated by each member for itself.

    ``primary`` keeps what the primary made of the whole call, so it is validated once.
    """

    own: dict[str, Any] = Field(default_factory=dict)
    primary: tuple[GenerationParams, CallOptions]


class _Failures:
    """The members' failures so far, in chain order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, ProviderError]] = []
        #: The members' replies that were billed although they failed.
        self.bills: list[Bill] = []

    @property
    def attempts(self) -> int:
        return sum(exc.attempts for _, exc in self.items)

    def add(self, gen: Generator, exc: ProviderError, last: bool) -> bool:
        """Record a failure; return whether the next member may be asked."""
        if not exc.retryable and not self.items:
            raise exc  # a bug to see on the primary: never hidden behind a fallback
        self.items.append((gen.name, exc))
        self.bills.extend(exc.bills)
        if exc.usage is not None:
            self.bills.append(Bill(provider=gen.provider, model=gen.model, usage=exc.usage))
        if exc.retryable and not last:
            logger.info("%s gave up (%s: %s); falling back", gen.name, type(exc).__name__, exc)
        return exc.retryable

    def out_of_time(self, request: Request, gen: Generator) -> bool:
        """Record ``gen`` as not tried when the call's total budget is spent."""
        left = request.deadline_s
        if left is None or left > 0 or request.deadline_at is None:
            return False
        skipped = TimeoutError(
            "not tried: the call's total timeout ran out before this fallback's turn; "
            "raise timeout={'total': ...} to give the chain more time",
            provider=gen.provider,
        )
        skipped.attempts = 0
        self.items.append((gen.name, skipped))
        return True

    def error(self) -> ProviderError:
        """The error to raise once the chain has given up."""
        if len(self.items) == 1:
            return self.items[0][1]
        return FallbackError(self.items)


class FallbackGenerator(Generator):
    """Try ``generators`` in order; ``result.provider`` / ``result.model`` say which answered."""

    provider = "fallback"
    #: Each member gets the call's structure and honours it its own way.
    structured = True
    #: Each member's calls are observed (hooks, spans, cache, log) as its own.
    observed = False

    def __init__(self, generators: Sequence[Generator]) -> None:
        if len(generators) < 2:
            raise InvalidConfigError("fallbacks need a primary and at least one fallback")
        self.generators = tuple(generators)
        primary = self.generators[0]
        # The chain's members retry on their own; retrying the chain too would multiply attempts.
        super().__init__(primary.model, retry=RetryPolicy(max_attempts=1), name=primary.name)

    def __repr__(self) -> str:
        chain = " -> ".join(f"{g.provider}:{g.model}" for g in self.generators)
        return f"<FallbackGenerator {chain}>"

    # --- validation: once for the chain, each member merging its own defaults ----------------

    def _split_params(self, params: dict[str, Any]) -> tuple[GenerationParams, CallOptions]:
        primary = self.generators[0]._split_params(params)  # bad parameters fail before any call
        common = {k: v for k, v in params.items() if k in GenerationParams.model_fields}
        own = {k: v for k, v in params.items() if k not in common}
        given = GenerationParams.build(**common) if common else GenerationParams()
        return given, _ChainOptions(own=own, primary=primary)

    def _check_request(self, request: Request) -> None:
        options = request.options
        if isinstance(options, _ChainOptions):  # what the primary cannot honour fails here too
            self.generators[0]._request_for(request.prompt, *options.primary)

    def _member_request(self, position: int, request: Request) -> Request:
        options = request.options
        own = options.own if isinstance(options, _ChainOptions) else {}
        if position == 0 and isinstance(options, _ChainOptions):
            params, primary_options = options.primary
            prompt = self.generators[0]._prompt_for(request.prompt, request.structure)
            return Request(
                prompt,
                params,
                primary_options,
                request.deadline_at,
                request.structure,
                request.cache,
            )
        return self.generators[position].rebase(request, own)

    def _members(
        self, request: Request, failures: _Failures
    ) -> Iterator[tuple[Generator, Request, bool]]:
        """Each member to try, its request, and whether it is last; none once out of time."""
        request = _stamped(request)
        last = len(self.generators) - 1
        for position, gen in enumerate(self.generators):
            if position and failures.out_of_time(request, gen):
                continue
            yield gen, self._member_request(position, request), position == last

    # --- calls ---------------------------------------------------------------------------------

    def _generate(self, request: Request) -> GenerationResult:
        failures = _Failures()
        for gen, member, last in self._members(request, failures):
            try:
                result = gen.run(member)
            except ProviderError as exc:
                if not failures.add(gen, exc, last):
                    break
            else:
                return _counted(result, failures)
        raise failures.error()

    async def _agenerate(self, request: Request) -> GenerationResult:
        failures = _Failures()
        for gen, member, last in self._members(request, failures):
            try:
                result = await gen.arun(member)
            except ProviderError as exc:
                if not failures.add(gen, exc, last):
                    break
            else:
                return _counted(result, failures)
        raise failures.error()

    def _stream(self, request: Request) -> Iterator[StreamChunk]:
        failures = _Failures()
        for gen, member, last in self._members(request, failures):
            stream = gen.run_stream(member)  # its result names the member and counts its requests
            try:
                first = next(stream, None)
            except ProviderError as exc:
                if not failures.add(gen, exc, last):
                    break
                continue
            if first is not None:
                yield first
                yield from stream
            return
        raise failures.error()

    async def _astream(self, request: Request) -> AsyncIterator[StreamChunk]:
        failures = _Failures()
        for gen, member, last in self._members(request, failures):
            stream = gen.arun_stream(member)
            try:
                first = await anext(stream, None)
            except ProviderError as exc:
                if not failures.add(gen, exc, last):
                    break
                continue
            if first is not None:
                yield first
                async for chunk in stream:
                    yield chunk
            return
        raise failures.error()

    def close(self) -> None:
        """Close every generator in the chain."""
        for gen in self.generators:
            gen.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        for gen in self.generators:
            await gen.aclose()


def _stamped(request: Request) -> Request:
    """Stamp the chain's deadline from the primary's ``timeout.total`` (a profile's included)."""
    options = request.options
    if request.deadline_at is not None or not isinstance(options, _ChainOptions):
        return request
    timeout = options.primary[0].timeout
    if timeout is None or timeout.total is None:
        return request
    return dataclasses.replace(request, deadline_at=time.monotonic() + timeout.total)


def _counted(result: GenerationResult, failures: _Failures) -> GenerationResult:
    """Add the attempts (and bills) that earlier members of the chain spent to the result's."""
    if not failures.items:
        return result
    update = {
        "attempts": result.attempts + failures.attempts,
        "bills": (*result.bills, *failures.bills),
    }
    return result.model_copy(update=update)
