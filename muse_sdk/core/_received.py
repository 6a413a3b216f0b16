"""What a stream has received: each choice's text, finish reason and tool calls, and usage."""

from __future__ import annotations

from muse_sdk.core._tool_deltas import ToolCallParts
from muse_sdk.core.types import Choice, StreamChunk, Usage
from muse_sdk.errors import ProviderError, StreamInterruptedError

__all__ = ["Received"]

#: Text parts kept separate per choice before they are joined: one small str per chunk would
#: cost ~60 bytes each, several times the text itself on a long reply.
_JOIN_EVERY = 256


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


class Received:
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
