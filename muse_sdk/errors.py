"""The muse_sdk exception tree.

Every error raised by muse_sdk derives from :class:`MuseError`, and every message says what was
wrong and how to fix it. No message, repr or log line ever contains an API key.

```
MuseError
├── ConfigError
│   ├── UnknownProviderError
│   ├── InvalidConfigError
│   ├── MissingCredentialsError
│   └── UnknownModelError      (.model .suggestions)
├── InputError
│   ├── InvalidParameterError
│   ├── InvalidPromptError
│   ├── UnsupportedParameterError
│   ├── ContextLengthExceededError
│   └── TemplateError
│       ├── MissingVariableError
│       └── UnsafeTemplateError
├── BackendUnavailableError
├── StructuredOutputError      (.text .errors .finish_reason: a reply that is not the asked shape)
│   └── RefusalError           (.refusal: the model declined to answer)
├── BatchError
└── ProviderError              (.provider .status_code .retryable .request_id)
    ├── AuthenticationError    (never retried)
    ├── PermissionDeniedError  (never retried)
    ├── BadRequestError        (never retried)
    ├── NotFoundError          (never retried)
    ├── RateLimitError         (retried; .retry_after)
    ├── ServerError            (retried)
    ├── ConnectionError        (retried)
    ├── TimeoutError           (retried)
    ├── StreamInterruptedError (.partial: the text already received)
    └── FallbackError          (.exceptions: every member's error of a failed fallback chain)
```
"""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "AuthenticationError",
    "BackendUnavailableError",
    "BadRequestError",
    "BatchError",
    "ConfigError",
    "ConnectionError",
    "ContextLengthExceededError",
    "FallbackError",
    "InputError",
    "InvalidConfigError",
    "InvalidParameterError",
    "InvalidPromptError",
    "MissingCredentialsError",
    "MissingVariableError",
    "MuseError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitError",
    "RefusalError",
    "SandboxError",
    "ServerError",
    "StreamInterruptedError",
    "StructuredOutputError",
    "TemplateError",
    "TimeoutError",
    "UnknownModelError",
    "UnknownProviderError",
    "UnsafeTemplateError",
    "UnsupportedParameterError",
    "did_you_mean",
]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class MuseError(Exception):
    """Base class of every error raised by muse_sdk."""


# --- configuration -------------------------------------------------------------------------


class ConfigError(MuseError):
    """The configuration (file, environment or keyword arguments) cannot be used."""


class UnknownProviderError(ConfigError):
    """A provider name is neither built in nor registered by a plugin."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(
            f"unknown provider {name!r}{did_you_mean(name, self.known)}. "
            f"Known providers: {', '.join(self.known)}. Use 'provider:model', "
            "e.g. 'openai:gpt-4o-mini', "
            "or install a plugin that registers the provider under the "
            "'muse_sdk.providers' entry-point group."
        )


class UnknownModelError(ConfigError):
    """A model name that muse cannot find: not shipped, not a directory, not cached or on the hub.

    ``suggestions`` holds the closest names muse knows (``muse models`` lists them all).
    """

    def __init__(self, model: str, suggestions: Sequence[str] = (), hint: str = "") -> None:
        self.model = model
        self.suggestions = list(suggestions)
        close = " or ".join(f"'local:{name}'" for name in self.suggestions)
        super().__init__(
            f"unknown model {model!r}"
            + (f" (did you mean {close}?)" if close else "")
            + (f": {hint}" if hint else "")
        )


class InvalidConfigError(ConfigError):
    """A configuration value is missing, of the wrong type or out of range."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        profile: str | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.profile = profile
        self.field = field
        where = ", ".join(
            part
            for part in (
                f"file {source}" if source else "",
                f"profile {profile!r}" if profile else "",
                f"field {field!r}" if field else "",
            )
            if part
        )
        super().__init__(f"invalid configuration ({where}): {message}" if where else message)


class MissingCredentialsError(ConfigError):
    """A provider needs an API key and none was given."""

    def __init__(self, provider: str, env_var: str | None) -> None:
        self.provider = provider
        self.env_var = env_var
        how = (
            f"set the environment variable {env_var} (export {env_var}=...)"
            if env_var
            else "set 'api_key_env' in the profile to the variable that holds the key"
        )
        super().__init__(
            f"no API key for provider {provider!r}: {how}, or pass api_key=... to muse.load(). "
            "Servers that need no key accept api_key='none'."
        )


# --- bad input -----------------------------------------------------------------------------


class InputError(MuseError):
    """A prompt, parameter or template value cannot be used."""


class InvalidParameterError(InputError):
    """A generation parameter has the wrong type or is out of range."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"invalid parameter {field!r}: {message}")


class InvalidPromptError(InputError):
    """The prompt is empty, of the wrong type, or not valid text."""

    def __init__(self, message: str) -> None:
        super().__init__(f"invalid prompt: {message}")


class UnsupportedParameterError(InputError):
    """A provider cannot honour a parameter or an input kind; nothing is silently dropped."""

    def __init__(self, provider: str, parameter: str, hint: str = "") -> None:
        self.provider = provider
        self.parameter = parameter
        super().__init__(
            f"provider {provider!r} does not support {parameter!r}"
            + (f": {hint}" if hint else "; remove it or choose a provider that supports it.")
        )


def _tokens(count: int) -> str:
    return f"{count} token" if count == 1 else f"{count} tokens"


class ContextLengthExceededError(InputError):
    """The prompt plus the requested new tokens do not fit the model's context window."""

    def __init__(
        self, prompt_tokens: int, max_tokens: int, context_length: int, *, hint: str = ""
    ) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_length = context_length
        super().__init__(
            f"prompt ({_tokens(prompt_tokens)}) + max_tokens ({max_tokens}) exceeds the model's "
            f"context length of {_tokens(context_length)}: shorten the prompt or lower max_tokens"
            + (f", or {hint}" if hint else "")
            + "."
        )


class TemplateError(InputError):
    """A prompt template is malformed or cannot be rendered."""


class MissingVariableError(TemplateError):
    """A template was rendered without values for some of its variables."""

    def __init__(self, missing: Sequence[str], template: str = "") -> None:
        self.missing = sorted(missing)
        names = ", ".join(repr(name) for name in self.missing)
        shown = f" in template {template[:60]!r}" if template else ""
        super().__init__(f"missing template variable(s) {names}{shown}: pass them to render().")


class UnsafeTemplateError(TemplateError):
    """A template uses attribute access, indexing, conversions or format specs."""


# --- environment ---------------------------------------------------------------------------


class BackendUnavailableError(MuseError):
    """A backend cannot run here: extra not installed, CUDA absent, or model files not found."""


class SandboxError(MuseError):
    """The code sandbox cannot run here, or was given bad arguments; the message says why.

    Never raised for what the sandboxed code does: that is in the run's report.
    """


class StructuredOutputError(MuseError):
    """A reply that is not what the call asked for, or one cut before it was complete.

    Raised when a reply does not validate against the call's ``schema``, ``regex``,
    ``choices`` or tools, and when ``max_tokens`` cut it short.

    ``.text`` is the raw reply (the partial one when cut), ``.errors`` the validation errors as
    readable strings, ``.finish_reason`` why the model stopped.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str,
        errors: Sequence[str] = (),
        finish_reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.text = text
        self.errors = list(errors)
        self.finish_reason = finish_reason
        #: The call's :class:`~muse_sdk.core.types.Bill` s: every reply that did not validate.
        self.bills: tuple[Any, ...] = ()


class RefusalError(StructuredOutputError):
    """The model refused to answer (OpenAI's ``message.refusal``); ``.refusal`` says why."""

    def __init__(self, refusal: str, *, finish_reason: str | None = None) -> None:
        super().__init__(
            f"the model refused to answer: {refusal}",
            text="",
            errors=[refusal],
            finish_reason=finish_reason,
        )
        self.refusal = refusal


class BatchError(MuseError):
    """Raised by :meth:`BatchResult.raise_for_errors`; carries every finished result."""

    def __init__(self, results: Sequence[Any], errors: Mapping[int, BaseException]) -> None:
        self.results = list(results)
        self.errors = dict(errors)
        first = min(errors)
        super().__init__(
            f"{len(errors)} of {len(self.results)} batch items failed (first: item {first}: "
            f"{errors[first]}); the finished results are in .results"
        )


# --- provider responses --------------------------------------------------------------------


class ProviderError(MuseError):
    """A provider answered with an error or could not be reached."""

    retryable: bool = False
    default_status: int | None = None
    #: How many attempts the retry policy made before giving up with this error.
    attempts: int = 1
    #: Token usage of a reply that was billed although it failed (a malformed body that still
    #: reported usage); ``None`` when nothing was billed, which is the usual case.
    usage: Any = None
    #: :class:`~muse_sdk.core.types.Bill` s of earlier attempts of the request, retried and billed.
    bills: tuple[Any, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status_code: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.provider = provider
        self.status_code = status_code if status_code is not None else self.default_status
        self.request_id = request_id
        if retryable is not None:
            self.retryable = retryable
        details = ", ".join(
            part
            for part in (
                f"provider {provider!r}" if provider else "",
                f"status {self.status_code}" if self.status_code else "",
                f"request id {request_id}" if request_id else "",
            )
            if part
        )
        super().__init__(f"{message} ({details})" if details else message)


class AuthenticationError(ProviderError):
    """The API key was rejected (401): check the key and the variable it is read from."""

    default_status = 401


class PermissionDeniedError(ProviderError):
    """The key is valid but may not use this model or endpoint (403)."""

    default_status = 403


class BadRequestError(ProviderError):
    """The server rejected the request as malformed (400, 422)."""

    default_status = 400


class NotFoundError(ProviderError):
    """The model or endpoint does not exist on this server (404)."""

    default_status = 404


class RateLimitError(ProviderError):
    """Too many requests (429); ``retry_after`` is the server's suggested wait in seconds."""

    retryable = True
    default_status = 429

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ServerError(ProviderError):
    """The server failed (5xx, 408, 409, or an unreadable reply); retried."""

    retryable = True


class ConnectionError(ProviderError, builtins.ConnectionError):
    """The server could not be reached; retried."""

    retryable = True


class TimeoutError(ProviderError, builtins.TimeoutError):
    """The server did not answer in time; retried."""

    retryable = True


class StreamInterruptedError(ProviderError):
    """A stream failed after yielding text; ``partial`` holds every text already received."""

    def __init__(self, message: str, *, partial: str, **kwargs: Any) -> None:
        self.partial = partial
        super().__init__(message, **kwargs)


class FallbackError(ProviderError):
    """Every generator of a fallback chain failed; the message names each member's failure.

    ``exceptions`` holds the members' errors in chain order (``failures`` pairs each with the
    member's name); ``attempts`` counts every request the chain made; ``retryable``,
    ``status_code`` and ``request_id`` are the last member's.
    """

    def __init__(self, failures: Sequence[tuple[str, ProviderError]]) -> None:
        self.failures = list(failures)
        self.exceptions = tuple(exc for _, exc in self.failures)
        last = self.exceptions[-1]
        each = "; ".join(
            f"[{i}] {name}: {type(exc).__name__}: {exc}"
            for i, (name, exc) in enumerate(self.failures, 1)
        )
        super().__init__(
            f"all {len(self.failures)} generators of the fallback chain failed: {each}",
            provider="fallback",
            status_code=last.status_code,
            request_id=last.request_id,
            retryable=last.retryable,
        )
        self.attempts = sum(exc.attempts for exc in self.exceptions)
