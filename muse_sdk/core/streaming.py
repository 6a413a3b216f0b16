"""Stream plumbing shared by every provider: retry before the first chunk, never after.

Once text has reached the caller, a failure cannot be retried without duplicating what they
already saw, so it becomes :class:`~muse_sdk.errors.StreamInterruptedError` carrying that text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

from muse_sdk.core.types import StreamChunk
from muse_sdk.errors import ProviderError, StreamInterruptedError
from muse_sdk.retry import RetryPolicy

__all__ = ["astream_with_retry", "stream_with_retry"]


class _Received:
    """The text yielded so far, per choice index."""

    def __init__(self) -> None:
        self.parts: dict[int, list[str]] = {}

    def add(self, chunk: StreamChunk) -> None:
        if chunk.text:
            self.parts.setdefault(chunk.index, []).append(chunk.text)

    @property
    def text(self) -> str:
        return "".join(self.parts.get(0, []))

    def interrupted(self, exc: ProviderError) -> StreamInterruptedError:
        partial = self.text
        return StreamInterruptedError(
            f"the stream broke after {len(partial)} characters ({type(exc).__name__}: {exc}); "
            "the text received so far is in .partial",
            partial=partial,
            provider=exc.provider,
            status_code=exc.status_code,
            request_id=exc.request_id,
        )


def _close(iterator: Iterator[StreamChunk]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def stream_with_retry(
    open_stream: Callable[[], Iterator[StreamChunk]],
    policy: RetryPolicy,
    deadline_s: float | None,
) -> Iterator[StreamChunk]:
    """Yield from ``open_stream()``, retrying until the first chunk arrives."""

    def first_chunk() -> tuple[Iterator[StreamChunk], StreamChunk | None]:
        iterator = iter(open_stream())
        try:
            return iterator, next(iterator, None)
        except BaseException:
            _close(iterator)
            raise

    (iterator, chunk), _ = policy.call(first_chunk, deadline_s=deadline_s)
    received = _Received()
    try:
        while chunk is not None:
            received.add(chunk)
            yield chunk
            chunk = next(iterator, None)
    except StreamInterruptedError:
        raise
    except ProviderError as exc:
        raise received.interrupted(exc) from exc
    finally:
        _close(iterator)


async def _aclose(iterator: AsyncIterator[StreamChunk]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def astream_with_retry(
    open_stream: Callable[[], AsyncIterator[StreamChunk]],
    policy: RetryPolicy,
    deadline_s: float | None,
) -> AsyncIterator[StreamChunk]:
    """Async twin of :func:`stream_with_retry`."""

    async def first_chunk() -> tuple[AsyncIterator[StreamChunk], StreamChunk | None]:
        iterator = open_stream()
        try:
            return iterator, await anext(iterator, None)
        except BaseException:
            await _aclose(iterator)
            raise

    (iterator, chunk), _ = await policy.acall(first_chunk, deadline_s=deadline_s)
    received = _Received()
    try:
        while chunk is not None:
            received.add(chunk)
            yield chunk
            chunk = await anext(iterator, None)
    except StreamInterruptedError:
        raise
    except ProviderError as exc:
        raise received.interrupted(exc) from exc
    finally:
        await _aclose(iterator)
