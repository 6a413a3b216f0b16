"""The one place where the openai package's exceptions become MuseErrors.

```
openai exception                       MuseError
APITimeoutError                        TimeoutError (retried)
APIConnectionError                     ConnectionError (retried)
APIStatusError 400, 422                BadRequestError, or ContextLengthExceededError
               401 / 403 / 404         AuthenticationError / PermissionDeniedError / NotFoundError
               429                     RateLimitError (.retry_after from Retry-After)
               408, 409, 5xx           ServerError (retried)
unreadable reply, stream error event   ServerError (retried)
stalled stream (no data event in time) TimeoutError (retried before the first chunk)
cut stream (ended before complete)     ConnectionError (retried before the first chunk)
```
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from muse_sdk._redact import Redactor, scrub_chain
from muse_sdk.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectionError,
    ContextLengthExceededError,
    MuseError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    TimeoutError,
)

if TYPE_CHECKING:
    import openai

__all__ = [
    "CutStreamError",
    "ErrorMap",
    "MalformedReplyError",
    "StalledStreamError",
    "parse_retry_after",
]

_HINTS: dict[type[ProviderError], str] = {
    AuthenticationError: "check the API key (api_key=... or the variable named by api_key_env)",
    PermissionDeniedError: "this key may not use this model or endpoint",
    NotFoundError: "check the model name, the base_url and the api setting (completions/chat)",
    BadRequestError: "fix the parameters named in the server's message",
    RateLimitError: "too many requests; retried after the server's Retry-After",
    ServerError: "the server failed; retried",
}
_STATUS: dict[int, type[ProviderError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: ServerError,
    409: ServerError,
    422: BadRequestError,
    429: RateLimitError,
}
_CONTEXT = re.compile(r"maximum context length is (\d+)")
_PROMPT_TOKENS = re.compile(r"(\d+) (?:in the (?:messages|prompt)|input tokens)")
_COMPLETION_TOKENS = re.compile(r"(\d+) in the completion|is too large: (\d+)")


class MalformedReplyError(ValueError):
    """A 200 reply that is not the JSON shape of a completion."""

    #: The reply's usage, when it had one: the request was billed all the same.
    usage: Any = None


class StalledStreamError(Exception):
    """A stream that sent no data event within ``read``, or outlived the call's ``total``."""


class CutStreamError(Exception):
    """A stream whose body ended before the reply was complete."""


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, date.timestamp() - (time.time() if now is None else now))


class ErrorMap:
    """Maps the openai package's exceptions for one generator; redacts its API key."""

    def __init__(self, provider: str, endpoint: str, secrets: Iterable[str | None] = ()) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.redact = Redactor(secrets)

    def __repr__(self) -> str:
        return f"<ErrorMap {self.provider} {self.endpoint}>"

    @contextmanager
    def __call__(self, max_tokens: int | None = None) -> Iterator[None]:
        """Re-raise any backend exception raised inside as a MuseError, ``from`` the original."""
        try:
            yield
        except MuseError:
            raise
        except Exception as exc:
            mapped = self.convert(exc, max_tokens)
            if mapped is None:
                raise
            mapped.__cause__ = exc
            scrub_chain(mapped, self.redact)  # the server's text may echo the key
            raise mapped from mapped.__cause__  # the cause, or its redacted stand-in

    def convert(self, exc: Exception, max_tokens: int | None = None) -> MuseError | None:
        """The MuseError for ``exc``, or ``None`` when it is not a backend error."""
        import openai
        import pydantic

        if isinstance(exc, openai.APITimeoutError):
            return self._error(
                TimeoutError,
                f"{self.endpoint} did not answer in time",
                "raise timeout=... or check the server's load",
            )
        if isinstance(exc, openai.APIConnectionError):
            return self._error(
                ConnectionError,
                f"the connection to {self.endpoint} failed or was dropped",
                "check base_url and that the server is running",
            )
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc, max_tokens)
        if isinstance(exc, StalledStreamError):
            hint = "raise timeout=... if the model needs longer"
            return self._error(TimeoutError, f"{self.endpoint} {exc}", hint)
        if isinstance(exc, CutStreamError):
            return self._error(
                ConnectionError, f"{self.endpoint} {exc}", "the connection closed too early"
            )
        if isinstance(
            exc,
            json.JSONDecodeError
            | MalformedReplyError
            | pydantic.ValidationError
            | openai.APIResponseValidationError,
        ):
            error = self._error(
                ServerError, f"{self.endpoint} sent an unreadable reply ({exc})", "retried"
            )
            error.usage = getattr(exc, "usage", None)
            return error
        if isinstance(exc, openai.APIError):
            return self._error(
                ServerError, f"{self.endpoint} reported an error: {exc.message}", "retried"
            )
        if isinstance(exc, openai.OpenAIError):
            return self._error(
                ProviderError, f"the openai client failed: {exc}", "check the provider settings"
            )
        return self._transport_error(exc)

    def _transport_error(self, exc: Exception) -> MuseError | None:
        """HTTP-client errors that older openai releases let escape from a stream's body."""
        import httpx2

        if isinstance(exc, httpx2.TimeoutException):
            return self._error(
                TimeoutError, f"{self.endpoint} stopped sending", "raise timeout=..."
            )
        if isinstance(exc, httpx2.TransportError):
            return self._error(
                ConnectionError,
                f"the connection to {self.endpoint} failed or was dropped ({exc})",
                "check base_url and that the server is running",
            )
        return None

    def _status_error(self, exc: openai.APIStatusError, max_tokens: int | None) -> MuseError:
        status = exc.status_code
        message = _server_message(exc.body)
        if status in (400, 422) and exc.code == "context_length_exceeded":
            context = _context_error(message, max_tokens)
            if context is not None:
                return context
        cls = _STATUS.get(status) or (ServerError if status >= 500 else BadRequestError)
        kwargs: dict[str, Any] = {"status_code": status, "request_id": exc.request_id}
        should_retry = exc.response.headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            kwargs["retryable"] = should_retry == "true"
        if cls is RateLimitError:
            kwargs["retry_after"] = parse_retry_after(exc.response.headers)
        text = f"{self.endpoint} answered {status}: {message or 'no message'}"
        return self._error(cls, text, _HINTS[cls], **kwargs)

    def _error(
        self, cls: type[ProviderError], text: str, hint: str, **kwargs: Any
    ) -> ProviderError:
        return cls(self.redact(f"{text}; {hint}"), provider=self.provider, **kwargs)


def _server_message(body: object) -> str:
    if isinstance(body, Mapping):
        message = body.get("message")
        return str(message) if message else json.dumps(body)[:300]
    return str(body or "")[:300]


def _context_error(message: str, max_tokens: int | None) -> ContextLengthExceededError | None:
    """Parse OpenAI's and vLLM's context-length message; ``None`` when it says too little."""
    context = _CONTEXT.search(message)
    prompt = _PROMPT_TOKENS.search(message)
    if context is None or prompt is None:
        return None
    if max_tokens is None:
        asked = _COMPLETION_TOKENS.search(message)
        max_tokens = int(asked.group(1) or asked.group(2)) if asked else 0
    return ContextLengthExceededError(int(prompt.group(1)), max_tokens, int(context.group(1)))
