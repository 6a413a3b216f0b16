"""Constrained decoding on the local provider: muse-tiny follows a schema, a regex or choices.

Everything runs the real model and the real grammar engine (llguidance). muse-tiny writes Python,
not JSON, so at temperature 1.0 it tries every wrong turn: the grammar must hold anyway.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llguidance")

import muse_sdk as muse  # noqa: E402
from muse_sdk.errors import InvalidParameterError, StructuredOutputError  # noqa: E402
from muse_sdk.models import shipped_model_dir  # noqa: E402
from muse_sdk.providers.local import LocalGenerator, LocalSettings  # noqa: E402
from muse_sdk.providers.local._constraint import compiler_for  # noqa: E402
from muse_sdk.providers.local._engine import Channel, Engine  # noqa: E402
from muse_sdk.providers.local._sampling import Job, SamplingParams  # noqa: E402
from muse_sdk.providers.local._steering import WHITESPACE_RUN  # noqa: E402
from muse_sdk.providers.local._timeouts import Budget, follow  # noqa: E402
from muse_sdk.structured import OutputSpec  # noqa: E402

TINY = shipped_model_dir("muse-tiny")
PROMPT = "config = "
PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
        "email": {"type": "string", "format": "email"},
        "score": {"type": "number"},
    },
    "required": ["name", "age", "tags", "email", "score"],
    "additionalProperties": False,
}
POINT: dict[str, Any] = {
    "type": "object",
    "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
    "required": ["x", "y"],
}


@pytest.fixture(scope="module")
def gen() -> Iterator[LocalGenerator]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a 4-layer model gains nothing from more, and CI cores are shared
    g = muse.load("local:muse-tiny", device="cpu")
    assert isinstance(g, LocalGenerator) and g.engine is not None and g.structured
    yield g
    g.close()
    torch.set_num_threads(before)


def _outside_strings(text: str) -> str:
    """The characters of JSON ``text`` that are not inside a string literal."""
    out, inside, escaped = [], False, False
    for char in text:
        if inside:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                inside = False
        elif char == '"':
            inside = True
        else:
            out.append(char)
    return "".join(out)


def _longest_space_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"\s+", text)), default=0)


# --- the three kinds of constraint -----------------------------------------------------------


def test_json_schema_replies_validate_at_temperature_one(gen: LocalGenerator) -> None:
    result = gen.generate(PROMPT, schema=PERSON, n=8, max_tokens=200, temperature=1.0, seed=5)
    for choice in result.choices:
        assert choice.finish_reason == "stop"
        value = json.loads(choice.text)
        assert value == choice.parsed and set(value) == set(PERSON["properties"])
        assert 0 <= value["age"] <= 120 and "@" in value["email"]
        assert not re.search(r"\s", _outside_strings(choice.text))  # compact: no indentation
        assert _longest_space_run(choice.text) <= WHITESPACE_RUN
    assert len(set(result.texts)) > 1  # eight rows, eight draws


def test_pydantic_model_schema(gen: LocalGenerator) -> None:
    from pydantic import BaseModel

    class Point(BaseModel):
        x: int
        y: int
        label: str

    result = gen.generate(PROMPT, schema=Point, max_tokens=120, temperature=1.0, seed=2)
    assert isinstance(result.parsed, Point) and result.choices[0].finish_reason == "stop"


def test_regex(gen: LocalGenerator) -> None:
    pattern = r"[A-Z]{3}-\d{2,4}(\.[a-z]+)?"
    result = gen.generate(PROMPT, regex=pattern, n=6, max_tokens=40, temperature=1.0, seed=1)
    for choice in result.choices:
        assert re.fullmatch(pattern, choice.text) and choice.finish_reason == "stop"


def test_choices_greedy_and_sampled(gen: LocalGenerator) -> None:
    options = ["yes", "no", "it depends", "名前"]
    greedy = gen.generate("answer = ", choices=options, max_tokens=10, temperature=0)
    assert greedy.parsed in options and greedy.choices[0].finish_reason == "stop"
    sampled = gen.generate("answer = ", choices=options, n=12, temperature=1.0, seed=3)
    assert set(sampled.texts) <= set(options) and len(set(sampled.texts)) > 1


def test_stream_equals_its_result(gen: LocalGenerator) -> None:
    stream = gen.stream(PROMPT, schema=POINT, max_tokens=80, temperature=1.0, seed=4)
    text = "".join(chunk.text for chunk in stream)
    assert stream.result is not None
    assert text == stream.result.text and json.loads(text) == stream.result.parsed


# --- sharing the engine's batch --------------------------------------------------------------


def test_batch_with_a_schema_per_row(gen: LocalGenerator) -> None:
    results = gen.batch(
        [PROMPT, PROMPT, "x = "],
        schema=[PERSON, POINT, {"type": "array", "items": {"type": "boolean"}, "maxItems": 4}],
        max_tokens=200,
        temperature=1.0,
        seed=8,
        max_concurrency=3,
    ).raise_for_errors()
    assert set(results[0].parsed) == set(PERSON["properties"])
    assert set(results[1].parsed) >= {"x", "y"}
    assert isinstance(results[2].parsed, list)


async def test_concurrent_calls_each_follow_their_own_constraint(gen: LocalGenerator) -> None:
    free = "def parse(text):\n"
    alone = gen.generate(free, max_tokens=30, temperature=0)
    replies = await asyncio.gather(
        gen.agenerate(PROMPT, schema=PERSON, max_tokens=200, temperature=1.0, seed=1),
        gen.agenerate(PROMPT, regex=r"\d{3}-\d{4}", max_tokens=20, temperature=1.0, seed=1),
        gen.agenerate(PROMPT, choices=["red", "green"], n=3, temperature=1.0, seed=1),
        gen.agenerate(free, max_tokens=30, temperature=0),
    )
    person, phone, colour, unconstrained = replies
    assert set(person.parsed) == set(PERSON["properties"])
    assert re.fullmatch(r"\d{3}-\d{4}", phone.text)
    assert set(colour.texts) <= {"red", "green"}
    assert unconstrained.text == alone.text  # a constrained neighbour changes nothing


def test_engine_rows_of_different_grammars_share_steps(gen: LocalGenerator) -> None:
    loaded = gen._model()
    engine = gen.engine
    assert isinstance(engine, Engine)
    compiler = compiler_for(loaded.tokenizer, loaded.model.vocab_size, sorted(loaded.eos_ids))
    specs = [OutputSpec.for_schema(POINT), OutputSpec.for_regex(r"(ab|cd){3,6}")]
    prompt = loaded.tokenizer(PROMPT)["input_ids"]
    sampling = SamplingParams(do_sample=True, repetition_penalty=1.3)
    tickets = []
    channels = []
    for spec in specs:
        job = Job(prompt, sampling, 60, n=2, seed=7, grammar=compiler.compile(spec))
        channels.append(Channel())
        tickets.append(engine.submit(job, channels[-1]))
    for ticket, channel in zip(tickets, channels, strict=True):
        for _ in follow(channel.queue, Budget(None, None, None), ticket.cancel):
            pass
    # One token per row per step: the second call joined while the first one's rows ran.
    first_rows_end = tickets[0].admitted_step + min(len(r.token_ids) for r in tickets[0].rows)
    assert tickets[1].admitted_step < first_rows_end
    for row in tickets[0].rows:
        assert set(json.loads(row.text)) >= {"x", "y"} and row.finish_reason == "stop"
    for row in tickets[1].rows:
        assert re.fullmatch(r"(ab|cd){3,6}", row.text) and row.finish_reason == "stop"


# --- with the rest of the decoding parameters ------------------------------------------------


def test_the_constraint_wins_over_penalties_and_ngram_bans(gen: LocalGenerator) -> None:
    # Every legal token repeats an n-gram after the first few: the bans would leave nothing.
    pattern = "(abc){6}"
    for params in (
        {"no_repeat_ngram_size": 2},
        {"repetition_penalty": 10.0},
        {"no_repeat_ngram_size": 1, "repetition_penalty": 3.0},
    ):
        for temperature in (0, 1.0):
            result = gen.generate(
                PROMPT, regex=pattern, max_tokens=30, temperature=temperature, seed=1, **params
            )
            assert result.text == "abc" * 6 and result.choices[0].finish_reason == "stop"


def test_stop_strings_end_a_constrained_reply_only_where_it_is_complete(
    gen: LocalGenerator,
) -> None:
    # Where the text before it is a complete reply, a stop string ends the reply there.
    result = gen.generate(
        PROMPT, regex=r"[a-z]{2,8}(;[a-z]{2,8}){0,3}", stop=[";"], max_tokens=40, temperature=0
    )
    assert re.fullmatch(r"[a-z]{2,8}", result.text) and result.choices[0].finish_reason == "stop"
    # Inside the value, the constraint wins: the stop string is part of the reply.
    pattern = r"[a-z]{2,8}(;[a-z]{2,8}){3}"
    result = gen.generate(PROMPT, regex=pattern, stop=[";"], max_tokens=40, temperature=0)
    assert re.fullmatch(pattern, result.text) and result.choices[0].finish_reason == "stop"
    streamed = gen.stream(PROMPT, regex=pattern, stop=[";"], max_tokens=40, temperature=0)
    assert "".join(chunk.text for chunk in streamed) == result.text
    # A stop string compact JSON never holds (a newline) changes nothing.
    plain = gen.generate(PROMPT, schema=POINT, max_tokens=60, temperature=1.0, seed=3)
    stopped = gen.generate(
        PROMPT, schema=POINT, max_tokens=60, temperature=1.0, seed=3, stop=["\n"]
    )
    assert stopped.text == plain.text


def test_a_small_budget_still_closes_the_value(gen: LocalGenerator) -> None:
    # {"x":0,"y":0} is 9 tokens of muse-tiny's; free numbers would run on for hundreds.
    for max_tokens in (12, 16, 24):
        result = gen.generate(
            PROMPT, schema=POINT, n=10, max_tokens=max_tokens, temperature=1.0, seed=max_tokens
        )
        for choice in result.choices:
            assert choice.finish_reason == "stop", choice.text
            assert set(json.loads(choice.text)) >= {"x", "y"}


def test_a_budget_too_small_for_the_schema_ends_with_length(gen: LocalGenerator) -> None:
    with pytest.raises(StructuredOutputError, match="max_tokens") as info:
        gen.generate(PROMPT, schema=PERSON, max_tokens=5, temperature=0)
    assert info.value.finish_reason == "length"


def test_greedy_output_that_already_conforms_is_unchanged(gen: LocalGenerator) -> None:
    for prompt in ("class Parser:\n    def __init__(self", "import os\n"):
        free = gen.generate(prompt, max_tokens=24, temperature=0)
        constrained = gen.generate(prompt, regex=re.escape(free.text), max_tokens=40, temperature=0)
        assert constrained.text == free.text
        # The same tokens, not just the same text.
        assert constrained.raw["token_ids"] == free.raw["token_ids"]


# --- compiling -------------------------------------------------------------------------------


def test_compiled_grammars_are_cached_by_key(gen: LocalGenerator) -> None:
    loaded = gen._model()
    compiler = compiler_for(loaded.tokenizer, loaded.model.vocab_size, sorted(loaded.eos_ids))
    first = compiler.compile(OutputSpec.for_schema(dict(PERSON)))
    assert compiler.compile(OutputSpec.for_schema(json.loads(json.dumps(PERSON)))) is first


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"regex": r"(a)\1"}, "regex"),  # a back-reference: no finite automaton has it
        ({"regex": r"(?=a)a"}, "regex"),
        ({"schema": "deep"}, "schema"),
    ],
)
def test_what_cannot_compile_fails_fast_and_typed(
    gen: LocalGenerator, kwargs: dict[str, Any], field: str
) -> None:
    if kwargs.get("schema") == "deep":
        deep: dict[str, Any] = {"type": "integer"}
        for _ in range(80):  # deeper than the grammar engine's recursion limit
            deep = {"type": "object", "properties": {"a": deep}, "required": ["a"]}
        kwargs = {"schema": deep}
    start = time.perf_counter()
    with pytest.raises(InvalidParameterError) as info:
        gen.generate(PROMPT, max_tokens=5, **kwargs)
    assert time.perf_counter() - start < 2.0 and info.value.field == field


def test_pathological_schema_runs_or_fails_typed_and_fast(gen: LocalGenerator) -> None:
    schema = {
        "type": "object",
        "properties": {
            # Ambiguous stars before a 24-symbol tail and a bounded repeat: the regex engine's
            # derivatives blow up part-way through the string.
            "s": {"type": "string", "pattern": "^(a|aa)*(b|bb)*[ab]*a[ab]{24}(c|cc){1000}$"},
            "e": {"enum": [f"value-{i}" for i in range(5000)]},
            "big": {
                "anyOf": [
                    {"type": "object", "properties": {f"k{i}": {"type": "string"}}}
                    for i in range(300)
                ]
            },
        },
        "required": ["e"],
    }
    for seed in range(4):
        start = time.perf_counter()
        try:
            result = gen.generate(PROMPT, schema=schema, max_tokens=120, temperature=1.0, seed=seed)
        except InvalidParameterError as exc:
            assert exc.field == "schema" and "too complex" in str(exc)
        else:
            assert result.parsed["e"].startswith("value-")
        assert time.perf_counter() - start < 2.0 + 1.0  # compiling, then 120 tokens at most


# --- the transformers path and chat templates -------------------------------------------------


def test_transformers_path_is_constrained_too() -> None:
    pytest.importorskip("transformers")
    g = LocalGenerator("muse-tiny", LocalSettings(device="cpu", backend="transformers"))
    try:
        assert g.engine is None
        result = g.generate(PROMPT, schema=POINT, n=3, max_tokens=60, temperature=1.0, seed=2)
        assert all(set(value) >= {"x", "y"} for value in (json.loads(t) for t in result.texts))
        banned = g.generate(PROMPT, regex="(abc){4}", max_tokens=20, no_repeat_ngram_size=2)
        assert banned.text == "abc" * 4 and banned.choices[0].finish_reason == "stop"
        batch = g.batch([PROMPT, "x = "], choices=[["up", "down"], ["left", "right"]])
        assert batch[0].text in ("up", "down") and batch[1].text in ("left", "right")
    finally:
        g.close()


_TEMPLATE = (
    "{% if tools %}{% for tool in tools %}# tool: {{ tool.function.name }}"
    "({{ tool.function.parameters.properties | list | join(', ') }})\n{% endfor %}{% endif %}"
    "{% for m in messages %}{% if m.role == 'tool' %}# result: {{ m.content }}\n"
    "{% elif m.tool_calls %}{% for c in m.tool_calls %}# call: {{ c.function.name }}"
    "{{ c.function.arguments | tojson }}\n{% endfor %}"
    "{% else %}# {{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}reply = {% endif %}"
)


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """muse-tiny with a chat template that renders tools, calls and their results."""
    assert TINY is not None
    directory = tmp_path_factory.mktemp("chat") / "muse-tiny-chat"
    shutil.copytree(TINY, directory)
    config = json.loads((directory / "tokenizer_config.json").read_text())
    (directory / "tokenizer_config.json").write_text(
        json.dumps({**config, "chat_template": _TEMPLATE})
    )
    return directory


def test_tools_reach_the_chat_template_and_a_required_call_is_constrained(chat_dir: Path) -> None:
    g = LocalGenerator(str(chat_dir), LocalSettings(device="cpu"))
    try:
        weather = {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "maxLength": 12}},
                    "required": ["city"],
                },
            },
        }
        messages = [
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "user", "content": "and in Rome?"},
        ]
        request = g.make_request(messages, {"tools": [weather], "tool_choice": "required"})
        rendered = g.tokenizer.decode(g._encode(g._model(), request, Budget.of([request])))
        assert "# tool: get_weather(city)" in rendered
        assert '# call: get_weather{"city": "Paris"}' in rendered and "# result: sunny" in rendered
        result = g.run(request)
        assert result.tool_calls and result.tool_calls[0].name == "get_weather"
        assert isinstance(result.tool_calls[0].arguments["city"], str)
        assert result.choices[0].finish_reason == "tool_calls"
    finally:
        g.close()
