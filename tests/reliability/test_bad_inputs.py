"""Bad input gets a clear error, never a crash or a hang.

Each row: an id (also listed in docs/reliability.md), what is called, the exact MuseError
subclass expected, and a word the message must contain (the offending field or value).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import muse_sdk as muse

ROOT = Path(__file__).resolve().parents[2]


def fake(**settings: Any) -> muse.Generator:
    return muse.load("fake:echo", **settings)


def gen_call(**params: Any) -> Callable[[], object]:
    return lambda: fake().generate("hello", **params)


def prompt_call(prompt: Any) -> Callable[[], object]:
    return lambda: fake().generate(prompt)


def config_file(text: str) -> Callable[[], object]:
    def load() -> object:
        path = Path("bad-muse.toml")
        path.write_text(text, encoding="utf-8")
        return muse.load(config=path)

    return load


def openai(**overrides: Any) -> Callable[[], object]:
    return lambda: muse.load("openai:gpt-4o-mini", **overrides)


def openai_call(model: str, prompt: Any, **params: Any) -> Callable[[], object]:
    return lambda: muse.load(model, api_key="none", base_url="http://127.0.0.1:9/v1").generate(
        prompt, **params
    )


def template(text: str, **values: Any) -> Callable[[], object]:
    return lambda: muse.PromptTemplate(text).render(**values)


def missing_config_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[], object]:
    monkeypatch.setenv("MUSE_CONFIG", "/nonexistent/muse.toml")
    return lambda: muse.load()


OK_PROFILE = 'default = "p"\n[profiles.p]\nprovider = "fake"\nmodel = "echo"\n'  # used: checked

CASES: list[tuple[str, Callable[[], object], type[muse.MuseError], str]] = [
    ("unknown-provider", lambda: muse.load("opnai:gpt-4o"), muse.UnknownProviderError, "opnai"),
    ("model-spec-without-model", lambda: muse.load("openai:"), muse.InvalidConfigError, "model"),
    ("unknown-profile", lambda: muse.load("nosuchprofile"), muse.InvalidConfigError, "profile"),
    ("malformed-toml", config_file("[profiles\n"), muse.InvalidConfigError, "TOML"),
    (
        "unknown-config-key",
        config_file(OK_PROFILE + "temprature = 1\n"),
        muse.InvalidConfigError,
        "temprature",
    ),
    (
        "config-value-out-of-range",
        config_file(OK_PROFILE + "top_p = 3\n"),
        muse.InvalidConfigError,
        "top_p",
    ),
    (
        "retry-zero-attempts",
        config_file(OK_PROFILE + "retry = {max_attempts = 0}\n"),
        muse.InvalidConfigError,
        "retry.max_attempts",
    ),
    (
        "retry-wrong-type",
        lambda: muse.load("fake:echo", retry="often"),
        muse.InvalidConfigError,
        "retry",
    ),
    ("missing-env-key", openai(), muse.MissingCredentialsError, "OPENAI_API_KEY"),
    (
        "invalid-base-url",
        openai(api_key="k", base_url="ftp://example"),
        muse.InvalidConfigError,
        "base_url",
    ),
    ("bad-api-choice", openai(api_key="k", api="graphql"), muse.InvalidConfigError, "api"),
    ("empty-api-key", openai(api_key=""), muse.InvalidConfigError, "api_key"),
    ("nan-temperature", gen_call(temperature=math.nan), muse.InvalidParameterError, "temperature"),
    ("temperature-too-high", gen_call(temperature=3), muse.InvalidParameterError, "temperature"),
    (
        "temperature-as-text",
        gen_call(temperature="warm"),
        muse.InvalidParameterError,
        "temperature",
    ),
    ("negative-max-tokens", gen_call(max_tokens=-5), muse.InvalidParameterError, "max_tokens"),
    ("absurd-max-tokens", gen_call(max_tokens=10**12), muse.InvalidParameterError, "max_tokens"),
    ("max-tokens-float", gen_call(max_tokens=2.5), muse.InvalidParameterError, "max_tokens"),
    ("n-zero", gen_call(n=0), muse.InvalidParameterError, "'n'"),
    ("top-p-zero", gen_call(top_p=0), muse.InvalidParameterError, "top_p"),
    ("top-k-zero", gen_call(top_k=0), muse.InvalidParameterError, "top_k"),
    (
        "too-many-stops",
        gen_call(stop=["a", "b", "c", "d", "e"]),
        muse.InvalidParameterError,
        "stop",
    ),
    ("empty-stop", gen_call(stop=[""]), muse.InvalidParameterError, "stop"),
    ("seed-as-text", gen_call(seed="lucky"), muse.InvalidParameterError, "seed"),
    (
        "negative-repetition-penalty",
        gen_call(repetition_penalty=-1),
        muse.InvalidParameterError,
        "repetition_penalty",
    ),
    ("negative-timeout", gen_call(timeout=-1), muse.InvalidParameterError, "timeout"),
    (
        "misspelled-parameter",
        gen_call(temprature=0.5),
        muse.UnsupportedParameterError,
        "temprature",
    ),
    ("empty-prompt", prompt_call(""), muse.InvalidPromptError, "empty"),
    ("whitespace-prompt", prompt_call("   \n"), muse.InvalidPromptError, "empty"),
    ("none-prompt", prompt_call(None), muse.InvalidPromptError, "NoneType"),
    ("int-prompt", prompt_call(42), muse.InvalidPromptError, "int"),
    ("non-utf8-bytes", prompt_call(b"\xff\xfe"), muse.InvalidPromptError, "UTF-8"),
    ("lone-surrogate", prompt_call("bad \ud800 text"), muse.InvalidPromptError, "surrogate"),
    ("empty-message-list", prompt_call([]), muse.InvalidPromptError, "message"),
    ("message-without-role", prompt_call([{"content": "hi"}]), muse.InvalidPromptError, "role"),
    (
        "huge-prompt",
        lambda: fake(context_length=1000).generate("word " * 5000),
        muse.ContextLengthExceededError,
        "context length",
    ),
    ("batch-of-a-string", lambda: fake().batch("just one"), muse.InvalidParameterError, "prompts"),
    (
        "zero-concurrency",
        lambda: fake().batch(["a"], max_concurrency=0),
        muse.InvalidParameterError,
        "max_concurrency",
    ),
    (
        "top-k-on-openai",
        openai_call("openai:gpt-4o-mini", "hi", top_k=5),
        muse.UnsupportedParameterError,
        "top_k",
    ),
    (
        "messages-on-completions",
        openai_call("openai:gpt-3.5-turbo-instruct", [{"role": "user", "content": "hi"}]),
        muse.UnsupportedParameterError,
        "messages",
    ),
    (
        "missing-template-variable",
        template("Write a {genre} about {topic}", genre="poem"),
        muse.MissingVariableError,
        "topic",
    ),
    ("unsafe-template", template("{x.__class__}", x=1), muse.UnsafeTemplateError, "x.__class__"),
]


@pytest.mark.parametrize(("case_id", "call", "error", "word"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    case_id: str, call: Callable[[], object], error: type[muse.MuseError], word: str
) -> None:
    with pytest.raises(muse.MuseError) as info:
        call()
    assert type(info.value) is error, f"{case_id}: {type(info.value).__name__}: {info.value}"
    assert word in str(info.value), f"{case_id}: {word!r} not in {info.value}"


def test_missing_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(muse.InvalidConfigError, match="MUSE_CONFIG"):
        missing_config_env(monkeypatch)()


def test_at_least_30_cases_and_all_documented() -> None:
    assert len(CASES) >= 30
    docs = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", docs, flags=re.M))
    assert {c[0] for c in CASES} <= documented
