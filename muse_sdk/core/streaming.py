"""Streams: retried before the first chunk, never after, and summed up in a result at the end.

Once text has reached the caller, a failure cannot be retried without duplicating what they
already saw, so it becomes :class:`~muse_sdk.errors.StreamInterruptedError` carrying that text.

:class:`Stream` (and :class:`AsyncStream`) is what ``gen.stream()`` (``gen.astream()``) returns:
iterate it for chunks; once it has ended, ``.result`` is the :class:`GenerationResult`.
``.result`` never reads from the network: before the end it raises :class:`MuseError` (call
``get_final_result()`` to read the rest and get it), after a failure it raises the stream's error.

A stream opened while another stream is fetching its next chunk (a fallback chain's member, inside
the chain's stream) reports its attempts, provider and model to that outer stream through a
context variable, so the outer result names the member that answered and counts every request.
Providers report the model and id of a reply with :func:`note_reply`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Self

from muse_sdk.core._received import Received
from muse_sdk.core.types import GenerationResult, StreamChunk, Usage
from muse_sdk.errors import MuseError, ProviderError, StreamInterruptedError
from muse_sdk.retry import RetryPolicy

if TYPE_CHECKING:
    from muse_sdk.core._stream_watch import Watch

__all__ = ["AsyncStream", "Stream", "note_reply"]


class _Info:
    """What a stream learns besides its chunks: from its provider, and from streams nested in it."""

    __slots__ = ("id", "model", "nested_attempts", "provider")

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.id: str | None = None
        self.nested_attempts = 0

    def adopt(self, nested: _Info | None, attempts: int) -> None:
        """Count a nested stream's requests; when it answered (``nested``), name it."""
        self.nested_attempts += attempts
        if nested is not None:
            self.provider = nested.provider or self.provider
            self.model = nested.model or self.model
            self.id = nested.id or self.id


#: The stream fetching its next chunk right now, in this thread or task.
_CURRENT: ContextVar[_Info | None] = ContextVar("muse_sdk_stream", default=None)


def note_reply(*, model: str | None = None, id: str | None = None) -> None:
    """Record which model answered, and the reply's id, on the stream being read (if any)."""
    info = _CURRENT.get()
    if info is not None:
        info.model = model or info.model
        info.id = id or info.id


class _Run:
    """The state :class:`Stream` and :class:`AsyncStream` share: what arrived, how it ended."""

    def __init__(
        self, provider: str, model: str, n: int, deadline_s: float | None, watch: Watch | None
    ) -> None:
        self.info = _Info(provider, model)
        self.watch = watch
        self.received = Received()
        self.n = n
        self.start = time.perf_counter()
        # Absolute, so a stream iterated some time after it was made still ends on time.
        self.deadline_at = None if deadline_s is None else time.monotonic() + deadline_s
        self.attempts = 0
        self.result: GenerationResult | None = None
        self.error: Exception | None = None
        self.stopped = False

    def deadline_s(self) -> float | None:
        return None if self.deadline_at is None else self.deadline_at - time.monotonic()

    def interrupted(self, exc: ProviderError) -> StreamInterruptedError:
        error = self.received.interrupted(exc)
        error.attempts = self._total(self.attempts)
        return error

    def _total(self, own: int) -> int:
        # Like a call's attempts: nested streams' requests replace the attempt that made them.
        nested = self.info.nested_attempts
        return max(own - 1 + nested, 1) if nested else own

    def ended(self, outer: _Info | None) -> None:
        if self.result is not None or self.error is not None or self.stopped:
            return
        result = GenerationResult(
            choices=self.received.choices(self.n),
            usage=self.received.usage or Usage(),
            provider=self.info.provider,
            model=self.info.model,
            id=self.info.id,
            latency_s=time.perf_counter() - self.start,
            attempts=self._total(self.attempts),
        )
        if self.watch is not None:
            try:
                result = self.watch.ended(result)
            except MuseError as exc:  # a reply that does not validate: the stream's error
                self.error = exc
                raise
        self.result = result
        if outer is not None:
            outer.adopt(self.info, result.attempts)

    def failed(self, exc: BaseException, outer: _Info | None) -> None:
        if not isinstance(exc, Exception):  # cancelled or interrupted: stopped, not failed
            self.stop()
            return
        if self.error is None and self.result is None:
            self.error = exc
            if self.watch is not None:
                self.watch.failed(exc)
            if outer is not None:  # before the first chunk, the retry policy counted them
                opened = self.attempts > 0
                outer.adopt(
                    None, self._total(self.attempts) if opened else getattr(exc, "attempts", 1)
                )

    def stop(self) -> None:
        if self.result is None and self.error is None and not self.stopped:
            self.stopped = True
            if self.watch is not None:
                self.watch.stopped()

    def get(self) -> GenerationResult:
        if self.result is not None:
            return self.result
        if self.error is not None:
            raise self.error
        if self.stopped:
            raise MuseError(
                "the stream was closed before it ended, so it has no result; "
                "the chunks it yielded are all there is"
            )
        raise MuseError(
            "the stream has not ended yet: iterate it to the end, or call get_final_result(), "
            "before reading .result"
        )


class Stream(Iterator[StreamChunk]):
    """A streamed reply: iterate it for :class:`StreamChunk` s, then read ``.result``.

    ``with gen.stream(...) as s:`` closes it (and its connection) on leaving the block, as does
    :meth:`close`. See the module docstring for what ``.result`` does before the end.
    """

    def __init__(
        self,
        open_stream: Callable[[], Iterator[StreamChunk]],
        policy: RetryPolicy,
        deadline_s: float | None = None,
        *,
        provider: str = "",
        model: str = "",
        n: int = 1,
        watch: Watch | None = None,
    ) -> None:
        self._run = _Run(provider, model, n, deadline_s, watch)
        self._chunks = self._produce(open_stream, policy)

    def __repr__(self) -> str:
        return f"<Stream {self._run.info.provider}:{self._run.info.model}>"

    def __next__(self) -> StreamChunk:
        outer = _CURRENT.get()
        token = _CURRENT.set(self._run.info)
        try:
            return next(self._chunks)
        except StopIteration:
            self._run.ended(outer)
            raise
        except BaseException as exc:
            self._run.failed(exc, outer)
            raise
        finally:
            _CURRENT.reset(token)

    def _produce(
        self, open_stream: Callable[[], Iterator[StreamChunk]], policy: RetryPolicy
    ) -> Generator[StreamChunk]:
        run = self._run

        def first_chunk() -> tuple[Iterator[StreamChunk], StreamChunk | None]:
            iterator = iter(open_stream())
            try:
                return iterator, next(iterator, None)
            except BaseException:
                _close(iterator)
                raise

        watch = run.watch
        opener = first_chunk if watch is None else watch.attempt(first_chunk)
        on_retry = None if watch is None else watch.on_retry
        (iterator, chunk), attempts = policy.call(
            opener, deadline_s=run.deadline_s(), on_retry=on_retry
        )
        run.attempts = attempts
        try:
            while chunk is not None:
                run.received.add(chunk)
                if watch is not None:
                    watch.chunk(chunk)
                yield chunk
                chunk = next(iterator, None)
        except StreamInterruptedError:
            raise
        except ProviderError as exc:
            raise run.interrupted(exc) from exc
        finally:
            _close(iterator)

    @property
    def result(self) -> GenerationResult:
        """The whole reply once the stream has ended (the module docstring says when it raises)."""
        return self._run.get()

    def get_final_result(self) -> GenerationResult:
        """Read whatever the stream has left (without yielding it) and return :attr:`result`."""
        for _ in self:
            pass
        return self.result

    def close(self) -> None:
        """Stop the stream and release its connection (or model); safe to call twice."""
        self._chunks.close()
        self._run.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStream(AsyncIterator[StreamChunk]):
    """Async twin of :class:`Stream`: ``async for``, ``async with``, ``await s.aclose()``."""

    def __init__(
        self,
        open_stream: Callable[[], AsyncIterator[StreamChunk]],
        policy: RetryPolicy,
        deadline_s: float | None = None,
        *,
        provider: str = "",
        model: str = "",
        n: int = 1,
        watch: Watch | None = None,
    ) -> None:
        self._run = _Run(provider, model, n, deadline_s, watch)
        self._chunks = self._produce(open_stream, policy)

    def __repr__(self) -> str:
        return f"<AsyncStream {self._run.info.provider}:{self._run.info.model}>"

    async def __anext__(self) -> StreamChunk:
        outer = _CURRENT.get()
        token = _CURRENT.set(self._run.info)
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            self._run.ended(outer)
            raise
        except BaseException as exc:
            self._run.failed(exc, outer)
            raise
        finally:
            _CURRENT.reset(token)

    async def _produce(
        self, open_stream: Callable[[], AsyncIterator[StreamChunk]], policy: RetryPolicy
    ) -> AsyncGenerator[StreamChunk]:
        run = self._run

        async def first_chunk() -> tuple[AsyncIterator[StreamChunk], StreamChunk | None]:
            iterator = open_stream()
            try:
                return iterator, await anext(iterator, None)
            except BaseException:
                await _aclose(iterator)
                raise

        watch = run.watch
        opener = first_chunk if watch is None else watch.aattempt(first_chunk)
        on_retry = None if watch is None else watch.on_retry
        (iterator, chunk), attempts = await policy.acall(
            opener, deadline_s=run.deadline_s(), on_retry=on_retry
        )
        run.attempts = attempts
        try:
            while chunk is not None:
                run.received.add(chunk)
                if watch is not None:
                    watch.chunk(chunk)
                yield chunk
                chunk = await anext(iterator, None)
        except StreamInterruptedError:
            raise
        except ProviderError as exc:
            raise run.interrupted(exc) from exc
        finally:
            await _aclose(iterator)

    @property
    def result(self) -> GenerationResult:
        """The whole reply once the stream has ended (see :attr:`Stream.result`)."""
        return self._run.get()

    async def get_final_result(self) -> GenerationResult:
        """Read whatever the stream has left (without yielding it) and return :attr:`result`."""
        async for _ in self:
            pass
        return self.result

    async def aclose(self) -> None:
        """Stop the stream and release its connection; safe to call twice."""
        await self._chunks.aclose()
        self._run.stop()

    async def close(self) -> None:
        """The same as :meth:`aclose` (openai's ``AsyncStream`` spells it this way)."""
        await self.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _close(iterator: Iterator[StreamChunk]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


async def _aclose(iterator: AsyncIterator[StreamChunk]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
