"""Fallbacks: a ``Generator`` that tries other generators when one is down.

Each generator in the chain applies its own retry policy first; only when it gives up on a
*retryable* error (rate limit, 5xx, connection, timeout) is the next one asked. Errors that are
bugs to see (401, 400, 404, bad input) are raised at once, never hidden behind a fallback.
A stream falls back only before its first chunk: text the caller has seen is never repeated.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from pydantic import Field

from muse_sdk.core.generator import Generator, Request
from muse_sdk.core.settings import CallOptions
from muse_sdk.core.types import GenerationParams, GenerationResult, StreamChunk
from muse_sdk.errors import InvalidConfigError, ProviderError
from muse_sdk.retry import RetryPolicy

__all__ = ["FallbackGenerator"]

logger = logging.getLogger("muse_sdk.fallback")


class _CallParams(CallOptions):
    """The caller's keyword parameters, re-validated by each generator in the chain.

    ``primary`` keeps what the primary made of them, so it is validated once per call.
    """

    values: dict[str, Any] = Field(default_factory=dict)
    primary: tuple[GenerationParams, CallOptions]


def _should_fall_back(exc: BaseException, gen: Generator, position: int, total: int) -> bool:
    if not (isinstance(exc, ProviderError) and exc.retryable) or position == total - 1:
        return False
    logger.info("%s gave up (%s: %s); falling back", gen.name, type(exc).__name__, exc)
    return True


class FallbackGenerator(Generator):
    """Try ``generators`` in order; ``result.provider`` / ``result.model`` say which answered."""

    provider = "fallback"

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

    def _split_params(self, params: dict[str, Any]) -> tuple[GenerationParams, CallOptions]:
        primary = self.generators[0]._split_params(params)  # bad parameters fail before any call
        return GenerationParams(), _CallParams(values=params, primary=primary)

    def _check_request(self, request: Request) -> None:
        options = request.options
        if isinstance(options, _CallParams):  # what the primary cannot honour fails here too
            self.generators[0]._request_for(request.prompt, *options.primary)

    def _generate(self, request: Request) -> GenerationResult:
        failed = 0
        for position, gen in enumerate(self.generators):
            try:
                return _counted(gen.generate(request.prompt, **_values(request)), failed)
            except ProviderError as exc:
                if not _should_fall_back(exc, gen, position, len(self.generators)):
                    raise
                failed += exc.attempts
        raise AssertionError("unreachable")  # pragma: no cover

    async def _agenerate(self, request: Request) -> GenerationResult:
        failed = 0
        for position, gen in enumerate(self.generators):
            try:
                return _counted(await gen.agenerate(request.prompt, **_values(request)), failed)
            except ProviderError as exc:
                if not _should_fall_back(exc, gen, position, len(self.generators)):
                    raise
                failed += exc.attempts
        raise AssertionError("unreachable")  # pragma: no cover

    def _stream(self, request: Request) -> Iterator[StreamChunk]:
        for position, gen in enumerate(self.generators):
            stream = gen.stream(request.prompt, **_values(request))
            try:
                first = next(stream, None)
            except ProviderError as exc:
                if not _should_fall_back(exc, gen, position, len(self.generators)):
                    raise
                continue
            if first is not None:
                yield first
                yield from stream
            return

    async def _astream(self, request: Request) -> AsyncIterator[StreamChunk]:
        for position, gen in enumerate(self.generators):
            stream = gen.astream(request.prompt, **_values(request))
            try:
                first = await anext(stream, None)
            except ProviderError as exc:
                if not _should_fall_back(exc, gen, position, len(self.generators)):
                    raise
                continue
            if first is not None:
                yield first
                async for chunk in stream:
                    yield chunk
            return

    def close(self) -> None:
        """Close every generator in the chain."""
        for gen in self.generators:
            gen.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        for gen in self.generators:
            await gen.aclose()


def _counted(result: GenerationResult, failed_attempts: int) -> GenerationResult:
    """Add the attempts that earlier members of the chain spent to the result's count."""
    if not failed_attempts:
        return result
    return result.model_copy(update={"attempts": result.attempts + failed_attempts})


def _values(request: Request) -> dict[str, Any]:
    options = request.options
    return options.values if isinstance(options, _CallParams) else {}
