"""Settings (per profile) and options (per call) of the OpenAI provider, and the API choice."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from muse_sdk.core.settings import CallOptions, KeySettings

__all__ = [
    "CHAT_ONLY_OPTIONS",
    "COMPLETIONS_ONLY_OPTIONS",
    "PASSTHROUGH_ONLY",
    "Api",
    "OpenAIOptions",
    "OpenAISettings",
    "pick_api",
]

Api = Literal["completions", "chat"]
#: Model names that ``api = "auto"`` sends to the legacy completions endpoint.
_COMPLETIONS_PREFIXES = ("davinci", "babbage", "text-", "gpt-3.5-turbo-instruct")
#: Common parameters the OpenAI API lacks; servers such as vLLM take them through ``extra_body``.
PASSTHROUGH_ONLY = frozenset({"top_k", "repetition_penalty", "no_repeat_ngram_size"})
COMPLETIONS_ONLY_OPTIONS = frozenset({"suffix", "echo", "best_of"})
CHAT_ONLY_OPTIONS = frozenset({"response_format"})


def pick_api(model: str, api: Literal["auto", "completions", "chat"]) -> Api:
    """Resolve ``api = "auto"``: completions for instruct/legacy model names, chat otherwise."""
    if api != "auto":
        return api
    name = model.lower().rsplit("/", 1)[-1]
    legacy = "instruct" in name or name.startswith(_COMPLETIONS_PREFIXES)
    return "completions" if legacy else "chat"


class OpenAISettings(KeySettings):
    """Profile settings of the ``openai`` provider (the OpenAI API or any compatible server).

    ``api_key = "none"`` (or ``"no-key"``, ``"EMPTY"``) talks to servers that need no key; no
    ``Authorization`` header is sent then.
    """

    api_key_env: str | None = "OPENAI_API_KEY"
    #: Any OpenAI-compatible server, e.g. ``http://127.0.0.1:8000/v1`` (vLLM); ``None``: OpenAI.
    base_url: str | None = None
    #: Which endpoint to call; ``auto`` picks by model name (see :func:`pick_api`).
    api: Literal["auto", "completions", "chat"] = "auto"
    organization: str | None = None
    project: str | None = None
    default_headers: dict[str, str] | None = None
    #: Extra JSON fields sent with every request (merged under a call's own ``extra_body``).
    extra_body: dict[str, Any] | None = None
    #: Ask for usage at the end of a stream (``stream_options``); turn off for servers that
    #: reject the field.
    stream_usage: bool = True
    #: Newer OpenAI chat models want ``max_completion_tokens`` instead of ``max_tokens``.
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"must be an http(s) URL such as 'http://127.0.0.1:8000/v1', got {value!r}"
            )
        return value.strip().rstrip("/")


class OpenAIOptions(CallOptions):
    """Per-call options of the ``openai`` provider, beside the common parameters."""

    #: Extra JSON fields for servers that accept more than OpenAI does (vLLM's ``top_k``, ...).
    extra_body: dict[str, Any] | None = None
    extra_headers: dict[str, str] | None = None
    #: Return the top-N token log probabilities (in ``result.raw``); chat sends
    #: ``logprobs=true, top_logprobs=N``.
    logprobs: int | None = Field(default=None, ge=0, le=20)
    user: str | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, int] | None = None
    #: Completions only.
    suffix: str | None = None
    echo: bool | None = None
    best_of: int | None = Field(default=None, ge=1)
    #: Chat only, e.g. ``{"type": "json_object"}``.
    response_format: dict[str, Any] | None = None
