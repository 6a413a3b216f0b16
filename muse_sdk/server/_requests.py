"""Request bodies of ``/v1/completions`` and ``/v1/chat/completions``, read liberally.

Clients send more than they need (LangChain sends ``logit_bias: {}``, LiteLLM ``user``, many send
``presence_penalty: 0``), so a field is refused only when it asks for something the server would
not do: a neutral value is accepted and ignored, a field the served generator's own options
declare is passed through to it (an OpenAI-backed profile takes ``presence_penalty``), and an
unknown field is ignored and named in the ``x-muse-ignored-fields`` reply header.
Value checks (ranges, types) are the generator's, so the errors match the SDK's.

``response_format``, ``tools`` and ``tool_choice`` become muse's ``schema=``, ``tools=`` and
``tool_choice=`` (constrained decoding on a local model), except that a generator declaring
``response_format`` itself (the OpenAI gateway) gets that field as it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from muse_sdk.core.generator import Generator, Request
from muse_sdk.core.types import Message
from muse_sdk.server._errors import ApiError

__all__ = ["Call", "parse_chat", "parse_completion"]

#: Parameters that map one to one onto muse's common parameters.
_COMMON = ("max_tokens", "temperature", "top_p", "top_k", "n", "stop", "seed", "repetition_penalty")
#: OpenAI fields a generator may declare in its ``Options``; passed through when it does.
_PASSTHROUGH = (
    "user",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "response_format",
)
#: What each optional OpenAI field means when it asks for nothing.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (0, 0.0),
    "frequency_penalty": (0, 0.0),
    "logit_bias": ({},),
    "user": (),  # any value: it only labels the caller
    "response_format": ({"type": "text"},),
    "best_of": (1,),
    "echo": (False,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "suffix": ("",),
    "tools": ([],),
    "tool_choice": ("none", "auto"),
    "parallel_tool_calls": (True, False),
    "functions": ([],),
    "function_call": ("none", "auto"),
}
_UNSUPPORTED_HINT = {
    "logprobs": "muse serve does not return log probabilities",
    "top_logprobs": "muse serve does not return log probabilities",
    "echo": "muse serve does not echo the prompt",
    "best_of": "use n and pick on the client",
    "suffix": "muse serve does not insert text (fill-in-the-middle)",
    "tools": "tools are for /v1/chat/completions",
    "tool_choice": "tools are for /v1/chat/completions",
    "functions": "the legacy functions API is not served: send tools and tool_choice",
    "function_call": "the legacy functions API is not served: send tools and tool_choice",
}
#: Fields every request may carry that need no handling here.
_KNOWN = {
    "model",
    "prompt",
    "messages",
    "stream",
    "stream_options",
    "max_completion_tokens",
    "service_tier",
    "store",
    "metadata",
}


@dataclass(frozen=True)
class Call:
    """A parsed request: the muse requests to run (one per prompt) and how to answer."""

    requests: tuple[Request, ...]
    n: int
    stream: bool
    include_usage: bool
    ignored: tuple[str, ...] = field(default=())


def parse_completion(body: Mapping[str, Any], generator: Generator) -> Call:
    """Read a ``/v1/completions`` body into muse requests for ``generator``."""
    prompts = _prompts(body.get("prompt"))
    return _call(body, generator, prompts, dict(body), tools=False)


def parse_chat(body: Mapping[str, Any], generator: Generator) -> Call:
    """Read a ``/v1/chat/completions`` body into one muse request for ``generator``."""
    values = dict(body)
    if values.get("max_completion_tokens") is not None:  # the newer name wins
        values["max_tokens"] = values["max_completion_tokens"]
    return _call(body, generator, [_messages(body.get("messages"))], values, tools=True)


def _call(
    body: Mapping[str, Any],
    generator: Generator,
    prompts: list[str] | list[tuple[Message, ...]],
    values: dict[str, Any],
    *,
    tools: bool,
) -> Call:
    params = {k: values[k] for k in _COMMON if values.get(k) is not None}
    shaping = _shaping(values, generator, tools=tools)
    params.update(_passthrough({k: v for k, v in values.items() if k not in shaping}, generator))
    params.update({_SDK_NAME.get(k, k): v for k, v in shaping.items() if v is not None})
    stream = _flag(values, "stream")
    options = values.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise ApiError(400, "stream_options must be an object", param="stream_options")
    include_usage = stream and bool((options or {}).get("include_usage"))
    requests = tuple(generator.make_request(prompt, params) for prompt in prompts)
    ignored = sorted(set(body) - _KNOWN - set(_COMMON) - set(_NEUTRAL))
    return Call(requests, requests[0].params.n, stream, include_usage, tuple(ignored))


def _flag(values: Mapping[str, Any], name: str) -> bool:
    value = values.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {value!r}", param=name)
    return value


def _passthrough(values: Mapping[str, Any], generator: Generator) -> dict[str, Any]:
    """The optional OpenAI fields: passed to the generator, ignored, or refused."""
    own = generator.Options.model_fields
    passed: dict[str, Any] = {}
    for name, neutral in _NEUTRAL.items():
        value = values.get(name)
        if value is None:
            continue
        if name in _PASSTHROUGH and name in own:
            passed[name] = value
        elif name != "user" and not _is_neutral(value, neutral):
            hint = _UNSUPPORTED_HINT.get(name, f"{generator.name} does not take it")
            raise ApiError(
                400,
                f"{name}={value!r} is not supported: {hint}",
                param=name,
                code="unsupported_parameter",
            )
    return passed


def _shaping(values: Mapping[str, Any], generator: Generator, *, tools: bool) -> dict[str, Any]:
    """The OpenAI fields that become muse's ``schema``/``tools``/``tool_choice``, with values.

    Fields left out here go through :func:`_passthrough` as before: ``response_format`` for a
    generator that declares it itself, ``tools`` on ``/v1/completions``, and neutral values.
    """
    shaping: dict[str, Any] = {}
    if "response_format" not in generator.Options.model_fields:
        schema = _schema(values.get("response_format"))
        if schema is not None:
            shaping["response_format"] = schema
    offered = values.get("tools")
    choice = values.get("tool_choice")
    if tools and (offered or not _is_neutral(choice, (None, *_NEUTRAL["tool_choice"]))):
        if offered is not None and not isinstance(offered, list):
            raise ApiError(400, "tools must be a list of tool objects", param="tools")
        shaping["tools"] = offered or None
        shaping["tool_choice"] = choice
    return shaping


#: muse's name for an OpenAI field (a bad schema's error is renamed back in ``_errors``).
_SDK_NAME = {"response_format": "schema"}


def _schema(response_format: object) -> dict[str, Any] | None:
    """The JSON Schema a ``response_format`` asks for (``None``: plain text)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        assert isinstance(response_format, Mapping)
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise ApiError(
                400,
                "response_format of type 'json_schema' needs a 'json_schema' object with a "
                "'schema' (a JSON Schema object)",
                param="response_format",
                code="invalid_parameter",
            )
        return dict(schema)
    raise ApiError(
        400,
        "response_format must be an object whose 'type' is 'text', 'json_object' or "
        f"'json_schema', got {response_format!r}",
        param="response_format",
        code="invalid_parameter",
    )


def _is_neutral(value: object, neutral: tuple[Any, ...]) -> bool:
    """``value`` equals a neutral value (``False`` is not ``0`` here)."""
    return any(value == v and isinstance(value, bool) == isinstance(v, bool) for v in neutral)


def _prompts(prompt: object) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, int | list) for p in prompt):
        raise ApiError(
            400,
            "token-id prompts are not supported: send the prompt as text",
            param="prompt",
            code="unsupported_parameter",
        )
    raise ApiError(400, "prompt must be a string or a non-empty list of strings", param="prompt")


def _messages(messages: object) -> tuple[Message, ...]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of messages", param="messages")
    parsed = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ApiError(
                400, "each message needs a 'role' and a 'content'", param=f"messages[{i}]"
            )
        if message["role"] not in _ROLES:
            raise ApiError(
                400,
                f"unknown role {message['role']!r}: use system, user, assistant, tool or developer",
                param=f"messages[{i}].role",
            )
        fields = {k: message[k] for k in _MESSAGE_FIELDS if message.get(k) is not None}
        try:
            parsed.append(Message(**fields, content=_content(message.get("content"), i)))
        except ValidationError as exc:  # a tool call in the wrong shape; never echo the input
            error = exc.errors(include_input=False)[0]
            where = ".".join(str(part) for part in error["loc"])
            raise ApiError(
                400,
                f"invalid message: {where}: {error['msg']}" if where else error["msg"],
                param=f"messages[{i}]",
            ) from None
    return tuple(parsed)


_ROLES = ("system", "user", "assistant", "tool", "developer")
#: What a message may carry beside its role and content (an assistant's calls, a tool's reply).
_MESSAGE_FIELDS = ("role", "tool_calls", "tool_call_id", "name")


def _content(content: object, i: int) -> str:
    """A message's text: a string, or the text parts of a list joined by newlines."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not (isinstance(part, Mapping) and part.get("type") == "text"):
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise ApiError(
                    400,
                    f"content parts of type {kind!r} are not supported: send text",
                    param=f"messages[{i}].content",
                )
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    raise ApiError(
        400, "content must be a string or a list of text parts", param=f"messages[{i}].content"
    )
