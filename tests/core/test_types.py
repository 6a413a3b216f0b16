"""GenerationParams, prompts and result types."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

import muse_sdk as muse
from muse_sdk.core.types import normalize_prompt


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("temperature", 2.5),
        ("temperature", math.nan),
        ("temperature", "hot"),
        ("top_p", 0),
        ("top_p", 1.5),
        ("top_k", 0),
        ("n", 0),
        ("n", 1.5),
        ("n", True),
        ("max_tokens", 0),
        ("max_tokens", -5),
        ("max_tokens", 10**9),
        ("stop", ["a", "b", "c", "d", "e"]),
        ("stop", [""]),
        ("stop", [1]),
        ("repetition_penalty", 0),
        ("no_repeat_ngram_size", 0),
        ("seed", "x"),
        ("timeout", -1),
        ("timeout", "soon"),
    ],
)
def test_bad_params_name_the_field(field: str, value: object) -> None:
    with pytest.raises(muse.InvalidParameterError) as info:
        muse.GenerationParams.build(**{field: value})
    assert info.value.field == field
    assert repr(field) in str(info.value)


def test_params_normalise_stop_and_timeout() -> None:
    params = muse.GenerationParams.build(stop="\n", timeout=2.5, temperature=0)
    assert params.stop == ("\n",)
    assert params.timeout == muse.Timeout(connect=2.5, read=2.5)
    assert params.explicit() == {"stop": ("\n",), "timeout": params.timeout, "temperature": 0}


def test_params_build_layers_overrides_on_defaults() -> None:
    base = muse.GenerationParams.build(temperature=0.7, max_tokens=10)
    merged = muse.GenerationParams.build(base, max_tokens=20)
    assert (merged.temperature, merged.max_tokens) == (0.7, 20)


def test_timeout_phases() -> None:
    assert muse.Timeout(3).read == 3
    assert muse.Timeout(connect=1, total=9).read is None
    assert muse.Timeout.coerce({"read": 2}) == muse.Timeout(read=2)


@pytest.mark.parametrize(
    "prompt", ["", "   ", [], 42, None, b"\xff\xfe", "\ud800", [{"role": "user"}], [{"x": 1}]]
)
def test_bad_prompts(prompt: object) -> None:
    with pytest.raises(muse.InvalidPromptError, match="invalid prompt"):
        normalize_prompt(prompt)


def test_prompt_forms() -> None:
    assert normalize_prompt("hi") == "hi"
    assert normalize_prompt("秋天".encode()) == "秋天"
    messages = normalize_prompt(
        [{"role": "user", "content": "hi"}, muse.Message(role="assistant", content="yo")]
    )
    assert isinstance(messages, tuple)
    assert [m.role for m in messages] == ["user", "assistant"]


def test_result_accessors_and_usage() -> None:
    result = muse.GenerationResult(
        choices=(
            muse.Choice(index=0, text="a", finish_reason="stop"),
            muse.Choice(index=1, text="b"),
        ),
        usage=muse.Usage(prompt_tokens=2, completion_tokens=3),
        provider="p",
        model="m",
        raw={"secret": "raw"},
    )
    assert (result.text, result.texts, result.finish_reason, str(result)) == (
        "a",
        ["a", "b"],
        "stop",
        "a",
    )
    assert result.usage.total_tokens == 5
    assert (result.usage + result.usage).completion_tokens == 6
    assert "raw" not in repr(result)
    with pytest.raises(ValidationError):  # frozen
        result.model = "x"  # type: ignore[misc]
