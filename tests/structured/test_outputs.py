"""schema=, regex= and choices= on the fake provider: the same validation every provider gets."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

import muse_sdk as muse
from muse_sdk.core.generator import Generator, Request
from muse_sdk.core.types import Choice, GenerationResult
from muse_sdk.providers.fake import FakeGenerator


class Person(BaseModel):
    name: str
    age: int = Field(ge=0)


class Point(TypedDict):
    x: int
    y: int


PERSON = '{"name": "Ann", "age": 31}'


def script(*responses: str) -> FakeGenerator:
    gen = muse.load("fake:script", responses=list(responses))
    assert isinstance(gen, FakeGenerator)
    return gen


@pytest.mark.parametrize(
    ("schema", "reply", "expected"),
    [
        (Person, PERSON, Person(name="Ann", age=31)),
        (list[int], "[1, 2, 3]", [1, 2, 3]),
        (Literal["red", "green"], '"green"', "green"),
        (Point, '{"x": 1, "y": 2}', {"x": 1, "y": 2}),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            '{"a": 7}',
            {"a": 7},
        ),
        (Person, "```json\n" + PERSON + "\n```", Person(name="Ann", age=31)),
    ],
    ids=["model", "list", "literal", "typeddict", "dict", "fenced"],
)
def test_a_schema_gives_the_validated_value(schema: object, reply: str, expected: object) -> None:
    result = script(reply).generate("Who?", schema=schema)
    assert result.parsed == expected
    assert type(result.parsed) is type(expected)
    assert result.choices[0].parsed == expected
    assert result.text == reply  # the raw reply stays


def test_regex_and_choices() -> None:
    assert script("2024-05-01").generate("When?", regex=r"\d{4}-\d{2}-\d{2}").parsed == "2024-05-01"
    assert script("no\n").generate("Well?", choices=["yes", "no"]).parsed == "no"
    with pytest.raises(muse.StructuredOutputError, match="does not match the regex") as info:
        script("May 1st").generate("When?", regex=r"\d{4}-\d{2}-\d{2}")
    assert info.value.text == "May 1st"
    with pytest.raises(muse.StructuredOutputError, match="not one of"):
        script("maybe").generate("Well?", choices=["yes", "no"])


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ('{"name": "Ann"}', "age: Field required"),
        ('{"name": "Ann", "age": -1}', "age: Input should be greater than or equal to 0"),
        ("Ann is 31", "not valid JSON"),
    ],
)
def test_an_invalid_reply_raises_with_text_errors_and_reason(reply: str, error: str) -> None:
    with pytest.raises(muse.StructuredOutputError) as info:
        script(reply).generate("Who?", schema=Person)
    assert info.value.text == reply
    assert any(error in line for line in info.value.errors)
    assert info.value.finish_reason == "stop"
    assert isinstance(info.value, muse.MuseError)


def test_a_dict_schema_reports_every_error_with_its_path() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"enum": ["x"]}},
        "required": ["a", "b"],
    }
    with pytest.raises(muse.StructuredOutputError) as info:
        script('{"a": "1", "b": "y"}').generate("?", schema=schema)
    assert info.value.errors == ["a: '1' is not of type 'integer'", "b: 'y' is not one of ['x']"]


def test_a_reply_cut_by_max_tokens_is_an_error_never_a_value() -> None:
    # Two words fit in max_tokens=2: '{"name": "Ann",' is cut (and "42" would even parse).
    with pytest.raises(muse.StructuredOutputError, match="cut by max_tokens") as info:
        script('{"name": "Ann", "age": 31}').generate("?", schema=Person, max_tokens=2)
    assert info.value.finish_reason == "length"
    assert info.value.text == '{"name": "Ann",'
    with pytest.raises(muse.StructuredOutputError, match="cut by max_tokens"):
        script("42 43").generate("?", schema=int, max_tokens=1)


def test_repair_attempts_re_ask_with_the_errors() -> None:
    gen = script('{"name": "Ann", "age": "old"}', PERSON)
    result = gen.generate([{"role": "user", "content": "Who?"}], schema=Person, repair_attempts=2)
    assert result.parsed == Person(name="Ann", age=31)
    assert gen.calls == 2
    assert result.attempts == 2
    retry = gen.prompts[1]
    assert isinstance(retry, tuple)
    assert retry[-2].role == "assistant" and retry[-2].content == '{"name": "Ann", "age": "old"}'
    assert "age: Input should be a valid integer" in retry[-1].content


def test_repairs_run_out_with_the_last_error() -> None:
    gen = script("nope", "still nope", "no")
    with pytest.raises(muse.StructuredOutputError) as info:
        gen.generate("Who? ", schema=Person, repair_attempts=2)
    assert gen.calls == 3
    assert info.value.text == "no"
    assert "A previous reply was:\nstill nope" in str(gen.prompts[2])


def test_repairs_work_async_too() -> None:
    gen = script("bad", PERSON)
    result = asyncio.run(gen.agenerate("Who?", schema=Person, repair_attempts=1))
    assert result.parsed.age == 31


def test_n_choices_are_each_parsed() -> None:
    result = script('{"name": "A", "age": 1}', '{"name": "B", "age": 2}').generate(
        "?", schema=Person, n=2
    )
    assert [c.parsed.name for c in result.choices] == ["A", "B"]


def test_stream_result_is_parsed_at_the_end_and_a_bad_one_raises() -> None:
    stream = script(PERSON).stream("Who?", schema=Person)
    chunks = [chunk.text for chunk in stream]
    assert "".join(chunks) == PERSON
    assert stream.result.parsed == Person(name="Ann", age=31)
    bad = script("Ann").stream("Who?", schema=Person)
    with pytest.raises(muse.StructuredOutputError):
        list(bad)
    with pytest.raises(muse.StructuredOutputError):
        bad.result  # noqa: B018 - the stream's error, again


def test_astream_result_is_parsed() -> None:
    async def main() -> GenerationResult:
        stream = script(PERSON).astream("Who?", schema=Person)
        async for _ in stream:
            pass
        return stream.result

    assert asyncio.run(main()).parsed == Person(name="Ann", age=31)


def test_batch_parses_each_item_and_takes_a_schema_per_row() -> None:
    gen = script(PERSON, "[1, 2]", "oops")
    batch = gen.batch(["a", "b", "c"], schema=[Person, list[int], Person], max_concurrency=1)
    assert batch[0].parsed == Person(name="Ann", age=31)  # type: ignore[union-attr]
    assert batch[1].parsed == [1, 2]  # type: ignore[union-attr]
    assert isinstance(batch[2], muse.StructuredOutputError)
    same = script("yes", "no").batch(["a", "b"], choices=["yes", "no"], max_concurrency=1)
    assert [r.parsed for r in same.results] == ["yes", "no"]  # type: ignore[union-attr]
    rows = script("yes", "7").batch(["a", "b"], choices=[["yes"], ["7"]], max_concurrency=1)
    assert [r.parsed for r in rows.results] == ["yes", "7"]  # type: ignore[union-attr]


def test_abatch_parses_each_item() -> None:
    batch = asyncio.run(script("[1]", "[2]").abatch(["a", "b"], schema=list[int]))
    assert sorted(r.parsed[0] for r in batch.results) == [1, 2]  # type: ignore[union-attr]


def test_a_per_row_list_must_match_the_prompts() -> None:
    with pytest.raises(muse.InvalidParameterError, match="one schema per prompt"):
        script("x").batch(["a", "b"], schema=[Person])


def test_templates_pass_schema_through() -> None:
    template = muse.PromptTemplate("Describe {who} as JSON")
    result = template.run(script(PERSON), {"who": "Ann"}, schema=Person)
    assert result.parsed == Person(name="Ann", age=31)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"schema": Person, "regex": "x"}, "regex", "pass one of schema, regex or choices"),
        ({"schema": 42}, "schema", "cannot build a schema"),
        ({"schema": {"type": "nope"}}, "schema", "not a valid JSON Schema"),
        ({"regex": "("}, "regex", "not a valid regular expression"),
        ({"choices": "yes"}, "choices", "must be a list of strings"),
        ({"choices": []}, "choices", "non-empty"),
        ({"choices": ["a", "a"]}, "choices", "the same choice twice"),
        ({"repair_attempts": 1}, "repair_attempts", "needs a schema"),
        ({"schema": Person, "repair_attempts": -1}, "repair_attempts", "from 0 to 10"),
    ],
)
def test_bad_shaping_parameters_are_input_errors(
    params: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(muse.InvalidParameterError, match=message) as info:
        script("x").generate("?", **params)
    assert info.value.field == field


class _Plugin(Generator):
    """A provider that cannot constrain anything: it answers with its prompt's first line."""

    provider = "plugin"

    def _generate(self, request: Request) -> GenerationResult:
        self.seen = request.prompt
        return GenerationResult(
            choices=(Choice(text='{"name": "P", "age": 2}', finish_reason="stop"),),
            provider=self.provider,
            model=self.model,
        )


def test_a_provider_that_cannot_constrain_gets_an_instruction() -> None:
    gen = _Plugin("m")
    assert gen.generate("Who?", schema=Person).parsed == Person(name="P", age=2)
    assert isinstance(gen.seen, str)
    assert gen.seen.endswith("Who?")
    schema_text = json.dumps(Person.model_json_schema(), separators=(",", ":"))
    assert schema_text in gen.seen
    with pytest.raises(muse.StructuredOutputError):
        gen.generate([{"role": "user", "content": "Who?"}], choices=["a", "b"], schema=None)
    assert isinstance(gen.seen, tuple)
    assert gen.seen[0].role == "system" and '["a", "b"]' in gen.seen[0].content


def test_a_fallback_chain_validates_whichever_member_answered() -> None:
    down = muse.load("fake:script", responses=["x"], failures=["server"], retry={"max_attempts": 1})
    chain = muse.FallbackGenerator([down, script(PERSON)])
    assert chain.generate("Who?", schema=Person).parsed == Person(name="Ann", age=31)


def test_a_schema_nested_too_deep_is_a_typed_error() -> None:
    schema: dict[str, object] = {"type": "string"}
    for _ in range(300):
        schema = {"type": "array", "items": schema}
    with pytest.raises(muse.InvalidParameterError, match="nests too deeply"):
        script("[]").generate("?", schema=schema)
