"""One observed call: hooks, a span, the response cache, the rate limiter and the call log.

:func:`scope_for` returns ``None`` when a generator has none of these on, and the call takes the
plain path. Otherwise the :class:`Scope` sees the call begin, each attempt start and fail, each
streamed chunk, and the end, and tells each feature what it needs.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from muse_sdk.core.types import GenerationResult, StreamChunk
from muse_sdk.hooks._dispatch import dispatch, global_hooks
from muse_sdk.hooks._otel import tracer

if TYPE_CHECKING:
    from muse_sdk.core.generator import Generator, Request
    from muse_sdk.hooks._events import Event
    from muse_sdk.hooks._otel import CallSpan

__all__ = ["Scope", "scope_for"]

T = TypeVar("T")
logger = logging.getLogger("muse_sdk.calls")


def scope_for(gen: Generator, request: Request, *, stream: bool) -> Scope | None:
    """The call's scope, or ``None`` when no feature is on (the common, free case)."""
    if not gen.observed:
        return None
    features = gen.features
    extra = global_hooks()
    hooks = features.hooks + extra if extra else features.hooks
    cache = features.cache if request.cache is None else request.cache
    if cache is False:  # cache=False on the call
        cache = None
    # The cheapest checks first: most calls have no feature on, and end here.
    span_tracer = tracer()
    if span_tracer is not None and not features.tracing_on:
        span_tracer = None
    if hooks or cache is not None or span_tracer is not None or features.limiter is not None:
        return Scope(gen, request, stream, hooks, cache, span_tracer, features.logging_on)
    if features.logging_on:
        return Scope(gen, request, stream, hooks, cache, None, True)
    return None


class Scope:
    """What the features see of one call (and its repair rounds)."""

    def __init__(
        self,
        gen: Generator,
        request: Request,
        stream: bool,
        hooks: Sequence[Callable[[Any], Any]],
        cache: Any,
        span_tracer: Any,
        log: bool,
    ) -> None:
        self.gen = gen
        self.request = request
        self.stream = stream
        self.hooks = tuple(hooks)
        self.cache = cache
        self.log = log
        self.call_id = uuid.uuid4().hex
        self.started_at = time.time()
        self._start = time.perf_counter()
        self._attempts = 0
        self._span: CallSpan | None = None
        self._permits: list[Any] = []
        operation = "text_completion" if isinstance(request.prompt, str) else "chat"
        self._emit(
            "RequestStarted",
            self.call_id,
            gen.name,
            gen.provider,
            gen.model,
            operation,
            request.prompt,
            request.params,
            stream,
            self.started_at,
        )
        if span_tracer is not None:
            content = gen.features.trace_content
            from muse_sdk.hooks._otel import CallSpan

            self._span = CallSpan(
                span_tracer,
                operation=operation,
                provider=gen.provider,
                model=gen.model,
                params=request.params,
                prompt=_prompt_text(request) if content else None,
            )

    def _emit(self, kind: str, *fields: Any) -> None:
        """Tell the hooks (the event is only built when there are some)."""
        if self.hooks:
            from muse_sdk.hooks import _events

            event: Event = getattr(_events, kind)(*fields)
            dispatch(event, self.hooks)

    # --- attempts ----------------------------------------------------------------------------

    def attempt(self, fn: Callable[[], T], request: Request) -> Callable[[], T]:
        """``fn`` as one attempt: rate-limited, with its own span."""

        def attempt() -> T:
            self._begin_attempt(request)
            limiter = self.gen.features.limiter
            if limiter is not None:
                self._permits.append(
                    limiter.acquire(_estimate(request), deadline_at=request.deadline_at)
                )
            return fn()

        return attempt

    def aattempt(
        self, fn: Callable[[], Awaitable[T]], request: Request
    ) -> Callable[[], Awaitable[T]]:
        """Async twin of :meth:`attempt`."""

        async def attempt() -> T:
            self._begin_attempt(request)
            limiter = self.gen.features.limiter
            if limiter is not None:
                permit = await limiter.aacquire(_estimate(request), deadline_at=request.deadline_at)
                self._permits.append(permit)
            return await fn()

        return attempt

    def _begin_attempt(self, request: Request) -> None:
        self._attempts += 1
        if self._span is not None:
            self._span.attempt_started(self._attempts)

    def retrying(self, error: Exception, attempt: int, wait_s: float) -> None:
        """An attempt failed and another follows after ``wait_s``."""
        if self._span is not None:
            self._span.attempt_ended(error)
        self._emit("AttemptFailed", self.call_id, self._attempts, error, wait_s)

    def chunk(self, chunk: StreamChunk) -> None:
        """A streamed chunk reached the caller."""
        self._emit("StreamChunkReceived", self.call_id, chunk)

    # --- the end -----------------------------------------------------------------------------

    def succeeded(self, result: GenerationResult) -> None:
        """The call's final result."""
        latency = time.perf_counter() - self._start
        if self._permits:
            self._permits[-1].settle(result.usage.total_tokens)
        if self._span is not None:
            self._span.succeeded(result, self.gen.features.trace_content)
        self._emit("ResponseReceived", self.call_id, result, latency)
        if self.log:
            self._record(result, None, latency)

    def abandoned(self) -> None:
        """The caller closed a stream before its end: the span ends, nothing else is told."""
        if self._span is not None:
            self._span.abandoned()

    def failed(self, error: BaseException) -> None:
        """The call failed for good (``error`` is re-raised by the caller)."""
        if not isinstance(error, Exception):  # cancelled: no result, nothing to report
            if self._span is not None:
                self._span.failed(error)
            return
        latency = time.perf_counter() - self._start
        if self._span is not None:
            self._span.failed(error)
        self._emit("AttemptFailed", self.call_id, max(self._attempts, 1), error, None)
        attempts = getattr(error, "attempts", max(self._attempts, 1))
        self._emit("RequestFailed", self.call_id, error, latency, attempts)
        if self.log:
            self._record(None, error, latency)

    def _record(
        self, result: GenerationResult | None, error: BaseException | None, latency: float
    ) -> None:
        try:
            _call_log().record(self._call_record(result, error, latency), secrets=self._secrets())
        except Exception:
            logger.warning("could not log the call", exc_info=True)

    def _secrets(self) -> list[str]:
        """The generator's secret settings (its API key), redacted from what is logged."""
        from pydantic import SecretStr

        settings = self.gen.settings
        values = (getattr(settings, name) for name in type(settings).model_fields)
        return [value.get_secret_value() for value in values if isinstance(value, SecretStr)]

    def _call_record(
        self, result: GenerationResult | None, error: BaseException | None, latency: float
    ) -> Any:
        from muse_sdk.calllog import CallRecord

        gen, request = self.gen, self.request
        usage = result.total_usage if result is not None else None
        return CallRecord(
            id=self.call_id,
            started_at=self.started_at,
            provider=result.provider if result is not None else gen.provider,
            model=result.model if result is not None else gen.model,
            profile=gen.features.profile,
            prompt=_prompt_text(request),
            reply=result.text if result is not None else None,
            params=request.params.model_dump(mode="json", exclude_unset=True),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cost=result.cost if result is not None else None,
            latency_s=latency,
            attempts=result.attempts if result is not None else getattr(error, "attempts", 1),
            error=f"{type(error).__name__}: {error}" if error is not None else None,
            cached=result.cached if result is not None else False,
            stream=self.stream,
            finish_reason=result.finish_reason if result is not None else None,
        )


_LOGS: dict[str, Any] = {}


def _call_log() -> Any:
    """The process's call log for the current ``MUSE_LOG_PATH`` (one connection per path)."""
    import os

    from muse_sdk.calllog import CallLog

    where = os.environ.get("MUSE_LOG_PATH", "") + "|" + os.environ.get("XDG_DATA_HOME", "")
    log = _LOGS.get(where)
    if log is None:
        log = _LOGS[where] = CallLog()
    return log


def _estimate(request: Request) -> int:
    from muse_sdk.ratelimit import estimate_tokens

    params = request.params
    budget = params.max_tokens * params.n if params.max_tokens is not None else None
    return int(estimate_tokens(request.prompt, budget))


def _prompt_text(request: Request) -> str:
    prompt = request.prompt
    if isinstance(prompt, str):
        return prompt
    return json.dumps([m.wire() for m in prompt], ensure_ascii=False)
