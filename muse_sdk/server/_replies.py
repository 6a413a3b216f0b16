"""Reply bodies in OpenAI's wire format: whole completions and SSE chunks, for both endpoints."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from muse_sdk.core.types import GenerationResult, Usage

__all__ = ["DONE", "Replier", "sse"]

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
                index = k * n + choice.index
                if self.endpoint == "completions":
                    body: dict[str, Any] = {"index": index, "text": choice.text, "logprobs": None}
                else:
                    message = {"role": "assistant", "content": choice.text}
                    body = {"index": index, "message": message, "logprobs": None}
                body["finish_reason"] = choice.finish_reason
                choices.append(body)
        return {**self._head(self._object), "choices": choices, "usage": _usage(usage)}

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

    def finish(self, index: int, reason: str | None) -> bytes:
        """The last chunk of choice ``index``, with its finish reason."""
        return self._chunk(index, "" if self.endpoint == "completions" else {}, reason or "stop")

    def usage(self, usage: Usage) -> bytes:
        """The usage chunk (``stream_options.include_usage``): no choices."""
        obj = "text_completion" if self.endpoint == "completions" else "chat.completion.chunk"
        return sse({**self._head(obj), "choices": [], "usage": _usage(usage)}) + b"\n\n"
