"""total_usage and cost across a whole call: retries, fallbacks, repairs, tools, streams."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

import muse_sdk as muse
from muse_sdk import pricing
from muse_sdk.core.types import Usage
from muse_sdk.templates import CodeGenerationTemplate
from tests.servers.openai_server import OpenAIServer, Reply

FAST = {"initial_wait_s": 0.001, "max_wait_s": 0.001, "jitter": False}


@pytest.fixture(autouse=True)
def prices() -> Iterator[None]:
    pricing.set_price("fake:script", input=1.0, output=10.0)
    pricing.set_price("fake:echo", input=2.0, output=20.0)
    yield
    pricing.clear_prices()


class Person(BaseModel):
    name: str


def test_one_clean_call_totals_its_own_usage() -> None:
    result = muse.load("fake:script", responses=["a b c"]).generate("x y")
    assert result.total_usage == result.usage == Usage(prompt_tokens=2, completion_tokens=3)
    assert result.cost == pytest.approx((2 * 1.0 + 3 * 10.0) / 1e6)


def test_a_retried_reply_that_was_billed_counts() -> None:
    gen = muse.load(
        "fake:script", responses=["a b c"], failures=["malformed", "server"], retry=FAST
    )
    result = gen.generate("x y")
    assert result.usage == Usage(prompt_tokens=2, completion_tokens=3)
    assert result.total_usage == Usage(prompt_tokens=4, completion_tokens=4)  # + the billed one
    assert result.cost == pytest.approx((4 * 1.0 + 4 * 10.0) / 1e6)


def test_every_repair_round_counts() -> None:
    gen = muse.load("fake:script", responses=["not json", "still not", '{"name": "Ann"}'])
    result = gen.generate("who", schema=Person, repair_attempts=2)
    assert result.parsed == Person(name="Ann")
    assert result.total_usage.completion_tokens == 2 + 2 + 2
    assert len(result.bills) == 2  # the two rounds before the last, each billed
    assert result.total_usage == result.usage + result.bills[0].usage + result.bills[1].usage
    assert result.cost == pytest.approx((result.total_usage.prompt_tokens * 1.0 + 6 * 10.0) / 1e6)
    with pytest.raises(muse.StructuredOutputError) as info:
        muse.load("fake:script", responses=["no", "nope"]).generate(
            "who", schema=Person, repair_attempts=1
        )
    assert len(info.value.bills) == 2  # a failed call still says what it cost


def test_a_fallback_member_that_answered_badly_counts() -> None:
    down = muse.load(
        "fake:script", responses=["x"], failures=["malformed"], retry={"max_attempts": 1}
    )
    chain = muse.FallbackGenerator([down, muse.load("fake:echo")])
    result = chain.generate("p q")
    assert (result.provider, result.model) == ("fake", "echo")
    assert result.usage == Usage(prompt_tokens=2, completion_tokens=2)
    assert result.total_usage == Usage(prompt_tokens=4, completion_tokens=3)
    assert result.cost == pytest.approx((2 * 2.0 + 2 * 20.0 + 2 * 1.0 + 1 * 10.0) / 1e6)


def test_every_code_repair_round_counts() -> None:
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    right = "```python\ndef add(a, b):\n    return a + b\n```"
    tests = "from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    gen = muse.load("fake:script", responses=[wrong, right])
    code = CodeGenerationTemplate("python").run(gen, "add", tests=tests, repair_attempts=1)
    assert code.tests_passed
    words = len(wrong.split()) + len(right.split())
    assert code.total_usage.completion_tokens == words
    assert code.cost is not None and code.cost > 0


def test_every_run_tools_turn_counts() -> None:
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    call = json.dumps({"name": "add", "arguments": {"a": 1, "b": 2}})
    gen = muse.load("fake:script", responses=[call, "It is 3."])
    run = muse.run_tools(gen, [{"role": "user", "content": "1+2?"}], tools=[add])
    assert run.total_usage == run.replies[0].total_usage + run.replies[1].total_usage
    assert run.cost == pytest.approx(sum(r.cost for r in run.replies))  # type: ignore[misc]


def test_an_unknown_model_costs_none_never_a_guess() -> None:
    pricing.clear_prices()
    assert muse.load("fake:echo").generate("x").cost is None
    with OpenAIServer() as server:
        gen = muse.load("openai:my-finetune", base_url=server.url, api_key="sk-test-12345678")
        assert gen.generate("hi").cost is None
        pricing.set_price("openai:my-finetune", input=1.0, output=1.0)
        assert gen.generate("hi").cost is not None


def test_streamed_and_plain_calls_report_the_same_usage_and_cost() -> None:
    with OpenAIServer() as server:
        gen = muse.load("openai:gpt-4o-mini", base_url=server.url, api_key="sk-test-12345678")
        plain = gen.generate([{"role": "user", "content": "hi"}], max_tokens=5)
        stream = gen.stream([{"role": "user", "content": "hi"}], max_tokens=5)
        streamed = stream.get_final_result()
    assert streamed.usage == plain.usage and streamed.usage.completion_tokens == 5
    assert streamed.total_usage == plain.total_usage
    assert streamed.cost == plain.cost and plain.cost is not None
    local = muse.load("fake:script", responses=["a b c d"])
    assert local.stream("x").get_final_result().cost == local.generate("x").cost


def test_a_billed_malformed_http_reply_counts() -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    with OpenAIServer() as server:
        server.script(
            Reply(body=json.dumps({"id": "x", "usage": usage}).encode()), Reply(text="fine")
        )
        gen = muse.load(
            "openai:gpt-4o-mini", base_url=server.url, api_key="sk-test-12345678", retry=FAST
        )
        result = gen.generate([{"role": "user", "content": "hi"}])
    assert result.text == "fine"
    assert result.total_usage.prompt_tokens == result.usage.prompt_tokens + 7
    assert result.total_usage.completion_tokens == result.usage.completion_tokens + 3


def test_a_fallback_member_that_retried_and_failed_brings_every_billed_attempt() -> None:
    down = muse.load(
        "fake:script",
        responses=["x"],
        failures=["malformed", "malformed"],
        retry={**FAST, "max_attempts": 2},
    )
    chain = muse.FallbackGenerator([down, muse.load("fake:echo")])
    result = chain.generate("p q")
    assert [(b.model, b.usage) for b in result.bills] == [
        ("script", Usage(prompt_tokens=2, completion_tokens=1)),
        ("script", Usage(prompt_tokens=2, completion_tokens=1)),
    ]
    assert result.total_usage == Usage(prompt_tokens=6, completion_tokens=4)
