"""Every public method of the Generator base class, through the fake provider."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import muse_sdk as muse
from muse_sdk.providers.fake import FakeGenerator, tokenize


async def _no_async_wait(_seconds: float) -> None:
    return None


NO_WAIT = muse.RetryPolicy(sleep=lambda _s: None, async_sleep=_no_async_wait, max_attempts=3)


def fake(model: str = "echo", **settings: object) -> FakeGenerator:
    gen = muse.load(f"fake:{model}", **settings)
    assert isinstance(gen, FakeGenerator)
    return gen


def test_generate_returns_typed_result() -> None:
    result = fake().generate("Once upon a time there was", max_tokens=3)
    assert result.text == "Once upon a"
    assert result.finish_reason == "length"
    assert result.usage.prompt_tokens == 6
    assert result.usage.completion_tokens == 3
    assert (result.provider, result.model, result.attempts) == ("fake", "echo", 1)
    assert result.latency_s > 0


def test_generate_stop_and_n() -> None:
    result = fake().generate("alpha beta. gamma", stop=[".", "gamma"], n=2)
    assert result.texts == ["alpha beta", "alpha beta"]
    assert {c.finish_reason for c in result.choices} == {"stop"}
    assert [c.index for c in result.choices] == [0, 1]


def test_generate_chat_messages() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    assert fake().generate(messages).text == "hello"


def test_profile_defaults_apply_and_calls_override() -> None:
    gen = muse.load("fake:echo", max_tokens=1)
    assert gen.generate("a b c").text == "a"
    assert gen.generate("a b c", max_tokens=2).text == "a b"


def test_unknown_parameter_is_rejected_with_suggestion() -> None:
    with pytest.raises(muse.UnsupportedParameterError, match="did you mean 'temperature'"):
        fake().generate("hi", temprature=0.5)


def test_simulated_latency() -> None:
    assert fake(latency_s=0.05).generate("hi").latency_s >= 0.05


async def test_agenerate() -> None:
    result = await fake().agenerate("一 二 三", max_tokens=2)
    assert result.text == "一 二"


def test_stream_concatenates_to_generate() -> None:
    gen = fake()
    prompt = "写一首关于秋天的诗 🍂 with emoji"
    chunks = list(gen.stream(prompt, max_tokens=8))
    assert "".join(c.text for c in chunks) == gen.generate(prompt, max_tokens=8).text
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_validates_eagerly() -> None:
    with pytest.raises(muse.InvalidParameterError):
        fake().stream("hi", temperature=9)


async def test_astream() -> None:
    gen = fake()
    texts = [c.text async for c in gen.astream("a b c d", max_tokens=3)]
    assert "".join(texts) == "a b c"


def test_stream_retries_before_first_chunk() -> None:
    gen = muse.load("fake:echo", failures=["server", "rate_limit"], retry=NO_WAIT)
    assert "".join(c.text for c in gen.stream("one two")) == "one two"
    assert gen.calls == 3  # type: ignore[attr-defined]


def test_stream_interrupted_keeps_partial_text() -> None:
    gen = muse.load("fake:echo", fail_stream_after=2, retry=NO_WAIT)
    seen: list[str] = []
    with pytest.raises(muse.StreamInterruptedError) as info:
        for chunk in gen.stream("one two three four"):
            seen.append(chunk.text)
    assert info.value.partial == "".join(seen) == "one two"
    assert gen.calls == 1  # type: ignore[attr-defined]  # never retried after text was yielded


async def test_astream_interrupted_keeps_partial_text() -> None:
    gen = muse.load("fake:echo", fail_stream_after=1, retry=NO_WAIT)
    with pytest.raises(muse.StreamInterruptedError) as info:
        async for _ in gen.astream("one two three"):
            pass
    assert info.value.partial == "one"


def test_retry_counts_attempts_and_skips_non_retryable() -> None:
    gen = muse.load("fake:echo", failures=["server", "connection"], retry=NO_WAIT)
    assert gen.generate("ok").attempts == 3
    gen = muse.load("fake:echo", failures=["auth"], retry=NO_WAIT)
    with pytest.raises(muse.AuthenticationError):
        gen.generate("ok")
    assert gen.calls == 1  # type: ignore[attr-defined]


def test_retry_gives_up_after_max_attempts() -> None:
    gen = muse.load("fake:echo", failures=["server"] * 5, retry=NO_WAIT)
    with pytest.raises(muse.ServerError):
        gen.generate("ok")
    assert gen.calls == 3  # type: ignore[attr-defined]


def test_retry_after_is_honoured() -> None:
    waits: list[float] = []
    policy = muse.RetryPolicy(sleep=waits.append, max_attempts=2)
    gen = muse.load("fake:echo", failures=["rate_limit"], retry_after_s=1.5, retry=policy)
    assert gen.generate("ok").attempts == 2
    assert waits == [1.5]


def test_batch_keeps_order_and_loses_nothing() -> None:
    gen = muse.load(
        "fake:script", responses=["r0", "r1", "r2", "r3"], failures=[None, "bad_request"]
    )
    prompts = ["p0", "p1", "", "p3", "p4"]
    results = gen.batch(prompts, max_concurrency=1)
    assert len(results) == 5
    assert results.failed == 2 and results.succeeded == 3
    assert isinstance(results[1], muse.BadRequestError)
    assert isinstance(results[2], muse.InvalidPromptError)
    assert results.texts == ["r0", None, None, "r1", "r2"]
    with pytest.raises(muse.BatchError) as info:
        results.raise_for_errors()
    assert [r.text if r else None for r in info.value.results] == results.texts
    assert sorted(info.value.errors) == [1, 2]
    assert "3 succeeded" in results.summary()


def test_batch_order_with_concurrency() -> None:
    prompts = [f"prompt {i}" for i in range(40)]
    results = fake(latency_s=0.01).batch(prompts, max_concurrency=8)
    assert results.ok
    assert results.texts == prompts


def test_batch_concurrency_bound_respected() -> None:
    gen = fake(latency_s=0.03)
    gen.batch([f"p {i}" for i in range(20)], max_concurrency=3)
    assert gen.max_in_flight == 3


async def test_abatch_concurrency_bound_and_order() -> None:
    gen = fake(latency_s=0.02)
    prompts = [f"p {i}" for i in range(30)]
    results = await gen.abatch(prompts, max_concurrency=4)
    assert results.texts == prompts
    assert gen.max_in_flight == 4


async def test_abatch_with_failures_and_retries() -> None:
    gen = muse.load("fake:echo", failures=["server", None, "not_found"], retry=NO_WAIT)
    results = await gen.abatch(["a", "b", "c"], max_concurrency=1)
    # call 0 fails (server) and is retried as call 1; call 2 ("b") gets the 404; "c" is call 3
    assert results.texts == ["a", None, "c"]
    assert results.retried == 1 and results.failed == 1
    assert isinstance(results[1], muse.NotFoundError)
    assert gen.calls == 4  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_batch_bad_concurrency(bad: object) -> None:
    with pytest.raises(muse.InvalidParameterError, match="max_concurrency"):
        fake().batch(["a"], max_concurrency=bad)  # type: ignore[arg-type]


def test_batch_rejects_single_string() -> None:
    with pytest.raises(muse.InvalidParameterError, match="prompts"):
        fake().batch("not a list")


def test_batch_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    fake().batch(["a", "b", "c"], progress=True)
    assert "3/3" in capsys.readouterr().err


class _Batching(FakeGenerator):
    native_batch = True
    chunks: list[int]

    def _generate_batch(self, requests):  # type: ignore[no-untyped-def]
        self.chunks = [*getattr(self, "chunks", []), len(requests)]
        return [self._generate(r) for r in requests]

    def _generate(self, request):  # type: ignore[no-untyped-def]
        if request.prompt == "boom":
            raise muse.BadRequestError("boom", provider="fake")
        return super()._generate(request)


def test_native_batch_chunks_and_isolates_failures() -> None:
    gen = _Batching("echo", muse.load("fake:echo", batch_size=4).settings)
    prompts = ["a", "b", "c", "d", "e", "boom", "g"]
    results = gen.batch(prompts, max_concurrency=1)
    assert gen.chunks == [4, 3]
    assert results.texts == ["a", "b", "c", "d", "e", None, "g"]
    assert isinstance(results[5], muse.BadRequestError)


def test_sync_methods_work_inside_event_loop_thread_pool() -> None:
    gen = fake()

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(None, lambda: gen.generate("x y").text)
        batch = await loop.run_in_executor(None, lambda: gen.batch(["m", "n"]).texts)
        streamed = await loop.run_in_executor(
            None, lambda: "".join(c.text for c in gen.stream("s t"))
        )
        return [first, *batch, streamed]  # type: ignore[list-item]

    assert asyncio.run(main()) == ["x y", "m", "n", "s t"]


def test_thread_safety_of_fake_counters() -> None:
    gen = fake()
    with ThreadPoolExecutor(8) as pool:
        texts = list(pool.map(lambda i: gen.generate(f"t{i}").text, range(64)))
    assert texts == [f"t{i}" for i in range(64)]
    assert gen.calls == 64


def test_context_manager_closes() -> None:
    closed = threading.Event()

    class Closing(FakeGenerator):
        def close(self) -> None:
            closed.set()

    with Closing("echo") as gen:
        gen.generate("x")
    assert closed.is_set()


async def test_async_context_manager() -> None:
    async with fake() as gen:
        assert (await gen.agenerate("x")).text == "x"


def test_context_length_error_from_provider() -> None:
    gen = muse.load("fake:echo", context_length=4)
    with pytest.raises(
        muse.ContextLengthExceededError, match=r"3 tokens.*max_tokens \(2\).*4 tokens"
    ):
        gen.generate("a b c", max_tokens=2)


def test_tokenize_roundtrip() -> None:
    for text in ["a b  c ", "写一首诗", " lead", "emoji 🍂 ok\n"]:
        assert "".join(tokenize(text)) == text


def test_script_requires_responses() -> None:
    with pytest.raises(muse.InvalidConfigError, match="responses"):
        muse.load("fake:script")
    with pytest.raises(muse.InvalidConfigError, match="unknown fake model"):
        muse.load("fake:nope")


def test_batch_on_result_called_per_item_in_caller_thread() -> None:
    seen: list[tuple[int, str | None, str]] = []
    caller = threading.current_thread().name

    def save(index: int, item: object) -> None:
        text = item.text if isinstance(item, muse.GenerationResult) else None
        seen.append((index, text, threading.current_thread().name))

    results = fake(latency_s=0.01).batch(["a", "", "c"], max_concurrency=2, on_result=save)
    assert sorted((i, t) for i, t, _ in seen) == [(0, "a"), (1, None), (2, "c")]
    assert {name for _, _, name in seen} == {caller}
    assert results.texts == ["a", None, "c"]


async def test_abatch_on_result() -> None:
    seen: dict[int, object] = {}
    await fake().abatch(["x", "y"], on_result=seen.__setitem__)
    assert sorted(seen) == [0, 1]


def test_batch_stops_queued_work_when_the_callback_raises() -> None:
    gen = fake(latency_s=0.02)

    def interrupt(index: int, item: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gen.batch([f"p{i}" for i in range(50)], max_concurrency=2, on_result=interrupt)
    assert gen.calls < 10  # the queued prompts were cancelled, not run
