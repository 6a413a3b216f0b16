"""What a cache entry holds: a raw result (before validation) and, from a stream, its chunks."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from muse_sdk.core.types import (
    Choice,
    GenerationResult,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["dump_entry", "load_entry", "replay"]


def dump_entry(result: GenerationResult, chunks: Sequence[StreamChunk] = ()) -> str:
    """A JSON entry for ``result`` (the bills of its retries are not part of a cached reply)."""
    data = {
        "provider": result.provider,
        "model": result.model,
        "id": result.id,
        "usage": [result.usage.prompt_tokens, result.usage.completion_tokens],
        "choices": [_choice(choice) for choice in result.choices],
        "chunks": [[c.index, c.text, c.finish_reason] for c in chunks if c.text or c.finish_reason],
    }
    return json.dumps(data, ensure_ascii=False)


def _choice(choice: Choice) -> dict[str, Any]:
    calls = [[c.id, c.name, c.arguments] for c in choice.tool_calls]
    return {"text": choice.text, "finish": choice.finish_reason, "calls": calls}


def load_entry(text: str) -> tuple[GenerationResult, list[StreamChunk]]:
    """The result (``cached=True``, no bills) and chunks of an entry from :func:`dump_entry`."""
    data = json.loads(text)
    choices = tuple(
        Choice(
            index=index,
            text=choice["text"],
            finish_reason=choice["finish"],
            # Raw, as the provider gave them: the call's validation runs again on a hit.
            tool_calls=tuple(
                ToolCall.model_construct(id=i, name=n, arguments=a) for i, n, a in choice["calls"]
            ),
        )
        for index, choice in enumerate(data["choices"])
    )
    prompt_tokens, completion_tokens = data["usage"]
    result = GenerationResult(
        choices=choices,
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
        provider=data["provider"],
        model=data["model"],
        id=data["id"],
        cached=True,
        bills=(),
    )
    chunks = [StreamChunk(index=i, text=t, finish_reason=f) for i, t, f in data["chunks"]]
    return result, chunks


def replay(result: GenerationResult, chunks: Sequence[StreamChunk]) -> Iterator[StreamChunk]:
    """A cached reply as a stream: its recorded chunks, or one per choice; usage comes last."""
    if chunks:
        yield from chunks
    else:
        for choice in result.choices:
            yield StreamChunk(index=choice.index, text=choice.text)
            if choice.finish_reason is not None:
                yield StreamChunk(index=choice.index, finish_reason=choice.finish_reason)
    for choice in result.choices:
        for number, call in enumerate(choice.tool_calls):
            arguments = call.arguments
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            delta = ToolCallDelta(index=number, id=call.id, name=call.name, arguments=text)
            yield StreamChunk(index=choice.index, tool_calls=(delta,))
    yield StreamChunk(usage=result.usage)
