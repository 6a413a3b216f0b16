"""Errors in OpenAI's JSON shape and status codes; nothing secret or private in them."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

import muse_sdk as muse
from muse_sdk.core.generator import Generator, Request
from muse_sdk.core.types import GenerationResult, StreamChunk
from muse_sdk.errors import ProviderError
from tests.server.harness import Served
from tests.server.test_endpoints import sse_events

SECRET_PROMPT = "zebra-private-prompt-31337"
KEY = "sk-serve-test-key-9f8e7d"


def error_of(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert SECRET_PROMPT not in reply.text and "Traceback" not in reply.text
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"n": 0}, "n"),
        ({"max_tokens": "many"}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"top_p": 0}, "top_p"),
        ({"logprobs": 5}, "logprobs"),
        ({"echo": True}, "echo"),
        ({"suffix": "tail"}, "suffix"),
        ({"stream_options": "usage"}, "stream_options"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "   "}, "prompt"),
    ],
)
def test_bad_completion_parameters_are_400_with_param(
    client: httpx.Client, body: dict[str, Any], param: str
) -> None:
    request = {"model": "echo", "prompt": SECRET_PROMPT, **body}
    error = error_of(client.post("/v1/completions", json=request), 400)
    assert error["param"] == param and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([], "messages"),
        ([{"role": "robot", "content": SECRET_PROMPT}], "messages[0].role"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            "messages[0].content",
        ),
        ([{"content": SECRET_PROMPT}], "messages[0]"),
    ],
)
def test_bad_chat_messages_are_400_with_param(
    client: httpx.Client, messages: list[Any], param: str
) -> None:
    reply = client.post("/v1/chat/completions", json={"model": "echo", "messages": messages})
    assert error_of(reply, 400)["param"] == param


def test_tools_are_refused_on_completions(client: httpx.Client) -> None:
    # Chat serves tools (tests/server/test_structured.py); legacy completions have none.
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    reply = client.post(
        "/v1/completions", json={"model": "echo", "prompt": SECRET_PROMPT, "tools": tools}
    )
    assert error_of(reply, 400)["param"] == "tools"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", "\u00e9".encode("latin-1")])
def test_a_body_that_is_not_a_json_object_is_400(client: httpx.Client, body: bytes) -> None:
    reply = client.post(
        "/v1/completions", content=body, headers={"content-type": "application/json"}
    )
    assert error_of(reply, 400)["code"] == "invalid_json"


def test_unknown_model_is_404(client: httpx.Client) -> None:
    reply = client.post("/v1/completions", json={"model": "gpt-9", "prompt": SECRET_PROMPT})
    error = error_of(reply, 404)
    assert (error["param"], error["code"]) == ("model", "model_not_found")
    assert "echo" in error["message"]  # says what is served
    assert error_of(client.get("/v1/models/gpt-9"), 404)["code"] == "model_not_found"


@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_longer_than_the_context_is_400(client: httpx.Client, stream: bool) -> None:
    prompt = " ".join([SECRET_PROMPT] * 12)
    reply = client.post(
        "/v1/completions", json={"model": "short", "prompt": prompt, "stream": stream}
    )
    error = error_of(reply, 400)
    assert (error["param"], error["code"]) == ("prompt", "context_length_exceeded")


def test_an_oversized_body_is_413(client: httpx.Client) -> None:
    big = {"model": "echo", "prompt": "x" * (5 * 1024 * 1024)}
    assert error_of(client.post("/v1/completions", json=big), 413)["code"] == "body_too_large"


def test_an_oversized_chunked_body_is_413_too(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "echo", "prompt": "'
        for _ in range(80):
            yield b"y" * 65536
        yield b'"}'

    reply = client.post("/v1/completions", content=chunks())
    assert error_of(reply, 413)["code"] == "body_too_large"


async def test_a_full_queue_is_429_with_retry_after(fake_served: Served) -> None:
    async with httpx.AsyncClient(base_url=fake_served.url, timeout=30) as http:
        slow = [
            asyncio.ensure_future(http.post("/completions", json={"model": "slow", "prompt": "x"}))
            for _ in range(3)
        ]
        while fake_served.app.state.muse.admission.in_flight < 3:
            await asyncio.sleep(0.01)
        reply = await http.post("/completions", json={"model": "echo", "prompt": SECRET_PROMPT})
        done = await asyncio.gather(*slow)
    error = error_of(reply, 429)
    assert error["code"] == "queue_full" and reply.headers["retry-after"] == "1"
    assert [r.status_code for r in done] == [200, 200, 200]
    assert fake_served.app.state.muse.admission.in_flight == 0


def test_an_error_mid_stream_is_an_error_event_then_the_end(client: httpx.Client) -> None:
    request = {"model": "flaky", "prompt": f"one two three {SECRET_PROMPT}", "stream": True}
    with client.stream("POST", "/v1/completions", json=request) as reply:
        assert reply.status_code == 200
        events = sse_events(reply)
    assert [e["choices"][0]["text"] for e in events[:-1]] == ["one", " two"]
    error = events[-1]["error"]
    assert error["type"] == "upstream_error"
    assert error["message"] == "the stream broke: scripted stream interruption (provider 'fake')"
    assert "[DONE]" not in events and SECRET_PROMPT not in str(events)


def test_the_openai_client_raises_on_a_mid_stream_error(fake_served: Served) -> None:
    client = openai.OpenAI(base_url=fake_served.url, api_key="none", max_retries=0)
    stream = client.completions.create(model="flaky", prompt="one two three", stream=True)
    with pytest.raises(openai.APIError, match="stream broke"):
        for _ in stream:
            pass


# --- authentication -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed() -> Iterator[Served]:
    with Served(["fake:echo"], api_key=KEY) as served:
        yield served


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": KEY}, {"authorization": "Basic x"}],
)
def test_a_missing_or_wrong_key_is_401(keyed: Served, headers: dict[str, str]) -> None:
    for reply in (
        httpx.post(f"{keyed.url}/completions", json={"prompt": "x"}, headers=headers),
        httpx.get(f"{keyed.url}/models", headers=headers),
    ):
        error = error_of(reply, 401)
        assert error["code"] == "invalid_api_key" and KEY not in reply.text


@pytest.mark.parametrize(
    "headers",
    [{"authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"}, {"api-key": KEY}],
)
def test_the_right_key_is_let_in(keyed: Served, headers: dict[str, str]) -> None:
    reply = httpx.post(f"{keyed.url}/completions", json={"prompt": "hi"}, headers=headers)
    assert reply.status_code == 200 and reply.json()["choices"][0]["text"] == "hi"


def test_health_needs_no_key(keyed: Served) -> None:
    assert httpx.get(f"{keyed.root}/health").status_code == 200


def test_the_openai_client_authenticates(keyed: Served) -> None:
    assert openai.OpenAI(base_url=keyed.url, api_key=KEY).models.list().data[0].id == "echo"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed.url, api_key="nope", max_retries=0).models.list()


# --- loading ----------------------------------------------------------------------------------


def test_503_while_loading_then_ready() -> None:
    release = threading.Event()

    def slow_loader(spec: str | None) -> Generator:
        release.wait(30)
        return muse.load(spec)

    with Served(["fake:echo"], loader=slow_loader, wait_ready=False) as served:
        health = httpx.get(f"{served.root}/health")
        reply = httpx.post(f"{served.url}/completions", json={"prompt": "x"})
        release.set()
        while httpx.get(f"{served.root}/health").status_code != 200:
            pass
        ready = httpx.post(f"{served.url}/completions", json={"prompt": "x"})
    assert health.status_code == 503 and health.json() == {"status": "loading"}
    assert error_of(reply, 503)["code"] == "model_loading" and "retry-after" in reply.headers
    assert ready.status_code == 200


def test_a_failed_load_is_reported_by_health_and_requests() -> None:
    with Served(["fake:nonexistent"], wait_ready=True) as served:
        health = httpx.get(f"{served.root}/health")
        reply = httpx.post(f"{served.url}/completions", json={"prompt": "x"})
    assert health.status_code == 503 and health.json()["status"] == "failed"
    assert "nonexistent" in health.json()["error"]
    assert error_of(reply, 503)["code"] == "model_failed"


# --- internal errors --------------------------------------------------------------------------


class BrokenGenerator(Generator):
    """A provider with a bug: its error message holds the prompt."""

    provider = "broken"

    def _generate(self, request: Request) -> GenerationResult:
        raise RuntimeError(f"bug while handling {request.prompt!r} with key {KEY}")

    def _stream(self, request: Request) -> Iterator[StreamChunk]:
        yield StreamChunk(text="partial")
        raise RuntimeError(f"bug while streaming {request.prompt!r}")


class UpstreamDown(Generator):
    provider = "upstream"

    def _generate(self, request: Request) -> GenerationResult:
        raise ProviderError("the upstream server answered 502", provider="upstream")


@pytest.fixture(scope="module")
def broken() -> Iterator[Served]:
    generators = {"broken": BrokenGenerator("m"), "upstream": UpstreamDown("m")}
    with Served(["broken", "upstream"], loader=lambda spec: generators[str(spec)]) as served:
        yield served


def test_an_unexpected_error_is_a_bare_500_and_a_quiet_log_line(
    broken: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = {"model": "broken", "prompt": SECRET_PROMPT}
    reply = httpx.post(f"{broken.url}/completions", json=body)
    error = error_of(reply, 500)
    assert error["type"] == "server_error" and reply.headers["x-request-id"] in error["message"]
    assert KEY not in reply.text and "RuntimeError" not in reply.text
    assert reply.headers["x-request-id"] in caplog.text and "RuntimeError" in caplog.text
    assert SECRET_PROMPT not in caplog.text and KEY not in caplog.text
    assert "Traceback" not in caplog.text


def test_an_unexpected_error_mid_stream_is_a_500_event(broken: Served) -> None:
    request = {"model": "broken", "prompt": SECRET_PROMPT, "stream": True}
    with httpx.stream("POST", f"{broken.url}/completions", json=request) as reply:
        events = sse_events(reply)
    assert events[0]["choices"][0]["text"] == "partial"
    assert events[-1]["error"]["type"] == "server_error"
    assert SECRET_PROMPT not in str(events)


def test_an_upstream_failure_is_502(broken: Served) -> None:
    reply = httpx.post(f"{broken.url}/completions", json={"model": "upstream", "prompt": "x"})
    assert error_of(reply, 502)["type"] == "upstream_error"


def test_one_failing_prompt_of_a_list_fails_the_request(client: httpx.Client) -> None:
    prompts = ["fine", " ".join(["word"] * 12)]
    reply = client.post("/v1/completions", json={"model": "short", "prompt": prompts})
    assert error_of(reply, 400)["code"] == "context_length_exceeded"
