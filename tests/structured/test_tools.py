"""Tools: schemas from functions, models and dicts; tool calls validated; the run_tools loop."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import pytest
from pydantic import BaseModel

import muse_sdk as muse
from muse_sdk.providers.fake import FakeGenerator
from muse_sdk.structured import as_tool


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Get the current weather in a city.

    Args:
        city: The city's name, e.g. "Paris".
        unit: Degrees Celsius or Fahrenheit.
    """
    return f"18 degrees {unit.upper()} and sunny in {city}"


class Lookup(BaseModel):
    """Look a word up in the dictionary."""

    word: str


ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def call(name: str, **arguments: object) -> str:
    return json.dumps({"name": name, "arguments": arguments})


def script(*responses: str) -> FakeGenerator:
    gen = muse.load("fake:script", responses=list(responses))
    assert isinstance(gen, FakeGenerator)
    return gen


def test_a_function_becomes_a_tool_from_its_hints_and_docstring() -> None:
    tool = as_tool(get_weather)
    assert tool.name == "get_weather"
    assert tool.description == "Get the current weather in a city."
    assert tool.parameters["required"] == ["city"]
    assert tool.parameters["properties"]["unit"]["enum"] == ["c", "f"]
    assert tool.parameters["properties"]["city"]["description"] == 'The city\'s name, e.g. "Paris".'
    assert tool.openai_dict()["function"]["name"] == "get_weather"


def test_a_model_and_a_dict_become_tools() -> None:
    model = as_tool(Lookup)
    assert (model.name, model.description) == ("Lookup", "Look a word up in the dictionary.")
    assert model.parameters["required"] == ["word"]
    plain = as_tool(ADD)
    assert plain.name == "add" and plain.parameters == ADD["function"]["parameters"]  # type: ignore[index]


def untyped(city):  # type: ignore[no-untyped-def]
    return city


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ([untyped], "needs a type hint"),
        ([{"function": {"description": "no name"}}], "needs a 'name'"),
        ([{"name": "bad name!"}], "must be 1-64 letters"),
        ([get_weather, get_weather], "two tools share a name"),
        ([42], "cannot make a tool of int"),
        ("get_weather", "must be a list"),
    ],
)
def test_bad_tools_are_parameter_errors(tools: object, message: str) -> None:
    with pytest.raises(muse.InvalidParameterError, match=message):
        script("x").generate(ASK, tools=tools)


def test_tool_choice_must_name_an_offered_tool() -> None:
    with pytest.raises(muse.InvalidParameterError, match="'lookup' is not 'auto'"):
        script("x").generate(ASK, tools=[get_weather], tool_choice="lookup")
    with pytest.raises(muse.InvalidParameterError, match="needs tools"):
        script("x").generate(ASK, tool_choice="auto")


def test_a_reply_that_calls_a_tool_gives_typed_validated_calls() -> None:
    result = script(call("get_weather", city="Paris")).generate(ASK, tools=[get_weather, ADD])
    assert result.finish_reason == "tool_calls"
    (weather,) = result.tool_calls
    assert isinstance(weather, muse.ToolCall)
    assert weather.name == "get_weather"
    assert weather.arguments == {"city": "Paris", "unit": "c"}  # validated, default filled in
    assert weather.id.startswith("call_")
    both = json.dumps(
        {"tool_calls": [json.loads(call("add", a=1, b=2)), json.loads(call("Lookup", word="x"))]}
    )
    result = script(both).generate(ASK, tools=[ADD, Lookup])
    assert [c.name for c in result.tool_calls] == ["add", "Lookup"]


def test_invalid_arguments_are_a_structured_output_error() -> None:
    with pytest.raises(muse.StructuredOutputError, match="called 'add' with invalid arguments"):
        script(call("add", a=1, b="two")).generate(ASK, tools=[ADD])
    with pytest.raises(muse.StructuredOutputError, match="unit: Input should be 'c' or 'f'"):
        script(call("get_weather", city="Oslo", unit="k")).generate(ASK, tools=[get_weather])


def test_repair_attempts_fix_a_bad_call() -> None:
    gen = script(call("add", a=1, b="two"), call("add", a=1, b=2))
    result = gen.generate(ASK, tools=[ADD], repair_attempts=1)
    assert result.tool_calls[0].arguments == {"a": 1, "b": 2}


def test_required_means_a_call_and_none_means_text() -> None:
    with pytest.raises(muse.StructuredOutputError, match="a tool call was required"):
        script("It is sunny.").generate(ASK, tools=[get_weather], tool_choice="required")
    with pytest.raises(muse.StructuredOutputError, match="not one of the tools offered"):
        script(call("nope")).generate(ASK, tools=[get_weather], tool_choice="required")
    text = script(call("get_weather", city="Paris")).generate(
        ASK, tools=[get_weather], tool_choice="none"
    )
    assert text.tool_calls == () and text.text.startswith("{")
    answer = script('{"name": "Ann"}').generate(ASK, tools=[get_weather])
    assert answer.tool_calls == ()  # JSON with a "name" that is not a tool: an answer


def test_streamed_tool_calls_equal_the_unstreamed_ones() -> None:
    reply = call("get_weather", city="Paris", unit="f")
    plain = script(reply).generate(ASK, tools=[get_weather])
    stream = script(reply).stream(ASK, tools=[get_weather])
    list(stream)
    assert stream.result.tool_calls == plain.tool_calls
    assert stream.result.finish_reason == "tool_calls"


def test_messages_carry_tool_calls_and_results_in_openai_shape() -> None:
    wire = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
        ],
    }
    message = muse.Message.model_validate(wire)
    assert message.tool_calls[0] == muse.ToolCall(id="c1", name="add", arguments={"a": 1})
    assert message.wire() == {**wire, "content": ""}
    tool = muse.Message(role="tool", content="3", tool_call_id="c1")
    assert tool.wire() == {"role": "tool", "content": "3", "tool_call_id": "c1"}
    with pytest.raises(muse.InvalidPromptError):
        script("x").generate([{"role": "user", "content": None}])


def test_run_tools_calls_the_function_and_feeds_back_the_result() -> None:
    gen = script(call("get_weather", city="Paris"), "It is 18 degrees and sunny.")
    run = muse.run_tools(gen, ASK, tools=[get_weather], max_turns=3)
    assert run.text == "It is 18 degrees and sunny."
    assert run.turns == 2
    roles = [m.role for m in run.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    tool_message = run.messages[2]
    assert tool_message.content == "18 degrees C and sunny in Paris"
    assert tool_message.tool_call_id == run.messages[1].tool_calls[0].id
    assert gen.prompts[1] == run.messages[:3]  # the second turn saw the tool's result


def test_a_tool_that_raises_goes_back_to_the_model_as_an_error() -> None:
    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    gen = script(call("divide", a=1, b=0), "You cannot divide by zero.")
    run = muse.run_tools(gen, ASK, tools=[divide])
    assert run.messages[2].content == "Error: the tool raised ZeroDivisionError: division by zero"
    assert run.text == "You cannot divide by zero."


def test_run_tools_stops_after_max_turns_and_asks_for_an_answer() -> None:
    gen = script(call("add", a=1, b=2))  # the script keeps calling
    add = as_tool(ADD)
    calls: list[dict[str, object]] = []

    def add_numbers(a: int, b: int) -> int:
        """Add."""
        calls.append({"a": a, "b": b})
        return a + b

    add_numbers.__name__ = add.name
    run = muse.run_tools(gen, ASK, tools=[add_numbers], max_turns=2)
    assert len(calls) == 2
    assert run.turns == 3
    assert run.result.tool_calls == ()  # the last turn was asked with tool_choice="none"


def test_arun_tools_awaits_async_tools() -> None:
    async def lookup(word: str) -> dict[str, str]:
        """Look a word up."""
        await asyncio.sleep(0)
        return {"word": word, "meaning": "a greeting"}

    gen = script(call("lookup", word="hello"), "It is a greeting.")
    run = asyncio.run(muse.arun_tools(gen, ASK, tools=[lookup]))
    assert json.loads(run.messages[2].content) == {"word": "hello", "meaning": "a greeting"}
    assert run.text == "It is a greeting."


def test_run_tools_needs_functions_and_messages() -> None:
    with pytest.raises(muse.InvalidParameterError, match="no Python function"):
        muse.run_tools(script("x"), ASK, tools=[Lookup])
    with pytest.raises(muse.InvalidPromptError, match="needs chat messages"):
        muse.run_tools(script("x"), "hi", tools=[get_weather])
    with pytest.raises(muse.InvalidParameterError, match="max_turns"):
        muse.run_tools(script("x"), ASK, tools=[get_weather], max_turns=0)
