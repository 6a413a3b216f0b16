"""Every endpoint of ``muse serve`` over the wire, against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.server.harness import Served


def sse_events(response: httpx.Response) -> list[Any]:
    """The JSON payloads of an SSE reply, with ``"[DONE]"`` kept as a string."""
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_health_reports_ready_with_the_models(client: httpx.Client) -> None:
    reply = client.get("/health")
    assert reply.status_code == 200
    assert reply.json()["status"] == "ok"
    assert reply.json()["models"] == ["echo", "slow", "flaky", "short"]


def test_models_lists_every_served_model(client: httpx.Client) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["echo", "slow", "flaky", "short"]
    assert all(m["object"] == "model" and m["owned_by"] == "muse:fake" for m in body["data"])


@pytest.mark.parametrize("name", ["echo", "fake:echo"])
def test_a_model_is_found_by_id_or_spec(client: httpx.Client, name: str) -> None:
    reply = client.get(f"/v1/models/{name}")
    assert reply.status_code == 200
    assert reply.json()["id"] == "echo"


def test_completion_plain(client: httpx.Client) -> None:
    reply = client.post(
        "/v1/completions", json={"model": "echo", "prompt": "one two three four", "max_tokens": 3}
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["object"] == "text_completion" and body["model"] == "echo"
    assert body["id"].startswith("cmpl-")
    assert body["choices"] == [
        {"index": 0, "text": "one two three", "logprobs": None, "finish_reason": "length"}
    ]
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    assert reply.headers["x-request-id"].startswith("req-")


def test_completion_takes_n_stop_and_the_sampling_parameters(client: httpx.Client) -> None:
    body = client.post(
        "/v1/completions",
        json={
            "model": "echo",
            "prompt": "alpha beta. gamma",
            "n": 2,
            "stop": ["."],
            "temperature": 0.5,
            "top_p": 0.9,
            "seed": 3,
            "top_k": 5,
            "repetition_penalty": 1.1,
            "max_tokens": 10,
        },
    ).json()
    assert [(c["index"], c["text"], c["finish_reason"]) for c in body["choices"]] == [
        (0, "alpha beta", "stop"),
        (1, "alpha beta", "stop"),
    ]


def test_a_prompt_list_numbers_choices_prompt_by_prompt(client: httpx.Client) -> None:
    body = client.post(
        "/v1/completions", json={"model": "echo", "prompt": ["a b", "c d"], "n": 2}
    ).json()
    assert [(c["index"], c["text"]) for c in body["choices"]] == [
        (0, "a b"),
        (1, "a b"),
        (2, "c d"),
        (3, "c d"),
    ]
    assert body["usage"]["prompt_tokens"] == 4


def test_completion_stream_with_usage(client: httpx.Client) -> None:
    request = {
        "model": "echo",
        "prompt": "one two three",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with client.stream("POST", "/v1/completions", json=request) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = sse_events(reply)
    assert events[-1] == "[DONE]"
    chunks, usage = events[:-2], events[-2]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "one two three"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert {c["id"] for c in chunks} == {usage["id"]}
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_stream_without_include_usage_sends_no_usage_chunk(client: httpx.Client) -> None:
    request = {"model": "echo", "prompt": "one two", "stream": True}
    with client.stream("POST", "/v1/completions", json=request) as reply:
        events = sse_events(reply)
    assert all("usage" not in e for e in events[:-1])
    assert events[-1] == "[DONE]"


def test_streamed_prompt_list_keeps_every_choice(client: httpx.Client) -> None:
    request = {"model": "echo", "prompt": ["a b", "c d e"], "n": 2, "stream": True}
    with client.stream("POST", "/v1/completions", json=request) as reply:
        events = sse_events(reply)[:-1]
    texts: dict[int, str] = {}
    for event in events:
        for choice in event["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    assert texts == {0: "a b", 1: "a b", 2: "c d e", 3: "c d e"}


def test_chat_plain(client: httpx.Client) -> None:
    reply = client.post(
        "/v1/chat/completions",
        json={
            "model": "echo",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
            ],
            "max_completion_tokens": 1,
        },
    )
    body = reply.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]


def test_chat_stream_names_the_role_first_then_deltas(client: httpx.Client) -> None:
    request = {
        "model": "echo",
        "messages": [{"role": "user", "content": "hi you"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with client.stream("POST", "/v1/chat/completions", json=request) as reply:
        events = sse_events(reply)
    assert events[0]["object"] == "chat.completion.chunk"
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [e["choices"][0]["delta"].get("content", "") for e in events[1:-2]]
    assert "".join(deltas) == "hi you"
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["usage"]["completion_tokens"] == 2
    assert events[-1] == "[DONE]"


def test_neutral_values_of_unsupported_fields_are_accepted(client: httpx.Client) -> None:
    reply = client.post(
        "/v1/completions",
        json={
            "model": "echo",
            "prompt": "ok",
            "presence_penalty": 0,
            "frequency_penalty": 0.0,
            "logit_bias": {},
            "best_of": 1,
            "echo": False,
            "logprobs": None,
            "user": "someone",
            "temperature": None,
        },
    )
    assert reply.status_code == 200, reply.text
    assert "x-muse-ignored-fields" not in reply.headers


def test_unknown_fields_are_ignored_and_named(client: httpx.Client) -> None:
    reply = client.post(
        "/v1/completions", json={"model": "echo", "prompt": "ok", "min_p": 0.1, "ignore_eos": 1}
    )
    assert reply.status_code == 200
    assert reply.headers["x-muse-ignored-fields"] == "ignore_eos,min_p"


def test_a_request_without_model_goes_to_the_first_served_model(client: httpx.Client) -> None:
    body = client.post("/v1/completions", json={"prompt": "hello"}).json()
    assert body["model"] == "echo" and body["choices"][0]["text"] == "hello"


def test_profile_defaults_apply_to_served_requests(tmp_path: Any) -> None:
    config = {"profiles": {"brief": {"provider": "fake", "model": "echo", "max_tokens": 2}}}
    with Served(["brief"], config=config) as served:
        body = httpx.post(f"{served.url}/completions", json={"prompt": "a b c d"}).json()
    assert body["choices"][0]["text"] == "a b" and body["model"] == "brief"


def test_named_specs_serve_one_model_under_several_names() -> None:
    with Served(["first=fake:echo", "second=fake:echo"]) as served:
        models = httpx.get(f"{served.url}/models").json()["data"]
        reply = httpx.post(f"{served.url}/completions", json={"model": "second", "prompt": "x"})
    assert [m["id"] for m in models] == ["first", "second"]
    assert reply.json()["model"] == "second"
