"""Reply bodies in OpenAI's wire format: whole completions and SSE chunks, for both endpoints."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from muse_sdk.core.types import Choice, GenerationResult, ToolCall, Usage
from muse_sdk.errors import StructuredOutputError

__all__ = ["DONE", "Held", "Replier", "sse"]

Endpoint = Literal["completions", "chat"]
DONE = b"data: [DONE]\n\n"


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``payload`` as compact JSON."""
    return b"data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


@dataclass
class Replier:
    """Builds the replies of one request: same id, creation time and model name throughout."""

    endpoint: Endpoint
    model: str
    id: str = field(default="")
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not self.id:
            prefix = "cmpl" if self.endpoint == "completions" else "chatcmpl"
            self.id = f"{prefix}-{uuid.uuid4().hex}"

    @property
    def _object(self) -> str:
        return "text_completion" if self.endpoint == "completions" else "chat.completion"

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    # --- whole replies -------------------------------------------------------------------------

    def whole(self, results: Sequence[GenerationResult], n: int) -> dict[str, Any]:
        """The JSON reply: every result's choices, numbered prompt by prompt, and total usage."""
        choices = []
        usage = Usage()
        for k, result in enumerate(results):
            usage += result.usage
            for choice in result.choices:
                choices.append(self._choice(k * n + choice.index, choice))
        return {**self._head(self._object), "choices": choices, "usage": _usage(usage)}

    def cut(self, error: StructuredOutputError) -> dict[str, Any]:
        """A one-choice reply cut by ``max_tokens``: as OpenAI's, the partial text, ``"length"``."""
        usage = sum((bill.usage for bill in error.bills), Usage())
        choice = Choice(text=error.text, finish_reason="length")
        return {
            **self._head(self._object),
            "choices": [self._choice(0, choice)],
            "usage": _usage(usage),
        }

    def _choice(self, index: int, choice: Choice) -> dict[str, Any]:
        if self.endpoint == "completions":
            body: dict[str, Any] = {"index": index, "text": choice.text, "logprobs": None}
        else:
            message: dict[str, Any] = {"role": "assistant", "content": choice.text}
            if choice.tool_calls:  # OpenAI: the calls instead of text
                message["content"] = None
                message["tool_calls"] = [call.wire() for call in choice.tool_calls]
            body = {"index": index, "message": message, "logprobs": None}
        body["finish_reason"] = choice.finish_reason
        return body

    # --- stream chunks -------------------------------------------------------------------------

    def _chunk(self, index: int, delta: dict[str, Any] | str, finish: str | None) -> bytes:
        if self.endpoint == "completions":
            choice: dict[str, Any] = {"index": index, "text": delta, "logprobs": None}
            head = self._head("text_completion")
        else:
            choice = {"index": index, "delta": delta, "logprobs": None}
            head = self._head("chat.completion.chunk")
        choice["finish_reason"] = finish
        return sse({**head, "choices": [choice]}) + b"\n\n"

    def opening(self, choices: int) -> bytes:
        """Chat streams start by naming the role of every choice (completions: nothing)."""
        if self.endpoint == "completions":
            return b""
        return b"".join(
            self._chunk(i, {"role": "assistant", "content": ""}, None) for i in range(choices)
        )

    def text(self, index: int, text: str) -> bytes:
        """A chunk of new text for choice ``index``."""
        delta: dict[str, Any] | str = text if self.endpoint == "completions" else {"content": text}
        return self._chunk(index, delta, None)

    def tool_calls(self, index: int, calls: Sequence[ToolCall]) -> bytes:
        """Choice ``index``'s tool calls, whole: one delta per call."""
        wire = [{"index": i, **call.wire()} for i, call in enumerate(calls)]
        return self._chunk(index, {"tool_calls": wire}, None)

    def finish(self, index: int, reason: str | None) -> bytes:
        """The last chunk of choice ``index``, with its finish reason."""
        return self._chunk(index, "" if self.endpoint == "completions" else {}, reason or "stop")

    def usage(self, usage: Usage) -> bytes:
        """The usage chunk (``stream_options.include_usage``): no choices."""
        obj = "text_completion" if self.endpoint == "completions" else "chat.completion.chunk"
        return sse({**self._head(obj), "choices": [], "usage": _usage(usage)}) + b"\n\n"


class Held:
    """A structured stream's choices: what must wait until the reply has been validated.

    The SDK validates a reply when its stream ends, so every finish chunk waits for the end,
    when the finish reason is known (``"tool_calls"`` for a call). With ``tools``, a choice's
    text also waits while it could still be a tool call (local and fake models write calls as
    JSON, which must go out as ``delta.tool_calls``, not as content); text that cannot be one
    (it does not start with ``{`` or ``[``) streams as usual from then on.
    """

    def __init__(self, replier: Replier, *, tools: bool) -> None:
        self.replier = replier
        self.tools = tools
        self.texts: dict[int, str] = {}  # per choice: text held back
        self.free: set[int] = set()  # choices whose text streams as it comes
        self.reasons: dict[int, str | None] = {}  # per choice: the raw finish reason

    def text(self, index: int, text: str) -> bytes:
        """The chunk for new text, or nothing while it is held."""
        if not self.tools or index in self.free:
            return self.replier.text(index, text)
        held = self.texts.get(index, "") + text
        if held.lstrip()[:1] in ("", "{", "["):  # may still be JSON for a call
            self.texts[index] = held
            return b""
        self.free.add(index)
        self.texts.pop(index, None)
        return self.replier.text(index, held)

    def finish(self, index: int, reason: str | None) -> bytes:
        """Nothing yet: the finish waits for :meth:`ended` or :meth:`cut`."""
        self.reasons[index] = reason
        return b""

    def ended(self, results: Sequence[GenerationResult], n: int) -> bytes:
        """Every choice's end, from the validated results: its calls or held text, its finish."""
        out = []
        for k, result in enumerate(results):
            for choice in result.choices:
                index = k * n + choice.index
                if choice.tool_calls:
                    out.append(self.replier.tool_calls(index, choice.tool_calls))
                    self.texts.pop(index, None)
                out.append(self._end(index, choice.finish_reason))
        return b"".join(out)

    def cut(self) -> bytes:
        """Every choice's end as it came (a reply cut by ``max_tokens`` ends ``"length"``)."""
        return b"".join(self._end(index, reason) for index, reason in sorted(self.reasons.items()))

    def _end(self, index: int, reason: str | None) -> bytes:
        held = self.texts.pop(index, "")
        text = self.replier.text(index, held) if held else b""
        return text + self.replier.finish(index, reason)
