"""Structured output and tool calls on the OpenAI provider, against real loopback servers.

Each server behaves like one level of the ladder: one that takes ``json_schema`` (OpenAI,
vLLM, llama.cpp), one that takes only ``json_object``, one that takes no ``response_format``,
and one that ignores it and answers prose.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

import muse_sdk as muse
from muse_sdk.errors import (
    BadRequestError,
    RefusalError,
    StructuredOutputError,
    UnsupportedParameterError,
)
from muse_sdk.providers.openai._strict import drop_nulls, strict_schema
from muse_sdk.providers.openai._structured import LEVELS
from muse_sdk.structured import as_tool
from tests.servers.openai_server import OpenAIServer, Reply

KEY = "sk-test-abcdef123456"
CHAT = "gpt-4o-mini"


class Address(BaseModel):
    city: str
    zip: str | None = None


class Person(BaseModel):
    name: str
    age: int
    nickname: str = "n/a"  # optional and not nullable: strict mode makes it nullable
    address: Address | None = None  # optional and already nullable


ADA = '{"name": "Ada", "age": 36, "nickname": null, "address": {"city": "London", "zip": null}}'
ADA_PARSED = Person(name="Ada", age=36, address=Address(city="London"))


def get_weather(city: str, unit: str = "c") -> str:
    """The weather in a city.

    Args:
        city: The city's name.
        unit: "c" or "f".
    """
    return f"sunny in {city}"


def get_time(zone: str) -> str:
    """The time in a time zone."""
    return "12:00"


TWO_CALLS = (
    ("call_a", "get_weather", '{"city": "Paris", "unit": "f"}'),
    ("call_b", "get_time", '{"zone": "Europe/Paris"}'),
)


def load(server: OpenAIServer, model: str = CHAT, **kwargs: Any) -> muse.Generator:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("retry", {"max_attempts": 1})
    return muse.load(f"openai:{model}", base_url=server.url, **kwargs)


def formats(server: OpenAIServer) -> list[str | None]:
    """The ``response_format`` type of every request the server received, in order."""
    return [(r.json.get("response_format") or {}).get("type") for r in server.requests]


@pytest.fixture(autouse=True)
def _fresh_levels() -> Iterator[None]:
    LEVELS.clear()
    yield
    LEVELS.clear()


def _serve(**kwargs: Any) -> Iterator[OpenAIServer]:
    with OpenAIServer(**kwargs) as srv:
        yield srv


@pytest.fixture(scope="module")
def _object_only() -> Iterator[OpenAIServer]:
    yield from _serve(response_formats=frozenset({"text", "json_object"}))


@pytest.fixture(scope="module")
def _no_formats() -> Iterator[OpenAIServer]:
    yield from _serve(response_formats=frozenset())


@pytest.fixture(scope="module")
def _no_formats_422() -> Iterator[OpenAIServer]:
    yield from _serve(response_formats=frozenset(), reject_status=422)


@pytest.fixture
def object_only(_object_only: OpenAIServer) -> OpenAIServer:
    _object_only.reset()
    return _object_only


@pytest.fixture
def no_formats(_no_formats: OpenAIServer) -> OpenAIServer:
    _no_formats.reset()
    return _no_formats


@pytest.fixture
def no_formats_422(_no_formats_422: OpenAIServer) -> OpenAIServer:
    _no_formats_422.reset()
    return _no_formats_422


# --- the ladder ------------------------------------------------------------------------------


def test_json_schema_server_gets_one_strict_request(server: OpenAIServer) -> None:
    server.script(Reply(text=ADA))
    result = load(server).generate("Who?", schema=Person)
    assert result.parsed == ADA_PARSED
    assert result.text == ADA  # the text is what the model sent; only the value lost its nulls
    assert formats(server) == ["json_schema"]
    sent = server.last.json["response_format"]["json_schema"]
    assert sent["name"] == "Person" and sent["strict"] is True
    schema = sent["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "age", "nickname", "address"]
    assert {"type": "null"} in schema["properties"]["nickname"]["anyOf"]
    assert server.last.json["messages"] == [{"role": "user", "content": "Who?"}]
    assert LEVELS.get(server.url, CHAT) == "json_schema"


def test_a_server_without_json_schema_steps_down_and_is_remembered(
    object_only: OpenAIServer,
) -> None:
    gen = load(object_only)
    object_only.script(Reply(text=ADA))
    assert gen.generate("Who?", schema=Person).parsed == ADA_PARSED
    assert formats(object_only) == ["json_schema", "json_object"]
    instruction = object_only.last.json["messages"][0]["content"]  # a text prompt: a preamble
    assert instruction.startswith("Reply with only a JSON value") and '"nickname"' in instruction
    assert LEVELS.get(object_only.url, CHAT) == "json_object"

    object_only.reset()
    object_only.script(Reply(text=ADA))
    other = load(object_only)  # another generator of the same server shares what was learnt
    assert other.generate("Who?", schema=Person).parsed == ADA_PARSED
    assert formats(object_only) == ["json_object"]

    object_only.reset()
    object_only.script(Reply(text=ADA))
    load(object_only, "gpt-4o").generate("Who?", schema=Person)  # another model starts over
    assert formats(object_only) == ["json_schema", "json_object"]


@pytest.mark.parametrize("fixture", ["no_formats", "no_formats_422"])
def test_a_server_without_response_format_gets_the_instruction(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    srv: OpenAIServer = request.getfixturevalue(fixture)
    gen = load(srv)
    srv.script(Reply(text=f"```json\n{ADA}\n```"))
    chat = [{"role": "user", "content": "Who?"}]
    assert gen.generate(chat, schema=Person).parsed == ADA_PARSED
    assert formats(srv) == ["json_schema", "json_object", None]
    system, user = srv.last.json["messages"]
    assert system["role"] == "system" and '"nickname"' in system["content"]
    assert user == chat[0]
    assert LEVELS.get(srv.url, CHAT) == "instruction"

    srv.reset()
    srv.script(Reply(text='{"name": "Bo", "age": "old"}'))
    with pytest.raises(StructuredOutputError, match="age"):  # still validated on the client
        gen.generate("Who?", schema=Person)
    assert formats(srv) == [None]


def test_a_server_that_ignores_the_format_and_answers_prose(server: OpenAIServer) -> None:
    gen = load(server)
    with pytest.raises(StructuredOutputError, match="not valid JSON"):
        gen.generate("Who?", schema=Person)
    server.script(Reply(text="Ada is 36."), Reply(text=ADA))
    result = gen.generate("Who?", schema=Person, repair_attempts=1)
    assert result.parsed == ADA_PARSED
    assert formats(server)[-2:] == ["json_schema", "json_schema"]
    assert "A previous reply was:\nAda is 36." in server.last.json["messages"][0]["content"]


def test_once_a_level_worked_an_unrelated_400_does_not_step_down(server: OpenAIServer) -> None:
    gen = load(server)
    server.script(Reply(text=ADA), Reply.error(400, "max_tokens is too large"))
    gen.generate("Who?", schema=Person)
    with pytest.raises(BadRequestError, match="max_tokens"):
        gen.generate("Who?", schema=Person)
    assert formats(server) == ["json_schema", "json_schema"]


def test_a_rejected_schema_steps_down_for_that_call_only(server: OpenAIServer) -> None:
    bad = "Invalid schema for response_format 'Person': too deep"
    server.script(Reply.error(400, bad), Reply(text=ADA), Reply(text=ADA))
    gen = load(server)
    assert gen.generate("Who?", schema=Person).parsed == ADA_PARSED
    assert LEVELS.get(server.url, CHAT) is None  # the schema was refused, not the server's format
    gen.generate("Who?", schema=Person)
    assert formats(server) == ["json_schema", "json_object", "json_schema"]


def test_streams_and_async_calls_step_down_too(object_only: OpenAIServer) -> None:
    gen = load(object_only)
    object_only.script(Reply(text=ADA, piece_size=7))
    stream = gen.stream("Who?", schema=Person)
    assert "".join(chunk.text for chunk in stream) == ADA
    assert stream.result.parsed == ADA_PARSED
    assert formats(object_only) == ["json_schema", "json_object"]
    LEVELS.clear()
    object_only.reset()
    object_only.script(Reply(text=ADA))
    assert asyncio.run(gen.agenerate("Who?", schema=Person)).parsed == ADA_PARSED
    assert formats(object_only) == ["json_schema", "json_object"]


def test_concurrent_calls_share_the_memory(object_only: OpenAIServer) -> None:
    object_only.default = Reply(text=ADA)
    try:
        results = load(object_only).batch(["a", "b", "c", "d"], schema=Person, max_concurrency=4)
    finally:
        object_only.default = Reply()
    assert [r.parsed for r in results.raise_for_errors()] == [ADA_PARSED] * 4
    assert LEVELS.get(object_only.url, CHAT) == "json_object"


def test_n_choices_are_each_parsed(server: OpenAIServer) -> None:
    server.script(Reply(texts=('{"name": "A", "age": 1}', '{"name": "B", "age": 2}')))
    result = load(server).generate("Who?", schema=Person, n=2)
    assert [c.parsed for c in result.choices] == [Person(name="A", age=1), Person(name="B", age=2)]


def test_regex_choices_and_non_object_schemas_use_the_instruction(server: OpenAIServer) -> None:
    gen = load(server)
    server.script(Reply(text="2024-01-02"), Reply(text="yes\n"), Reply(text="[1, 2]"))
    assert gen.generate("When?", regex=r"\d{4}-\d\d-\d\d").parsed == "2024-01-02"
    assert r"\d{4}" in server.last.json["messages"][0]["content"]
    assert gen.generate("OK?", choices=["yes", "no"]).parsed == "yes"
    assert gen.generate("Numbers?", schema=list[int]).parsed == [1, 2]
    assert formats(server) == [None, None, None]
    assert LEVELS.get(server.url, CHAT) is None


def test_completions_api_uses_the_instruction_for_schemas_and_tools(server: OpenAIServer) -> None:
    gen = load(server, "gpt-3.5-turbo-instruct")
    server.script(Reply(text=ADA), Reply(text='{"name": "get_time", "arguments": {"zone": "UTC"}}'))
    assert gen.generate("Who?", schema=Person).parsed == ADA_PARSED
    assert server.last.json["prompt"].startswith("Reply with only a JSON value")
    result = gen.generate("Time?", tools=[get_time])
    assert "tools" not in server.last.json and "get_time" in server.last.json["prompt"]
    assert result.tool_calls[0].name == "get_time"
    assert result.tool_calls[0].arguments == {"zone": "UTC"}


def test_schema_and_response_format_together_are_refused(server: OpenAIServer) -> None:
    with pytest.raises(UnsupportedParameterError, match="not both"):
        load(server).generate("Who?", schema=Person, response_format={"type": "json_object"})
    assert server.requests == []


# --- strict schemas ----------------------------------------------------------------------------


def test_strict_schema_makes_optional_properties_nullable_and_keeps_defs() -> None:
    strict = strict_schema(Person.model_json_schema())
    assert strict.strict
    schema = strict.schema
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "age", "nickname", "address"]
    assert schema["properties"]["nickname"] == {
        "anyOf": [{"title": "Nickname", "type": "string"}, {"type": "null"}]
    }
    # Already nullable: only listed in required, not wrapped again.
    assert len(schema["properties"]["address"]["anyOf"]) == 2
    address = schema["$defs"]["Address"]
    assert address["additionalProperties"] is False
    assert address["required"] == ["city", "zip"]
    assert "default" not in json.dumps(schema)
    assert strict.nullable == {(): frozenset({"nickname"})}


def test_drop_nulls_removes_only_the_nulls_strict_mode_introduced() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": ["string", "null"]},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        },
        "required": ["items"],
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                "required": ["x"],
            }
        },
    }
    strict = strict_schema(schema)
    assert strict.strict
    assert strict.nullable == {(): frozenset({"a"}), ("$defs", "Item"): frozenset({"y"})}
    reply = {"a": None, "b": None, "items": [{"x": 1, "y": None}, {"x": None, "y": 2}]}
    assert drop_nulls(reply, strict) == {"b": None, "items": [{"x": 1}, {"x": None, "y": 2}]}


def test_nulls_are_dropped_in_nested_optional_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "inner": {
                "type": "object",
                "properties": {"v": {"type": "number"}, "w": {"type": "number"}},
                "required": ["v"],
            }
        },
    }
    strict = strict_schema(schema)
    assert strict.nullable == {
        (): frozenset({"inner"}),
        ("properties", "inner", "anyOf", 0): frozenset({"w"}),
    }
    assert drop_nulls({"inner": {"v": 1, "w": None}}, strict) == {"inner": {"v": 1}}
    assert drop_nulls({"inner": None}, strict) == {}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "additionalProperties": {"type": "integer"}},  # dict[str, int]
        {"type": "object", "properties": {"a": {"type": "string", "minLength": 2}}},
        {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {}}},  # Any
        {"type": "object", "properties": {"a": {"type": "string", "format": "uri"}}},
        {"type": "array", "items": {"type": "integer"}},
    ],
)
def test_schemas_outside_the_strict_subset_are_sent_unchanged(schema: dict[str, Any]) -> None:
    strict = strict_schema(schema)
    assert not strict.strict
    assert strict.schema == schema and not strict.nullable


def test_a_non_strict_schema_is_sent_with_strict_false(server: OpenAIServer) -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "object"}}, "required": ["tags"]}
    server.script(Reply(text='{"tags": {"a": 1}}'))
    assert load(server).generate("Tags?", schema=schema).parsed == {"tags": {"a": 1}}
    sent = server.last.json["response_format"]["json_schema"]
    assert sent["strict"] is False and sent["schema"] == schema


# --- refusals ------------------------------------------------------------------------------------


def test_a_refusal_raises_refusal_error(server: OpenAIServer) -> None:
    gen = load(server)
    server.script(Reply(refusal="I can't help with that."))
    with pytest.raises(RefusalError) as caught:
        gen.generate("Who?", schema=Person, repair_attempts=2)
    assert caught.value.refusal == "I can't help with that."
    assert len(server.requests) == 1  # a refusal is not repaired

    server.script(Reply(refusal="I can't help with that.", tool_piece=3))
    with pytest.raises(RefusalError) as caught:
        list(gen.stream("Who?", schema=Person))
    assert caught.value.refusal == "I can't help with that."

    async def astream() -> None:
        async for _ in gen.astream("Who?"):
            pass

    server.script(Reply(refusal="No."))
    with pytest.raises(RefusalError, match="No"):
        asyncio.run(astream())


# --- tools ----------------------------------------------------------------------------------------


def test_tool_calls_streamed_and_not_are_equal(server: OpenAIServer) -> None:
    gen = load(server)
    server.script(Reply(tool_calls=TWO_CALLS), Reply(tool_calls=TWO_CALLS, tool_piece=4))
    result = gen.generate("Weather and time?", tools=[get_weather, get_time])
    stream = gen.stream("Weather and time?", tools=[get_weather, get_time])
    chunks = list(stream)
    pieces = [delta for chunk in chunks for delta in chunk.tool_calls]
    assert len(pieces) > 10 and {d.index for d in pieces} == {0, 1}
    expected = (
        muse.ToolCall(id="call_a", name="get_weather", arguments={"city": "Paris", "unit": "f"}),
        muse.ToolCall(id="call_b", name="get_time", arguments={"zone": "Europe/Paris"}),
    )
    assert result.tool_calls == expected
    assert stream.result.tool_calls == expected
    assert result.finish_reason == stream.result.finish_reason == "tool_calls"
    body = server.last.json
    assert body["tools"] == [as_tool(get_weather).openai_dict(), as_tool(get_time).openai_dict()]
    assert body["tool_choice"] == "auto"

    server.script(Reply(tool_calls=TWO_CALLS[1:]))
    tools = [get_weather, get_time]
    assert asyncio.run(gen.agenerate("Time?", tools=tools)).tool_calls == expected[1:]


@pytest.mark.parametrize("stream", [False, True])
def test_invalid_tool_arguments_raise(server: OpenAIServer, stream: bool) -> None:
    gen = load(server)
    server.script(Reply(tool_calls=(("call_1", "get_time", '{"zone": 5'),), tool_piece=3))
    with pytest.raises(StructuredOutputError, match="get_time"):
        if stream:
            list(gen.stream("Time?", tools=[get_time]))
        else:
            gen.generate("Time?", tools=[get_time])
    server.script(Reply(tool_calls=(("call_1", "get_time", '{"zone": 5}'),)))
    with pytest.raises(StructuredOutputError, match="invalid arguments"):
        gen.generate("Time?", tools=[get_time])


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", "auto"),
        ("required", "required"),
        ("none", "none"),
        ("get_time", {"type": "function", "function": {"name": "get_time"}}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
def test_tool_choice_forms(server: OpenAIServer, choice: Any, sent: Any) -> None:
    must = choice not in ("auto", "none")
    reply = Reply(tool_calls=TWO_CALLS[1:]) if must else Reply(text="It is noon.")
    server.script(reply)
    result = load(server).generate("Time?", tools=[get_weather, get_time], tool_choice=choice)
    assert server.last.json["tool_choice"] == sent
    assert bool(result.tool_calls) == must


def test_tools_with_a_schema_send_both(server: OpenAIServer) -> None:
    server.script(Reply(text=ADA))
    result = load(server).generate("Who?", schema=Person, tools=[get_time])
    assert result.parsed == ADA_PARSED
    assert server.last.json["response_format"]["type"] == "json_schema"
    assert server.last.json["tools"][0]["function"]["name"] == "get_time"


def test_a_required_call_sends_no_response_format(server: OpenAIServer) -> None:
    server.script(Reply(tool_calls=TWO_CALLS[1:]))
    result = load(server).generate("?", schema=Person, tools=[get_time], tool_choice="required")
    assert result.tool_calls[0].arguments == {"zone": "Europe/Paris"}
    assert "response_format" not in server.last.json


def test_tool_messages_round_trip_in_the_next_request(server: OpenAIServer) -> None:
    server.script(Reply(tool_calls=TWO_CALLS), Reply(text="Sunny, and noon."))
    run = muse.run_tools(
        load(server), [{"role": "user", "content": "Weather?"}], tools=[get_weather, get_time]
    )
    assert run.text == "Sunny, and noon." and run.turns == 2
    messages = server.last.json["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "f"}'},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_time", "arguments": '{"zone": "Europe/Paris"}'},
            },
        ],
    }
    assert messages[2] == {
        "role": "tool",
        "content": "sunny in Paris",
        "tool_call_id": "call_a",
        "name": "get_weather",
    }
    assert messages[3]["tool_call_id"] == "call_b"


def test_a_server_that_refuses_tools_gives_a_clear_error(server: OpenAIServer) -> None:
    server.script(Reply.error(400, '"auto" tool choice requires --enable-auto-tool-choice'))
    with pytest.raises(BadRequestError, match="enable-auto-tool-choice"):
        load(server).generate("Time?", tools=[get_time])
    assert len(server.requests) == 1


def test_a_whole_reply_to_a_stream_request_keeps_its_tool_calls(server: OpenAIServer) -> None:
    call = {
        "id": "call_b",
        "type": "function",
        "function": dict(zip(("name", "arguments"), TWO_CALLS[1][1:], strict=True)),
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
    body = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [choice],
    }
    server.script(Reply(body=json.dumps(body).encode()))  # a server that ignored stream=true
    stream = load(server).stream("Time?", tools=[get_time])
    list(stream)
    assert stream.result.tool_calls[0].arguments == {"zone": "Europe/Paris"}
