"""OpenTelemetry: spans when the application configured a provider, nothing otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once

import muse_sdk as muse
from muse_sdk import pricing
from tests.servers.openai_server import OpenAIServer, Reply

FAST = {"initial_wait_s": 0.001, "max_wait_s": 0.001, "jitter": False}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    # The API lets a provider be set once per process; tests put the default back.
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]


def by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_one_span_per_call_with_genai_attributes(spans: InMemorySpanExporter) -> None:
    pricing.set_price("fake:echo", input=1.0, output=2.0)
    try:
        gen = muse.load("fake:echo")
        gen.generate("one two three", max_tokens=2, temperature=0.5)
    finally:
        pricing.clear_prices()
    finished = spans.get_finished_spans()
    call = next(s for s in finished if s.name == "text_completion echo")
    attempt = next(s for s in finished if s.name == "attempt 1")
    assert attempt.parent.span_id == call.context.span_id
    attrs = dict(call.attributes)
    assert attrs["gen_ai.operation.name"] == "text_completion"
    assert attrs["gen_ai.system"] == "fake" and attrs["gen_ai.request.model"] == "echo"
    assert attrs["gen_ai.request.max_tokens"] == 2
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)
    assert attrs["gen_ai.usage.input_tokens"] == 3
    assert attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["muse.cost_usd"] == pytest.approx((3 * 1.0 + 2 * 2.0) / 1e6)
    assert call.status.status_code is StatusCode.UNSET
    assert not call.events  # no prompt or completion text unless asked for


def test_a_child_span_per_attempt_and_errors_set_the_status(spans: InMemorySpanExporter) -> None:
    gen = muse.load("fake:script", responses=["ok"], failures=["server"], retry=FAST)
    gen.generate([{"role": "user", "content": "hi"}])
    names = sorted(s.name for s in spans.get_finished_spans())
    assert names == ["attempt 1", "attempt 2", "chat script"]
    first = by_name(spans)["attempt 1"]
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes["error.type"] == "ServerError"
    spans.clear()
    failing = muse.load("fake:script", responses=["x"], failures=["auth"])
    with pytest.raises(muse.AuthenticationError):
        failing.generate("hi")
    call = by_name(spans)["text_completion script"]
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "AuthenticationError"


def test_every_span_ends_exactly_once(spans: InMemorySpanExporter) -> None:
    gen = muse.load(
        "fake:script", responses=["a b c d"], failures=["server", "timeout"], retry=FAST
    )
    gen.generate("x")
    stream = gen.stream("y")
    next(stream)
    stream.close()  # abandoned mid-way: the span still ends, once
    ids = [s.context.span_id for s in spans.get_finished_spans()]
    assert len(ids) == len(set(ids))
    assert len([s for s in spans.get_finished_spans() if s.name.startswith("text_completion")]) == 2


def test_content_only_when_opted_in_and_never_a_key(spans: InMemorySpanExporter) -> None:
    secret = "sk-" + "a" * 40
    gen = muse.load("fake:echo", trace_content=True)
    gen.generate(f"my key is {secret}")
    call = by_name(spans)["text_completion echo"]
    texts = " ".join(str(e.attributes) for e in call.events)
    assert "my key is" in texts and secret not in texts


def test_tracing_off_by_profile_or_environment(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    muse.load("fake:echo", tracing=False).generate("x")
    assert spans.get_finished_spans() == ()
    monkeypatch.setenv("MUSE_TRACING", "0")
    muse.load("fake:echo").generate("x")
    assert spans.get_finished_spans() == ()


def test_a_real_http_call_is_traced(spans: InMemorySpanExporter) -> None:
    with OpenAIServer() as server:
        server.script(Reply(text="Hello there"))
        gen = muse.load("openai:gpt-4o-mini", base_url=server.url, api_key="sk-test-1234567890")
        gen.generate([{"role": "user", "content": "hi"}])
    call = by_name(spans)["chat gpt-4o-mini"]
    assert call.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert call.attributes["gen_ai.usage.output_tokens"] > 0
    assert "muse.cost_usd" in call.attributes  # a model in the shipped price table


def test_without_a_configured_provider_nothing_is_imported_or_recorded() -> None:
    code = (
        "import sys, muse_sdk as m\n"
        "m.load('fake:echo').generate('x')\n"
        "print(any(k.startswith('opentelemetry') for k in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True
    )
    assert run.stdout.strip() == "False"
