"""OpenTelemetry spans, the way libraries with native instrumentation do it.

Nothing is imported here: when the application has configured a tracer provider it has imported
``opentelemetry.trace`` itself, so a call finds it in ``sys.modules``. Without one, :func:`tracer`
returns ``None`` after one dict lookup and the call costs nothing more. Attributes follow the
GenAI semantic conventions; prompt and completion text are recorded only when asked for.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from muse_sdk.core.types import GenerationParams, GenerationResult

__all__ = ["CallSpan", "tracer"]


def _redact(text: str) -> str:
    """Key-shaped strings never reach a span, even from a prompt the user opted to record."""
    from muse_sdk._redact import Redactor

    return Redactor()(text)


def tracer() -> Any | None:
    """The ``muse_sdk`` tracer when the application configured a provider, else ``None``."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    from muse_sdk._version import __version__

    return provider.get_tracer("muse_sdk", __version__)


class CallSpan:
    """One call's span and its attempts' child spans; each ends exactly once."""

    def __init__(
        self,
        tracer: Any,
        *,
        operation: str,
        provider: str,
        model: str,
        params: GenerationParams,
        prompt: str | None,
    ) -> None:
        from opentelemetry import trace

        self._trace = trace
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.system": provider,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        for name, value in _request_attributes(params):
            attributes[name] = value
        self._tracer = tracer
        self.span = tracer.start_span(
            f"{operation} {model}", kind=trace.SpanKind.CLIENT, attributes=attributes
        )
        if prompt is not None:
            self.span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": _redact(prompt)})
        self._attempt: Any = None
        self._ended = False

    def attempt_started(self, number: int) -> None:
        """Open the child span of attempt ``number`` (closing a previous one left open)."""
        self.attempt_ended(None)
        context = self._trace.set_span_in_context(self.span)
        self._attempt = self._tracer.start_span(
            f"attempt {number}", context=context, attributes={"muse.attempt": number}
        )

    def attempt_ended(self, error: BaseException | None) -> None:
        """Close the open attempt span, marked failed when ``error`` is given."""
        span, self._attempt = self._attempt, None
        if span is None:
            return
        if error is not None:
            _mark_failed(self._trace, span, error)
        span.end()

    def succeeded(self, result: GenerationResult, completion: bool) -> None:
        """End the span with the response's attributes."""
        if self._ended:
            return
        self.attempt_ended(None)
        span = self.span
        span.set_attribute("gen_ai.response.model", result.model)
        if result.id:
            span.set_attribute("gen_ai.response.id", result.id)
        reasons = [c.finish_reason or "" for c in result.choices]
        span.set_attribute("gen_ai.response.finish_reasons", reasons)
        usage = result.total_usage
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        span.set_attribute("muse.attempts", result.attempts)
        span.set_attribute("muse.cached", result.cached)
        cost = result.cost
        if cost is not None:
            span.set_attribute("muse.cost_usd", cost)
        if completion:
            span.add_event("gen_ai.content.completion", {"gen_ai.completion": _redact(result.text)})
        self._end()

    def abandoned(self) -> None:
        """End the span of a stream its caller closed early."""
        if self._ended:
            return
        self.attempt_ended(None)
        self.span.set_attribute("muse.abandoned", True)
        self._end()

    def failed(self, error: BaseException) -> None:
        """End the span (and an open attempt's) with the error."""
        if self._ended:
            return
        self.attempt_ended(error)
        _mark_failed(self._trace, self.span, error)
        self._end()

    def _end(self) -> None:
        self._ended = True
        self.span.end()


def _mark_failed(trace: Any, span: Any, error: BaseException) -> None:
    span.set_attribute("error.type", type(error).__name__)
    span.set_status(trace.Status(trace.StatusCode.ERROR, _redact(str(error))[:500]))


def _request_attributes(params: GenerationParams) -> Sequence[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = []
    for field, name in (
        ("max_tokens", "gen_ai.request.max_tokens"),
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
        ("top_k", "gen_ai.request.top_k"),
        ("seed", "gen_ai.request.seed"),
        ("n", "gen_ai.request.choice.count"),
    ):
        value = getattr(params, field)
        if value is not None:
            pairs.append((name, value))
    if params.stop:
        pairs.append(("gen_ai.request.stop_sequences", list(params.stop)))
    return pairs
