"""HTTP errors in OpenAI's JSON shape, and how muse's exceptions become them.

Every error answers ``{"error": {"message", "type", "param", "code"}}`` with the status code that
OpenAI clients expect (their retry logic keys on it). Messages come from muse's own exceptions,
which never hold an API key or the prompt; anything unexpected becomes a bare 500 whose details
go to the server log, at debug level only, under the request id.
"""

from __future__ import annotations

import logging
from typing import Any

from muse_sdk import errors as e

__all__ = ["ApiError", "error_body", "from_exception", "logger"]

logger = logging.getLogger("muse_sdk.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ApiError(Exception):
    """An error answered to the client: status, OpenAI error fields and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` (whole seconds, at least 1) where a retry can succeed later."""
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, round(self.retry_after)))}

    def body(self) -> dict[str, Any]:
        """The JSON body of the reply (and of a mid-stream error event)."""
        return error_body(self.status, self.message, param=self.param, code=self.code)


def error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object for ``status``."""
    kind = _TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def from_exception(exc: BaseException, request_id: str, *, prompt_param: str) -> ApiError:
    """Map an exception raised while serving a request to the error the client sees."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, e.InputError):
        return _input_error(exc, prompt_param)
    if isinstance(exc, e.StructuredOutputError):
        return _structured_error(exc)
    if isinstance(exc, e.ProviderError):
        return _provider_error(exc)
    if isinstance(exc, e.BackendUnavailableError):
        return ApiError(503, str(exc), code="model_unavailable", retry_after=1)
    logger.error(
        "request %s failed: %s (run with --log-level debug for details)",
        request_id,
        type(exc).__name__,
    )
    logger.debug("request %s failed", request_id, exc_info=exc)
    return ApiError(
        500,
        f"internal server error (request id {request_id}); the server log has the details",
        code="internal_error",
    )


def _input_error(exc: e.InputError, prompt_param: str) -> ApiError:
    if isinstance(exc, e.ContextLengthExceededError):
        return ApiError(400, str(exc), param=prompt_param, code="context_length_exceeded")
    if isinstance(exc, e.InvalidParameterError):
        if exc.field == "schema":  # muse's name for what the client sent as response_format
            detail = str(exc).removeprefix("invalid parameter 'schema': ")
            message = f"invalid response_format: its schema is {detail}"
            return ApiError(400, message, param="response_format", code="invalid_parameter")
        return ApiError(400, str(exc), param=exc.field, code="invalid_parameter")
    if isinstance(exc, e.UnsupportedParameterError):
        if exc.parameter == "chat messages":
            return ApiError(
                400,
                "this model has no chat template, so /v1/chat/completions cannot turn messages "
                "into a prompt; send text to /v1/completions instead (muse's openai provider: "
                "api='completions'), or serve a model whose tokenizer has a chat template",
                param="messages",
                code="chat_template_missing",
            )
        return ApiError(400, str(exc), param=exc.parameter, code="unsupported_parameter")
    return ApiError(400, str(exc), param=prompt_param, code="invalid_prompt")


def _structured_error(exc: e.StructuredOutputError) -> ApiError:
    """A reply that is not what ``response_format`` or ``tools`` asked for.

    A reply cut by ``max_tokens`` is the request's limit (a 400 naming it: retrying unchanged
    would not help, and OpenAI clients retry 5xx); any other invalid reply is the model's
    failure, a 500 that a retry may fix (sampling differs).
    """
    if exc.finish_reason == "length":
        return ApiError(
            400,
            "a reply was cut by max_tokens before its JSON or tool call was complete; raise "
            "max_tokens (with n > 1 or several prompts, one cut reply fails the whole request)",
            param="max_tokens",
            code="output_truncated",
        )
    return ApiError(
        500,
        f"the model's reply is not valid for the request's response_format or tools: {exc}",
        code="invalid_model_output",
    )


def _provider_error(exc: e.ProviderError) -> ApiError:
    """An upstream failure (gateway mode) or a local backend failure."""
    message = str(exc)
    if isinstance(exc, e.StreamInterruptedError):  # .partial means nothing to an HTTP client
        message = f"the stream broke: {exc.__cause__ or exc}"
    if isinstance(exc, e.RateLimitError):
        return ApiError(429, message, code="upstream_rate_limited", retry_after=exc.retry_after)
    if isinstance(exc, e.BadRequestError):
        return ApiError(400, message, code="upstream_bad_request")
    if isinstance(exc, e.TimeoutError):
        return ApiError(504, message, code="timeout")
    if exc.provider == "local":
        return ApiError(500, message, code="backend_error")
    return ApiError(502, message, code="upstream_error")
