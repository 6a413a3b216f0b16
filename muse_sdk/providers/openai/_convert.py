"""Pure conversions between muse_sdk requests/results and the OpenAI wire format.

Shared by the sync and async paths, so both send the same JSON and read replies the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from muse_sdk.core.types import (
    Choice,
    GenerationResult,
    Prompt,
    StreamChunk,
    Timeout,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from muse_sdk.errors import RefusalError
from muse_sdk.providers.openai._errors import MalformedReplyError
from muse_sdk.providers.openai._settings import Api, OpenAIOptions, OpenAISettings
from muse_sdk.providers.openai._structured import Level, shape

if TYPE_CHECKING:
    import openai

    from muse_sdk.core.generator import Request

__all__ = ["ChunkAssembler", "create_kwargs", "to_result"]

_NO_TIMEOUT = Timeout()
_PLAIN_OPTIONS = (
    "user",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "suffix",
    "echo",
    "best_of",
    "response_format",
)


def create_kwargs(
    request: Request,
    model: str,
    api: Api,
    settings: OpenAISettings,
    *,
    stream: bool,
    level: Level | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``completions.create`` / ``chat.completions.create``.

    ``level`` is the response-format level of a call with a schema (see ``_structured``).
    """
    kwargs: dict[str, Any] = {"model": model}
    prompt, shaping = shape(request, api, level)
    if api == "chat":
        kwargs["messages"] = _messages(prompt)
    else:
        kwargs["prompt"] = prompt
    _add_params(kwargs, request, api, settings)
    assert isinstance(request.options, OpenAIOptions)
    _add_options(kwargs, request.options, api, settings)
    kwargs.update(shaping)
    if stream:
        kwargs["stream"] = True
        if settings.stream_usage:
            kwargs["stream_options"] = {"include_usage": True}
    return kwargs


def _messages(prompt: Prompt) -> list[dict[str, Any]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [m.wire() for m in prompt]  # tool calls and tool results in OpenAI's shape


def _add_params(
    kwargs: dict[str, Any], request: Request, api: Api, settings: OpenAISettings
) -> None:
    # Attribute reads, not params.explicit(): this runs on every request.
    p = request.params
    if p.max_tokens is not None:
        key = settings.max_tokens_param if api == "chat" else "max_tokens"
        kwargs[key] = p.max_tokens
    if p.temperature is not None:
        kwargs["temperature"] = p.temperature
    if p.top_p is not None:
        kwargs["top_p"] = p.top_p
    if p.n != 1:
        kwargs["n"] = p.n
    if p.stop is not None:
        kwargs["stop"] = list(p.stop)
    if p.seed is not None:
        kwargs["seed"] = p.seed
    if p.timeout is not None or request.deadline_at is not None:  # a chain's budget counts too
        kwargs["timeout"] = http_timeout(p.timeout or _NO_TIMEOUT, request.deadline_s)


def _add_options(
    kwargs: dict[str, Any], options: OpenAIOptions, api: Api, settings: OpenAISettings
) -> None:
    for name in _PLAIN_OPTIONS:
        value = getattr(options, name)
        if value is not None:
            kwargs[name] = value
    if options.logprobs is not None:
        if api == "chat":
            kwargs.update(logprobs=True, top_logprobs=options.logprobs)
        else:
            kwargs["logprobs"] = options.logprobs
    if settings.extra_body or options.extra_body:
        kwargs["extra_body"] = {**(settings.extra_body or {}), **(options.extra_body or {})}
    if options.extra_headers:
        kwargs["extra_headers"] = dict(options.extra_headers)


def http_timeout(timeout: Timeout, left_s: float | None = None) -> openai.Timeout:
    """Per-attempt HTTP timeouts: no phase may outlast ``total`` or the time left of the call."""
    if left_s is None:
        return _phase_timeout(timeout, timeout.total)
    return _phase_timeout(timeout, max(min(left_s, timeout.total or left_s), 1e-3))


@lru_cache(maxsize=64)
def _phase_timeout(timeout: Timeout, cap: float | None) -> openai.Timeout:
    import openai

    def capped(phase: float | None) -> float | None:
        limits = [t for t in (phase, cap) if t is not None]
        return min(limits) if limits else None

    return openai.Timeout(capped(timeout.read), connect=capped(timeout.connect))


# --- replies ------------------------------------------------------------------------------


def _choices(reply: object) -> Sequence[Any]:
    choices = getattr(reply, "choices", None)
    if not isinstance(choices, list):
        raise MalformedReplyError(f"expected a completion object, got {type(reply).__name__}")
    return choices


def _choice_text(choice: Any, api: Api) -> str:
    if api == "chat":
        holder = getattr(choice, "message", None) or getattr(choice, "delta", None)
        if holder is None:
            raise MalformedReplyError("a chat choice without 'message' or 'delta'")
        text = getattr(holder, "content", None)
    else:
        text = getattr(choice, "text", None)
    if text is not None and not isinstance(text, str):
        raise MalformedReplyError(f"choice text is {type(text).__name__}, not a string")
    return text or ""


def _refusal(choice: Any) -> str | None:
    holder = getattr(choice, "message", None) or getattr(choice, "delta", None)
    refusal = getattr(holder, "refusal", None)
    return refusal if isinstance(refusal, str) and refusal else None


def _wire_calls(choice: Any) -> list[tuple[int, str | None, str | None, str]]:
    """A chat choice's tool calls (or pieces of them): ``(index, id, name, arguments)``."""
    holder = getattr(choice, "message", None) or getattr(choice, "delta", None)
    calls = getattr(holder, "tool_calls", None) or []
    if not isinstance(calls, list):
        raise MalformedReplyError(f"tool_calls is {type(calls).__name__}, not a list")
    out = []
    for position, call in enumerate(calls):
        index = getattr(call, "index", None)
        function = getattr(call, "function", None)
        name = getattr(function, "name", None)
        arguments = getattr(function, "arguments", None)
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)  # a server that sends an object, not JSON text
        call_id = getattr(call, "id", None)
        out.append(
            (
                index if isinstance(index, int) else position,
                call_id if isinstance(call_id, str) and call_id else None,
                name if isinstance(name, str) and name else None,
                arguments or "",
            )
        )
    return out


def _tool_calls(choice: Any) -> tuple[ToolCall, ...]:
    calls = []
    for index, call_id, name, arguments in _wire_calls(choice):
        if name is None:
            raise MalformedReplyError("a tool call without a function name")
        # Arguments stay JSON text: the core validates them against the tool.
        call = ToolCall.model_construct(
            id=call_id or f"call_{index}",
            name=name,
            arguments=arguments,  # type: ignore[arg-type]
        )
        calls.append(call)
    return tuple(calls)


def _index(choice: Any) -> int:
    index = getattr(choice, "index", 0)
    if not isinstance(index, int):
        raise MalformedReplyError(f"choice index is {type(index).__name__}, not an integer")
    return index


def _finish(choice: Any) -> str | None:
    finish = getattr(choice, "finish_reason", None)
    return finish if isinstance(finish, str) else None


def _usage(reply: object) -> Usage | None:
    usage = getattr(reply, "usage", None)
    if usage is None:
        return None
    return Usage(
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
    )


def _choice(choice: Any, api: Api) -> Choice:
    if api == "chat":
        refusal = _refusal(choice)
        if refusal is not None:
            raise RefusalError(refusal, finish_reason=_finish(choice))
    return Choice(
        index=_index(choice),
        text=_choice_text(choice, api),
        finish_reason=_finish(choice),
        tool_calls=_tool_calls(choice) if api == "chat" else (),
    )


def to_result(reply: object, api: Api, model: str, provider: str) -> GenerationResult:
    """A :class:`GenerationResult` from a ``Completion`` or ``ChatCompletion``.

    Raises :class:`~muse_sdk.errors.RefusalError` when the model refused (``message.refusal``).
    """
    try:
        choices = sorted((_choice(c, api) for c in _choices(reply)), key=lambda c: c.index)
    except MalformedReplyError as exc:
        exc.usage = _usage(reply)  # an unreadable reply may still have been billed
        raise
    return GenerationResult(
        choices=tuple(choices),
        usage=_usage(reply) or Usage(),
        provider=provider,
        model=getattr(reply, "model", None) or model,
        id=getattr(reply, "id", None),
        raw=reply,
    )


class ChunkAssembler:
    """Turns stream events into :class:`StreamChunk`s.

    OpenAI sends usage in a trailing event with no choices (other servers may repeat it on every
    event: the last one wins). So that the last chunk carries usage and still carries its
    finish reason, the latest chunk with a finish reason is held back until the next one.
    It also notes the reply's model and id, and which of the ``n`` choices have finished.
    Tool-call pieces pass through as :class:`ToolCallDelta`s; a refusal (``delta.refusal``)
    is gathered and raised as :class:`~muse_sdk.errors.RefusalError` when its choice ends.
    """

    def __init__(self, api: Api, n: int = 1) -> None:
        self.api = api
        self.n = n
        self.model: str | None = None
        self.id: str | None = None
        self._finished: set[int] = set()
        self._held: StreamChunk | None = None
        self._usage: Usage | None = None
        self._refusals: dict[int, str] = {}

    @property
    def complete(self) -> bool:
        """Whether every choice has had its finish reason."""
        return len(self._finished) >= self.n

    def feed(self, event: object) -> list[StreamChunk]:
        """The chunks to yield for one event."""
        out: list[StreamChunk] = []
        for choice in _choices(event):
            text = _choice_text(choice, self.api)
            finish = _finish(choice)
            index = _index(choice)
            deltas = self._chat_parts(choice, index, finish) if self.api == "chat" else ()
            if not text and finish is None and not deltas:
                continue  # e.g. chat's first delta, which carries only the role
            if self._held is not None:
                out.append(self._held)
                self._held = None
            chunk = StreamChunk(text=text, index=index, finish_reason=finish, tool_calls=deltas)
            if finish is None:
                out.append(chunk)
            else:
                self._finished.add(chunk.index)
                self._held = chunk
        self._usage = _usage(event) or self._usage
        self.model = self.model or _str_attr(event, "model")
        self.id = self.id or _str_attr(event, "id")
        return out

    def _chat_parts(self, choice: Any, index: int, finish: str | None) -> tuple[ToolCallDelta, ...]:
        """A chat delta's tool-call pieces; a refusal is gathered, and raised at its end."""
        refusal = _refusal(choice)
        if refusal is not None:
            self._refusals[index] = self._refusals.get(index, "") + refusal
        if finish is not None and index in self._refusals:
            raise RefusalError(self._refusals.pop(index), finish_reason=finish)
        return tuple(
            ToolCallDelta(index=i, id=call_id, name=name, arguments=arguments)
            for i, call_id, name, arguments in _wire_calls(choice)
        )

    def finish(self) -> list[StreamChunk]:
        """The held chunk, now carrying the usage, when the stream ends."""
        if self._refusals:  # a refusal whose choice never got a finish reason
            raise RefusalError(next(iter(self._refusals.values())))
        held, usage = self._held, self._usage
        self._held = self._usage = None
        if held is None:
            return [StreamChunk(usage=usage)] if usage is not None else []
        return [held.model_copy(update={"usage": usage}) if usage is not None else held]


def _str_attr(event: object, name: str) -> str | None:
    value = getattr(event, name, None)
    return value if isinstance(value, str) and value else None
