"""``muse serve`` over an OpenAI-backed profile: a gateway adding retries and fallbacks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server.harness import Served
from tests.server.test_endpoints import sse_events
from tests.servers.openai_server import OpenAIServer, Reply

UPSTREAM_KEY = "sk-upstream-secret-77aa"
FAST_RETRY = {"max_attempts": 3, "initial_wait_s": 0.01, "max_wait_s": 0.02, "jitter": False}


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: OpenAIServer) -> Iterator[Served]:
    profile = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": upstream.url,
        "api_key": UPSTREAM_KEY,
        "api": "completions",
        "retry": FAST_RETRY,
    }
    config = {
        "profiles": {
            "remote": profile,
            "safe": {**profile, "retry": {"max_attempts": 1}, "fallbacks": ["fake:echo"]},
            "chatty": {**profile, "api": "chat"},
        }
    }
    with Served(["remote", "safe", "chatty"], config=config) as served:
        yield served


@pytest.fixture(autouse=True)
def _fresh(upstream: OpenAIServer) -> None:
    upstream.reset()


def _complete(gateway: Served, **body: object) -> httpx.Response:
    return httpx.post(f"{gateway.url}/completions", json={"model": "remote", **body}, timeout=30)


def test_the_gateway_forwards_to_the_upstream_server(
    gateway: Served, upstream: OpenAIServer
) -> None:
    reply = _complete(gateway, prompt="hello", max_tokens=4, presence_penalty=0.5)
    body = reply.json()
    assert body["model"] == "remote"
    assert body["choices"][0]["text"] == "Once upon a time,"
    assert body["usage"]["completion_tokens"] == 4
    sent = upstream.last
    assert sent.json["model"] == "gpt-4o-mini" and sent.json["prompt"] == "hello"
    assert sent.json["presence_penalty"] == 0.5  # passed through: the openai provider takes it
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_the_gateway_retries_an_upstream_failure(gateway: Served, upstream: OpenAIServer) -> None:
    upstream.script(Reply.error(500), Reply.error(503))
    reply = _complete(gateway, prompt="hello", max_tokens=2)
    assert reply.status_code == 200 and reply.json()["choices"][0]["text"] == "Once upon"
    assert len(upstream.requests) == 3


def test_an_upstream_that_stays_down_is_502(gateway: Served, upstream: OpenAIServer) -> None:
    upstream.script(*[Reply.error(500)] * 3)
    reply = _complete(gateway, prompt="hello")
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "upstream_error"


def test_an_upstream_key_problem_is_not_the_clients_401(
    gateway: Served, upstream: OpenAIServer
) -> None:
    upstream.script(Reply.error(401, f"Incorrect API key provided: {UPSTREAM_KEY}"))
    reply = _complete(gateway, prompt="hello")
    assert reply.status_code == 502
    assert UPSTREAM_KEY not in reply.text and UPSTREAM_KEY[-4:] not in reply.text


def test_an_upstream_rate_limit_is_429_with_its_retry_after(
    gateway: Served, upstream: OpenAIServer
) -> None:
    upstream.script(*[Reply.error(429, retry_after="120")] * 3)
    reply = _complete(gateway, prompt="hello")
    assert reply.status_code == 429 and reply.headers["retry-after"] == "120"


def test_the_gateway_streams(gateway: Served, upstream: OpenAIServer) -> None:
    body = {
        "model": "remote",
        "prompt": "x",
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{gateway.url}/completions", json=body, timeout=30) as reply:
        events = sse_events(reply)
    assert "".join(e["choices"][0]["text"] for e in events[:-2]) == "Once upon a"
    assert events[-2]["usage"]["completion_tokens"] == 3 and events[-1] == "[DONE]"
    assert upstream.last.json["stream"] is True


def test_a_fallback_answers_when_the_upstream_is_down(
    gateway: Served, upstream: OpenAIServer
) -> None:
    upstream.script(Reply.error(500))
    body = {"model": "safe", "prompt": "from the fallback", "max_tokens": 3}
    reply = httpx.post(f"{gateway.url}/completions", json=body, timeout=30)
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["text"] == "from the fallback"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("stream", [False, True])
def test_tools_reach_the_upstream_and_its_calls_come_back(
    gateway: Served, upstream: OpenAIServer, stream: bool
) -> None:
    upstream.script(Reply(tool_calls=(("call_9", "get_weather", '{"city": "Paris"}'),)))
    body = {
        "model": "chatty",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER],
        "tool_choice": "required",
        "stream": stream,
    }
    reply = httpx.post(f"{gateway.url}/chat/completions", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    sent = upstream.requests[-1].json
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "required"
    if stream:
        deltas = [
            call
            for event in sse_events(reply)
            if event != "[DONE]"
            for choice in event.get("choices", [])
            for call in choice.get("delta", {}).get("tool_calls") or []
        ]
        calls = [{"id": d["id"], "function": d["function"]} for d in deltas]
    else:
        message = reply.json()["choices"][0]["message"]
        calls = [{"id": c["id"], "function": c["function"]} for c in message["tool_calls"]]
        assert reply.json()["choices"][0]["finish_reason"] == "tool_calls"
    assert calls == [
        {"id": "call_9", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]
