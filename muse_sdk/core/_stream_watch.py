"""What watches a stream for its call: the schema check, the bills, the cache and the scope.

A stream with none of these has no watch; otherwise the :class:`Watch` sees each attempt to
open it, each retry, each chunk and the end, as ``Generator.run`` sees a call's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from muse_sdk.core._running import Retries
from muse_sdk.core.types import GenerationResult, StreamChunk
from muse_sdk.structured import finish

if TYPE_CHECKING:
    from muse_sdk.core.calls import Scope
    from muse_sdk.core.generator import Request

__all__ = ["Watch", "cached_astream", "cached_stream"]

T = TypeVar("T")


class Watch:
    """One stream's watcher: see the module docstring."""

    def __init__(
        self, request: Request, scope: Scope | None, cache_key: str | None, cached: bool = False
    ) -> None:
        self.request = request
        self.scope = scope
        self.cache_key = cache_key
        self.cached = cached
        #: Told of each failed attempt to open the stream that will be retried.
        self.on_retry = Retries(scope)
        self._chunks: list[StreamChunk] | None = [] if cache_key is not None else None

    def attempt(self, fn: Callable[[], T]) -> Callable[[], T]:
        """``fn`` (which opens the stream) as one attempt of the call."""
        return fn if self.scope is None else self.scope.attempt(fn, self.request)

    def aattempt(self, fn: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """Async twin of :meth:`attempt`."""
        return fn if self.scope is None else self.scope.aattempt(fn, self.request)

    def chunk(self, chunk: StreamChunk) -> None:
        """A chunk reached the caller."""
        if self._chunks is not None:
            self._chunks.append(chunk)
        if self.scope is not None:
            self.scope.chunk(chunk)

    def ended(self, result: GenerationResult) -> GenerationResult:
        """The stream's raw result: cached, billed, checked, reported."""
        if self.cache_key is not None and self.scope is not None and self._chunks is not None:
            from muse_sdk.cache._entries import dump_entry

            self.scope.cache.set(self.cache_key, dump_entry(result, self._chunks))
        update: dict[str, Any] = {"cached": self.cached}
        bills = self.on_retry.bills(result.provider, result.model)
        if bills:
            update["bills"] = (*result.bills, *bills)
        result = result.model_copy(update=update)
        structure = self.request.structure
        try:
            if structure is not None:
                result = finish(result, structure)
        except Exception as exc:
            self.failed(exc)
            raise
        if self.scope is not None:
            self.scope.succeeded(result)
        return result

    def failed(self, error: Exception) -> None:
        """The stream failed for good."""
        if self.scope is not None:
            self.scope.failed(error)

    def stopped(self) -> None:
        """The caller closed the stream before its end."""
        if self.scope is not None:
            self.scope.abandoned()


def cached_stream(text: str) -> Callable[[], Iterator[StreamChunk]]:
    """An opener that replays a cache entry chunk by chunk."""
    from muse_sdk.cache._entries import load_entry, replay

    result, chunks = load_entry(text)
    return lambda: replay(result, chunks)


def cached_astream(text: str) -> Callable[[], AsyncIterator[StreamChunk]]:
    """Async twin of :func:`cached_stream`."""
    opener = cached_stream(text)

    async def replayed() -> AsyncIterator[StreamChunk]:
        for chunk in opener():
            yield chunk

    return replayed
