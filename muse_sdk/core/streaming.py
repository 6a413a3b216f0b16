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
from typing import Self

from muse_sdk.core._tool_deltas import ToolCallParts
from muse_sdk.core.types import Choice, GenerationResult, StreamChunk, Usage
from muse_sdk.errors import MuseError, ProviderError, StreamInterruptedError
from muse_sdk.retry import RetryPolicy

__all__ = ["AsyncStream", "Stream", "note_reply"]

#: Text parts kept separate per choice before they are joined: one small str per chunk would
#: cost ~60 bytes each, several times the text itself on a long reply.
_JOIN_EVERY = 256
#: Checks the whole reply once the stream has ended (a call's schema or tools).
_Finish = Callable[[GenerationResult], GenerationResult]


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


class _Text:
    """One choice's text, kept as a few large strings rather than one per chunk."""

    __slots__ = ("joined", "tail")

    def __init__(self) -> None:
        self.joined: list[str] = []
        self.tail: list[str] = []

    def add(self, text: str) -> None:
        self.tail.append(text)
        if len(self.tail) >= _JOIN_EVERY:
            self.joined.append("".join(self.tail))
            self.tail.clear()

    def __str__(self) -> str:
        return "".join(self.joined) + "".join(self.tail)


class _Received:
    """What a stream has yielded: text and finish reason per choice, the latest usage."""

    def __init__(self) -> None:
        self.texts: dict[int, _Text] = {}
        self.finish: dict[int, str] = {}
        self.usage: Usage | None = None
        self.calls: dict[int, ToolCallParts] = {}

    def add(self, chunk: StreamChunk) -> None:
        if chunk.text:
            text = self.texts.get(chunk.index)
            if text is None:
                text = self.texts[chunk.index] = _Text()
            text.add(chunk.text)
        if chunk.finish_reason is not None:
            self.finish[chunk.index] = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.tool_calls:
            self.calls.setdefault(chunk.index, ToolCallParts()).add(chunk.tool_calls)

    def text(self, index: int = 0) -> str:
        text = self.texts.get(index)
        return str(text) if text is not None else ""

    def choices(self, n: int) -> tuple[Choice, ...]:
        count = max(n, *(i + 1 for i in (*self.texts, *self.finish)), 0)
        return tuple(
            Choice(
                index=i,
                text=self.text(i),
                finish_reason=self.finish.get(i),
                tool_calls=self.calls[i].calls() if i in self.calls else (),
            )
            for i in range(count)
        )

    def interrupted(self, exc: ProviderError) -> StreamInterruptedError:
        partial = self.text()
        return StreamInterruptedError(
            f"the stream broke after {len(partial)} characters ({type(exc).__name__}: {exc}); "
            "the text received so far is in .partial",
            partial=partial,
            provider=exc.provider,
            status_code=exc.status_code,
            request_id=exc.request_id,
        )


class _Run:
    """The state :class:`Stream` and :class:`AsyncStream` share: what arrived, how it ended."""

    def __init__(
        self, provider: str, model: str, n: int, deadline_s: float | None, finish: _Finish | None
    ) -> None:
        self.info = _Info(provider, model)
        self.finish = finish
        self.received = _Received()
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
        if self.finish is not None:
            try:
                result = self.finish(result)
            except MuseError as exc:  # a reply that does not validate: the stream's error
                self.error = exc
                raise
        self.result = result
        if outer is not None:
            outer.adopt(self.info, result.attempts)

    def failed(self, exc: BaseException, outer: _Info | None) -> None:
        if not isinstance(exc, Exception):  # cancelled or interrupted: stopped, not failed
            self.stopped = True
            return
        if self.error is None and self.result is None:
            self.error = exc
            if outer is not None:  # before the first chunk, the retry policy counted them
                opened = self.attempts > 0
                outer.adopt(
                    None, self._total(self.attempts) if opened else getattr(exc, "attempts", 1)
                )

    def stop(self) -> None:
        if self.result is None and self.error is None:
            self.stopped = True

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
        finish: _Finish | None = None,
    ) -> None:
        self._run = _Run(provider, model, n, deadline_s, finish)
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

        (iterator, chunk), attempts = policy.call(first_chunk, deadline_s=run.deadline_s())
        run.attempts = attempts
        try:
            while chunk is not None:
                run.received.add(chunk)
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
        finish: _Finish | None = None,
    ) -> None:
        self._run = _Run(provider, model, n, deadline_s, finish)
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

        (iterator, chunk), attempts = await policy.acall(first_chunk, deadline_s=run.deadline_s())
        run.attempts = attempts
        try:
            while chunk is not None:
                run.received.add(chunk)
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
