"""``response_format`` and ``tools`` over generators that are not the OpenAI gateway.

The official ``openai`` client against ``muse serve`` serving muse-tiny (constrained decoding;
``tiny-chat`` is a copy with a chat template, which chat needs) and fake profiles whose scripted
replies are tool calls, JSON, or invalid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.server.harness import Served, chat_model
from tests.server.test_endpoints import sse_events

openai = pytest.importorskip("openai")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
            },
            "required": ["city"],
        },
    },
}
CITY = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "population": {"type": "integer", "minimum": 0},
    },
    "required": ["name", "population"],
    "additionalProperties": False,
}
CITY_FORMAT = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY}}
ASK = [{"role": "user", "content": "Describe a city."}]
PROFILES = {
    "profiles": {
        "weather": {
            "provider": "fake",
            "model": "script",
            "responses": [json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})],
        },
        "bad": {
            "provider": "fake",
            "model": "script",
            "responses": [json.dumps({"name": "get_weather", "arguments": {"city": 3}})],
        },
        "city": {
            "provider": "fake",
            "model": "script",
            "responses": ['{"name": "Paris", "population": 2100000}'],
        },
    }
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    chat_dir: Path = chat_model(tmp_path_factory.mktemp("models"))
    models = ["tiny=local:muse-tiny", f"tiny-chat=local:{chat_dir}", "weather", "bad", "city"]
    with Served([*models, "echo=fake:echo"], config=PROFILES) as running:
        yield running


@pytest.fixture
def client(served: Served) -> Iterator[Any]:
    with openai.OpenAI(base_url=served.url, api_key="none", max_retries=0) as c:
        yield c


def _chat(served: Served, **body: Any) -> httpx.Response:
    body = {"messages": ASK, **body}
    return httpx.post(f"{served.url}/chat/completions", json=body, timeout=120)


def _error(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error: dict[str, Any] = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# --- muse-tiny: constrained decoding -------------------------------------------------------------


def test_json_schema_through_the_openai_client_validates(client: Any) -> None:
    reply = client.chat.completions.create(
        model="tiny-chat", messages=ASK, response_format=CITY_FORMAT, max_tokens=80, seed=1
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content), CITY)


def test_json_object_gives_an_object(client: Any) -> None:
    reply = client.chat.completions.create(
        model="tiny-chat",
        messages=ASK,
        response_format={"type": "json_object"},
        max_tokens=60,
        temperature=0,
    )
    if reply.choices[0].finish_reason == "stop":  # an open object may run to max_tokens
        assert isinstance(json.loads(reply.choices[0].message.content), dict)
    else:
        assert reply.choices[0].finish_reason == "length"


def test_completions_take_response_format_too(served: Served) -> None:
    body = {"model": "tiny", "prompt": "A city:", "response_format": CITY_FORMAT, "max_tokens": 80}
    reply = httpx.post(f"{served.url}/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    jsonschema.validate(json.loads(choice["text"]), CITY)


def test_a_required_tool_call_on_a_local_model(client: Any) -> None:
    reply = client.chat.completions.create(
        model="tiny-chat",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=80,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


# --- tool calls: plain and streamed --------------------------------------------------------------


@pytest.mark.parametrize("model", ["weather", "tiny-chat"])
def test_streamed_tool_calls_equal_the_plain_ones(client: Any, model: str) -> None:
    params: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER],
        "tool_choice": "required",
        "max_tokens": 80,
        "temperature": 0,
    }
    plain = client.chat.completions.create(**params).choices[0]
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in client.chat.completions.create(**params, stream=True):
        for choice in chunk.choices:
            assert not choice.delta.content  # the call's JSON is not sent as text
            for delta in choice.delta.tool_calls or ():
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert finish == plain.finish_reason == "tool_calls"
    expected = [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in plain.message.tool_calls
    ]
    assert [calls[i] for i in sorted(calls)] == expected
    if model == "weather":
        assert json.loads(expected[0]["arguments"]) == {"city": "Paris"}


def test_a_conversation_with_tool_messages_is_accepted(served: Served) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    reply = _chat(served, model="echo", messages=messages, tools=[WEATHER])
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("sunny", "stop")


def test_a_text_answer_with_tools_auto_streams_as_content(served: Served) -> None:
    body = {"model": "echo", "stream": True, "tools": [WEATHER], "tool_choice": "auto"}
    with httpx.stream(
        "POST", f"{served.url}/chat/completions", json={"messages": ASK, **body}, timeout=30
    ) as reply:
        events = sse_events(reply)
    deltas = [e["choices"][0]["delta"].get("content", "") for e in events[:-1]]
    assert "".join(deltas) == "Describe a city."
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_a_malformed_tool_message_is_400(served: Served) -> None:
    bad = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    messages = [*ASK, {"role": "assistant", "content": None, "tool_calls": [bad]}]
    assert _error(_chat(served, model="echo", messages=messages), 400)["param"] == "messages[1]"


# --- cut replies, bad requests, invalid replies --------------------------------------------------


def test_a_reply_cut_by_max_tokens_is_200_with_length(served: Served) -> None:
    reply = _chat(served, model="city", response_format=CITY_FORMAT, max_tokens=2)
    assert reply.status_code == 200, reply.text
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == '{"name": "Paris",'
    assert reply.json()["usage"]["completion_tokens"] == 2


def test_a_streamed_cut_ends_with_length_and_no_error(served: Served) -> None:
    body = {"model": "city", "response_format": CITY_FORMAT, "max_tokens": 2, "stream": True}
    with httpx.stream(
        "POST", f"{served.url}/chat/completions", json={"messages": ASK, **body}, timeout=30
    ) as reply:
        events = sse_events(reply)
    assert not any("error" in e for e in events if isinstance(e, dict))
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == '{"name": "Paris",'
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-1] == "[DONE]"


def test_a_cut_among_several_choices_is_400_naming_max_tokens(served: Served) -> None:
    reply = _chat(served, model="city", response_format=CITY_FORMAT, max_tokens=2, n=2)
    error = _error(reply, 400)
    assert (error["param"], error["code"]) == ("max_tokens", "output_truncated")


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"name": "x"}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objectx"}}},
        {"type": "xml"},
        "json",
    ],
)
def test_a_bad_response_format_is_400(served: Served, response_format: Any) -> None:
    error = _error(_chat(served, model="echo", response_format=response_format), 400)
    assert error["param"] == "response_format" and error["type"] == "invalid_request_error"
    assert "response_format" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": "get_time"}, "tool_choice"),
        ({"tools": "get_weather"}, "tools"),
        ({"functions": [WEATHER["function"]]}, "functions"),
    ],
)
def test_bad_tool_fields_are_400(served: Served, body: dict[str, Any], param: str) -> None:
    assert _error(_chat(served, model="echo", **body), 400)["param"] == param


def test_tools_on_completions_are_400(served: Served) -> None:
    body = {"model": "echo", "prompt": "x", "tools": [WEATHER]}
    reply = httpx.post(f"{served.url}/completions", json=body, timeout=30)
    assert _error(reply, 400)["param"] == "tools"


def test_an_invalid_model_reply_is_500_invalid_model_output(served: Served) -> None:
    reply = _chat(served, model="bad", tools=[WEATHER], tool_choice="required")
    error = _error(reply, 500)
    assert error["code"] == "invalid_model_output" and error["type"] == "server_error"
    assert "get_weather" in error["message"]


def test_an_invalid_streamed_reply_ends_with_an_error_event(served: Served) -> None:
    body = {"model": "bad", "tools": [WEATHER], "tool_choice": "required", "stream": True}
    with httpx.stream(
        "POST", f"{served.url}/chat/completions", json={"messages": ASK, **body}, timeout=30
    ) as reply:
        assert reply.status_code == 200
        events = sse_events(reply)
    assert events[-1]["error"]["code"] == "invalid_model_output"
    assert not any(e["choices"][0].get("finish_reason") for e in events[:-1])


def test_a_text_reply_when_a_call_is_required_is_500(served: Served) -> None:
    error = _error(_chat(served, model="echo", tools=[WEATHER], tool_choice="required"), 500)
    assert error["code"] == "invalid_model_output"
