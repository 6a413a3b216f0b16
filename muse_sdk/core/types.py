"""Core value types: parameters going in, results coming out.

They are immutable pydantic models. Provider-specific options never appear here: each provider
declares its own ``Options`` model (see :class:`muse_sdk.core.generator.Generator`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from muse_sdk.errors import InvalidParameterError, InvalidPromptError

__all__ = [
    "Bill",
    "Choice",
    "GenerationParams",
    "GenerationResult",
    "Message",
    "Prompt",
    "PromptInput",
    "StreamChunk",
    "Timeout",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "normalize_prompt",
    "params_error",
]

FinishReason: TypeAlias = Literal["stop", "length", "content_filter", "tool_calls", "error"] | str
MAX_STOP_SEQUENCES = 4
MAX_TOKENS_LIMIT = 1_000_000
MAX_N = 128


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Timeout(_Frozen):
    """Per-phase time limits in seconds; ``None`` means no limit for that phase.

    ``Timeout(10)`` sets connect and read to 10 s; ``total`` bounds a whole call, retries included.
    """

    connect: float | None = Field(default=None, gt=0)
    read: float | None = Field(default=None, gt=0)
    total: float | None = Field(default=None, gt=0)

    def __init__(self, seconds: float | None = None, /, **phases: float | None) -> None:
        if seconds is not None:
            phases.setdefault("connect", seconds)
            phases.setdefault("read", seconds)
        super().__init__(**phases)

    @classmethod
    def coerce(cls, value: float | Timeout | Mapping[str, float] | None) -> Timeout | None:
        """Accept a number of seconds, a mapping of phases, or a ``Timeout``."""
        if value is None or isinstance(value, Timeout):
            return value
        if isinstance(value, bool):
            raise ValueError("timeout must be a number of seconds or a table of phases")
        if isinstance(value, int | float):
            return cls(float(value))
        if isinstance(value, Mapping):
            return cls(**value)
        raise ValueError("timeout must be a number of seconds or a table of phases")


class ToolCall(_Frozen):
    """A tool the model asked to call: ``arguments`` are validated against the tool's schema.

    Also accepts OpenAI's wire shape, ``{"id", "type": "function", "function": {"name",
    "arguments": "<JSON text>"}}``, so assistant messages can be passed back as received.
    """

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_wire(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and isinstance(value.get("function"), Mapping):
            function = value["function"]
            arguments = function.get("arguments") or {}
            if isinstance(arguments, str):
                arguments = json.loads(arguments) if arguments.strip() else {}
            return {"id": value.get("id", ""), "name": function.get("name"), "arguments": arguments}
        return value

    def wire(self) -> dict[str, Any]:
        """OpenAI's shape of this call (arguments as JSON text)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


class ToolCallDelta(_Frozen):
    """A streamed piece of tool call ``index``: its id and name once, then argument text."""

    index: int = 0
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Message(_Frozen):
    """One chat message; an assistant's may carry ``tool_calls``, a tool's its ``tool_call_id``."""

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _content(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and value.get("content") is None:
            if not value.get("tool_calls"):
                raise ValueError("a message needs a str 'content'")
            value = {**value, "content": ""}  # an assistant turn that only calls tools
        return value

    def wire(self) -> dict[str, Any]:
        """OpenAI's shape of this message."""
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.wire() for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            message["name"] = self.name
        return message


Prompt: TypeAlias = str | tuple[Message, ...]
PromptInput: TypeAlias = str | Sequence[Message | Mapping[str, Any]]


def normalize_prompt(prompt: object) -> Prompt:
    """Validate a prompt: a non-empty ``str`` or a non-empty sequence of chat messages."""
    if isinstance(prompt, bytes):
        try:
            prompt = prompt.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPromptError(f"bytes are not valid UTF-8 ({exc.reason}); pass str") from exc
    if isinstance(prompt, str):
        if not prompt.strip():
            raise InvalidPromptError("the prompt is empty; pass some text to continue")
        _check_encodable(prompt)
        return prompt
    if isinstance(prompt, Sequence) and not isinstance(prompt, bytearray):
        if not prompt:
            raise InvalidPromptError("the message list is empty; pass at least one message")
        try:
            messages = tuple(
                m if isinstance(m, Message) else Message.model_validate(m) for m in prompt
            )
        except ValidationError as exc:
            raise InvalidPromptError(
                "each message needs a 'role' (system, user, assistant, tool, developer) and a "
                f"str 'content': {_first_error(exc)}"
            ) from exc
        for message in messages:
            _check_encodable(message.content)
        return messages
    raise InvalidPromptError(f"expected str or a list of messages, got {type(prompt).__name__}")


def _check_encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPromptError(
            f"the text holds a lone surrogate at position {exc.start}; it is not valid UTF-8"
        ) from exc


class GenerationParams(_Frozen):
    """The parameters every provider understands.

    ``max_tokens`` counts new tokens only (GPT-2's ``max_length`` counts the prompt too).
    ``temperature=0`` means greedy decoding. A value left as ``None`` means "provider default".
    """

    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1, le=MAX_N)
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    repetition_penalty: float | None = Field(default=None, gt=0)
    no_repeat_ngram_size: int | None = Field(default=None, ge=1)
    timeout: Timeout | None = None

    @field_validator("temperature", "top_p", "repetition_penalty", mode="before")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number, not NaN or infinity")
        return value

    @field_validator("max_tokens", "top_k", "n", "seed", "no_repeat_ngram_size", mode="before")
    @classmethod
    def _strict_int(cls, value: Any) -> Any:
        if isinstance(value, bool) or (value is not None and not isinstance(value, int)):
            raise ValueError(f"must be an integer, got {type(value).__name__}")
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if not isinstance(stops, list | tuple) or not all(isinstance(s, str) for s in stops):
            raise ValueError("must be a string or a list of strings")
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(stops)}")
        if any(not s for s in stops):
            raise ValueError("stop sequences must not be empty strings")
        return tuple(stops) or None

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return Timeout.coerce(value)

    @classmethod
    def build(cls, base: GenerationParams | None = None, **overrides: Any) -> GenerationParams:
        """Validate ``overrides`` on top of ``base`` (raises :class:`InvalidParameterError`)."""
        values = base.model_dump(exclude_unset=True) if base is not None else {}
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise params_error(exc) from exc

    def explicit(self) -> dict[str, Any]:
        """The parameters that were set, as a plain dict."""
        return {
            name: value
            for name in self.model_fields_set
            if (value := getattr(self, name)) is not None
        }


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])


def params_error(exc: ValidationError) -> InvalidParameterError:
    """Turn a pydantic error about parameters into an :class:`InvalidParameterError`."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "parameters"
    message = str(err["msg"])
    if "input" in err and err["type"] != "missing":
        message += f" (got {err['input']!r})"
    return InvalidParameterError(field, message)


class Usage(_Frozen):
    """Token counts as reported by the provider (zero when it does not say)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class Bill(_Frozen):
    """A billed request of a call other than its final reply (a repair round, a retried reply)."""

    provider: str
    model: str
    usage: Usage


class Choice(_Frozen):
    """One generated continuation.

    ``parsed`` is the validated value when the call asked for a ``schema``, ``regex`` or
    ``choices``; ``tool_calls`` the tools the model asked to call.
    """

    index: int = 0
    text: str
    finish_reason: FinishReason | None = None
    parsed: Any = None
    tool_calls: tuple[ToolCall, ...] = ()


class GenerationResult(_Frozen):
    """What a ``generate`` call returns; ``text`` is the first choice's text."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    choices: tuple[Choice, ...]
    usage: Usage = Usage()
    provider: str
    model: str
    latency_s: float = 0.0
    id: str | None = None
    attempts: int = 1
    #: Whether the reply came from the response cache (no request was made).
    cached: bool = False
    #: The call's other billed requests: retried replies, repair rounds, fallback members.
    bills: tuple[Bill, ...] = Field(default=(), repr=False)
    raw: Any = Field(default=None, repr=False, exclude=True)

    @property
    def total_usage(self) -> Usage:
        """Every billed request of the call: the final reply's usage plus :attr:`bills`.

        A reply from the cache was not billed again: it counts for nothing here.
        """
        total = Usage() if self.cached else self.usage
        for bill in self.bills:
            total = total + bill.usage
        return total

    @property
    def cost(self) -> float | None:
        """What the call cost in USD, from the price table; ``None`` for an unknown model.

        A cache hit costs 0.
        """
        from muse_sdk.pricing import total_cost

        pieces = [] if self.cached else [(self.provider, self.model, self.usage)]
        pieces += [(bill.provider, bill.model, bill.usage) for bill in self.bills]
        return total_cost(pieces)

    def billed(self) -> Bill:
        """The result's own request as a :class:`Bill` (when a later one replaces it)."""
        return Bill(provider=self.provider, model=self.model, usage=self.usage)

    @property
    def text(self) -> str:
        """The first choice's text."""
        return self.choices[0].text if self.choices else ""

    @property
    def texts(self) -> list[str]:
        """Every choice's text, in order."""
        return [choice.text for choice in self.choices]

    @property
    def finish_reason(self) -> str | None:
        """The first choice's finish reason."""
        return self.choices[0].finish_reason if self.choices else None

    @property
    def parsed(self) -> Any:
        """The first choice's validated value (with ``schema``, ``regex`` or ``choices``)."""
        return self.choices[0].parsed if self.choices else None

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The first choice's tool calls (empty when the model answered in text)."""
        return self.choices[0].tool_calls if self.choices else ()

    def __str__(self) -> str:
        return self.text


class StreamChunk(_Frozen):
    """A piece of a streamed reply: text for choice ``index``; the last one carries usage."""

    text: str = ""
    index: int = 0
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
