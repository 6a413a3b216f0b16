"""A deterministic, offline provider for tests: yours and ours.

- ``fake:echo`` replies with the prompt (a chat's last message), token by token.
- ``fake:script`` replies with ``responses`` in order (the last one repeats); a call with ``n``
  choices takes the next ``n`` responses, one per choice.

Both honour ``max_tokens`` (whitespace-separated words, or single CJK characters, count as
tokens), ``stop`` and ``n``; ``latency_s`` simulates a slow model and ``failures`` scripts errors
for successive calls (attempts), so retry, streaming and batch code can be tested offline
(``"malformed"`` is a reply that was billed, one token, then could not be read)::

    gen = muse.load("fake:script", responses=["first", "second"], failures=["rate_limit"])
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Literal

from pydantic import Field

from muse_sdk.core.generator import Generator, Request
from muse_sdk.core.settings import KeySettings
from muse_sdk.core.types import Choice, GenerationResult, Prompt, StreamChunk, Usage
from muse_sdk.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectionError,
    ContextLengthExceededError,
    InvalidConfigError,
    NotFoundError,
    ProviderError,
    RateLimitError,
    ServerError,
    TimeoutError,
)

__all__ = ["FakeGenerator", "FakeSettings", "tokenize"]

Failure = Literal[
    "rate_limit",
    "server",
    "connection",
    "timeout",
    "auth",
    "bad_request",
    "not_found",
    "malformed",
]
MODELS = ("echo", "script")

_CJK = r"\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_TOKEN = re.compile(rf"\s*(?:[{_CJK}]|[^\s{_CJK}]+)|\s+")


def tokenize(text: str) -> list[str]:
    """Split text into the fake model's tokens; ``"".join(tokenize(t)) == t``."""
    return _TOKEN.findall(text)


class FakeSettings(KeySettings):
    """Settings of the fake provider."""

    responses: tuple[str, ...] = ()
    failures: tuple[Failure | None, ...] = ()
    retry_after_s: float | None = Field(default=None, ge=0)
    fail_stream_after: int | None = Field(default=None, ge=0)
    latency_s: float = Field(default=0.0, ge=0)
    chunk_latency_s: float = Field(default=0.0, ge=0)
    context_length: int | None = Field(default=None, ge=1)
    require_key: bool = False
    batch_size: int = Field(default=8, ge=1)


def _error(kind: Failure, retry_after: float | None) -> ProviderError:
    message = f"scripted {kind} failure"
    if kind == "rate_limit":
        return RateLimitError(message, provider="fake", retry_after=retry_after)
    errors: dict[str, type[ProviderError]] = {
        "server": ServerError,
        "connection": ConnectionError,
        "timeout": TimeoutError,
        "auth": AuthenticationError,
        "bad_request": BadRequestError,
        "not_found": NotFoundError,
    }
    if kind == "malformed":
        return ServerError("scripted malformed reply (billed)", provider="fake", status_code=200)
    status = {"server": 500, "connection": None, "timeout": None}.get(kind)
    return errors[kind](message, provider="fake", status_code=status)


def _last_text(prompt: Prompt) -> str:
    return prompt if isinstance(prompt, str) else prompt[-1].content


def _cut(reply: str, request: Request) -> tuple[str, str]:
    """Apply ``stop`` and ``max_tokens`` as a real model would; return (text, finish_reason)."""
    params = request.params
    tokens = tokenize(reply)
    limited = tokens if params.max_tokens is None else tokens[: params.max_tokens]
    text = "".join(limited)
    cuts = [i for i in (reply.find(s) for s in params.stop or ()) if i != -1 and i <= len(text)]
    if cuts:
        return reply[: min(cuts)], "stop"
    return text, "length" if len(limited) < len(tokens) else "stop"


class FakeGenerator(Generator):
    """Deterministic offline generator; counts calls so tests can assert on them."""

    provider = "fake"
    Settings = FakeSettings
    #: Scripted replies are what they are: no instruction is added, the core validates them.
    structured = True
    settings: FakeSettings

    def __init__(self, model: str, settings: FakeSettings | None = None, **kwargs: object) -> None:
        super().__init__(model, settings, **kwargs)  # type: ignore[arg-type]
        if model not in MODELS:
            raise InvalidConfigError(
                f"unknown fake model {model!r}; use one of {', '.join(MODELS)}", field="model"
            )
        if self.model == "script" and not self.settings.responses:
            raise InvalidConfigError(
                "fake:script needs a non-empty 'responses' list", field="responses"
            )
        if self.settings.require_key:
            self.settings.resolve_api_key(self.provider)
        self._lock = threading.Lock()
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.prompts: list[Prompt] = []
        self._taken = 0  # scripted responses used so far
        self._first: dict[int, int] = {}  # call index -> its first scripted response

    # --- bookkeeping -----------------------------------------------------------------------

    def _enter(self, request: Request) -> int:
        with self._lock:
            index = self.calls
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.prompts.append(request.prompt)
            failures = self.settings.failures
            if index >= len(failures) or failures[index] is None:  # failures take no response
                self._first[index] = self._taken
                self._taken += request.params.n
        return index

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _check(self, index: int, request: Request) -> list[str]:
        """Raise the scripted failure for call ``index``, else return each choice's full reply."""
        s = self.settings
        prompt_tokens = len(tokenize(_last_text(request.prompt)))
        if index < len(s.failures) and (kind := s.failures[index]) is not None:
            error = _error(kind, s.retry_after_s)
            if kind == "malformed":  # a reply that was billed, then could not be read
                error.usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=1)
            raise error
        if s.context_length is not None:
            wanted = request.params.max_tokens or 0
            if prompt_tokens + wanted > s.context_length:
                raise ContextLengthExceededError(prompt_tokens, wanted, s.context_length)
        n = request.params.n
        if self.model == "echo":
            return [_last_text(request.prompt)] * n
        first, last = self._first.pop(index), len(s.responses) - 1
        return [s.responses[min(first + i, last)] for i in range(n)]

    def _result(self, request: Request, replies: list[str]) -> GenerationResult:
        cuts = [_cut(reply, request) for reply in replies]
        usage = Usage(
            prompt_tokens=len(tokenize(_last_text(request.prompt))),
            completion_tokens=sum(len(tokenize(text)) for text, _ in cuts),
        )
        choices = tuple(
            Choice(index=i, text=text, finish_reason=end) for i, (text, end) in enumerate(cuts)
        )
        return GenerationResult(
            choices=choices, usage=usage, provider=self.provider, model=self.model, raw=replies[0]
        )

    def _chunks(self, result: GenerationResult) -> Iterator[StreamChunk]:
        for choice in result.choices:
            for token in tokenize(choice.text):
                yield StreamChunk(text=token, index=choice.index)
        for choice in result.choices:
            last = choice.index == len(result.choices) - 1
            yield StreamChunk(
                index=choice.index,
                finish_reason=choice.finish_reason,
                usage=result.usage if last else None,
            )

    # --- the provider surface --------------------------------------------------------------

    def _generate(self, request: Request) -> GenerationResult:
        index = self._enter(request)
        try:
            time.sleep(self.settings.latency_s)
            return self._result(request, self._check(index, request))
        finally:
            self._leave()

    async def _agenerate(self, request: Request) -> GenerationResult:
        index = self._enter(request)
        try:
            await asyncio.sleep(self.settings.latency_s)
            return self._result(request, self._check(index, request))
        finally:
            self._leave()

    def _stream(self, request: Request) -> Iterator[StreamChunk]:
        index = self._enter(request)
        try:
            time.sleep(self.settings.latency_s)
            result = self._result(request, self._check(index, request))
            for count, chunk in enumerate(self._chunks(result)):
                if count == self.settings.fail_stream_after:
                    raise ConnectionError("scripted stream interruption", provider="fake")
                time.sleep(self.settings.chunk_latency_s)
                yield chunk
        finally:
            self._leave()

    async def _astream(self, request: Request) -> AsyncIterator[StreamChunk]:
        index = self._enter(request)
        try:
            await asyncio.sleep(self.settings.latency_s)
            result = self._result(request, self._check(index, request))
            for count, chunk in enumerate(self._chunks(result)):
                if count == self.settings.fail_stream_after:
                    raise ConnectionError("scripted stream interruption", provider="fake")
                await asyncio.sleep(self.settings.chunk_latency_s)
                yield chunk
        finally:
            self._leave()
