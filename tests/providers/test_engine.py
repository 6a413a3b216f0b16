"""The continuous-batching engine on muse-tiny: exactness, cancellation, latency, no leaks.

"Alone" means the same call run while the engine has nothing else to do. Rows join at random
engine steps (a seeded schedule), so the batch a row decodes in changes every step.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import muse_sdk as muse  # noqa: E402
from muse_sdk.core.types import GenerationResult  # noqa: E402
from muse_sdk.errors import BackendUnavailableError, ProviderError, TimeoutError  # noqa: E402
from muse_sdk.models import shipped_model_dir  # noqa: E402
from muse_sdk.providers.local import LocalGenerator, LocalSettings  # noqa: E402
from muse_sdk.providers.local._decode import TokenText  # noqa: E402
from muse_sdk.providers.local._engine import AsyncChannel, Channel, Engine, Job  # noqa: E402
from muse_sdk.providers.local._sampling import SamplingParams  # noqa: E402
from muse_sdk.providers.local._timeouts import Budget, afollow, follow  # noqa: E402

TINY = shipped_model_dir("muse-tiny")
LONG_SOURCE = (TINY / "training.json").read_text()[:600] if TINY else ""
PROMPTS = [
    "def",
    "class Parser:\n    def __init__(self",
    "import os\nimport sys\n\n",
    "# 写一首关于秋天的诗\n",
    "for line in",
    f"'''{LONG_SOURCE}'''\n",
]
# Greedy muse-tiny writes hundreds of tokens after "def" without an end-of-text.
ENDLESS = "def"


@pytest.fixture(scope="module")
def gen() -> Iterator[LocalGenerator]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a 4-layer model gains nothing from more, and CI cores are shared
    g = muse.load("local:muse-tiny", device="cpu")
    assert isinstance(g, LocalGenerator) and g.engine is not None
    yield g
    g.close()
    torch.set_num_threads(before)


def _engine(gen: LocalGenerator) -> Engine:
    engine = gen.engine
    assert isinstance(engine, Engine)
    return engine


def _idle(engine: Engine) -> None:
    """Wait until the engine runs nothing (earlier tests' rows are gone)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        counts = engine.counts()
        if counts["active"] == counts["queued"] == 0:
            return
        time.sleep(0.002)
    raise AssertionError(f"the engine kept running: {engine.counts()}")


def _wait_for_step(engine: Engine, step: int) -> None:
    """Wait until the engine has run ``step`` steps, or has nothing left to run."""
    while engine.steps < step:
        counts = engine.counts()
        if counts["active"] == counts["queued"] == 0:
            return
        time.sleep(0.0005)


def _signature(result: GenerationResult) -> tuple[Any, ...]:
    """What must not change: tokens (a stream's result has none), texts, reasons, usage."""
    return (
        (result.raw or {}).get("token_ids", "streamed"),
        result.texts,
        [c.finish_reason for c in result.choices],
        result.usage,
    )


def _random_calls(seed: int, count: int, sampling: bool) -> list[tuple[int, str, dict[str, Any]]]:
    """A seeded schedule: (engine step to join at, prompt, parameters)."""
    rng = random.Random(seed)
    calls = []
    for i in range(count):
        params: dict[str, Any] = {"max_tokens": rng.choice([1, 5, 24, 48])}
        if sampling and i % 2 == 0:
            params |= {"temperature": rng.choice([0.7, 1.0]), "seed": rng.randrange(1000)}
            params |= rng.choice([{}, {"top_k": 20}, {"top_p": 0.9}])
        else:
            params["temperature"] = 0
        params |= rng.choice([{}, {"n": 2}, {"n": 3}, {"stop": ["\n\n", "self"]}])
        params |= rng.choice([{}, {}, {"no_repeat_ngram_size": 2}, {"repetition_penalty": 1.0}])
        calls.append((rng.randrange(0, 40), rng.choice(PROMPTS), params))
    return sorted(calls, key=lambda call: call[0])


def _run_schedule(
    gen: LocalGenerator, calls: list[tuple[int, str, dict[str, Any]]]
) -> list[GenerationResult]:
    """Start each call (generate or stream, in its own thread) at its engine step."""
    engine = _engine(gen)
    _idle(engine)
    results: list[Any] = [None] * len(calls)
    start = engine.steps

    def work(i: int, prompt: str, params: dict[str, Any]) -> None:
        if i % 3 == 2:  # some stream, the same rows underneath
            stream = gen.stream(prompt, **params)
            for _ in stream:
                pass
            results[i] = stream.result
        else:
            results[i] = gen.generate(prompt, **params)

    threads = []
    for i, (step, prompt, params) in enumerate(calls):
        _wait_for_step(engine, start + step)
        thread = threading.Thread(target=work, args=(i, prompt, params))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(60)
    assert all(r is not None for r in results)
    return results


# --- exactness -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def old_path(gen: LocalGenerator) -> Iterator[LocalGenerator]:
    """The path before the engine: transformers' ``model.generate``, one call at a time."""
    pytest.importorskip("transformers")
    g = LocalGenerator("muse-tiny", LocalSettings(device="cpu", backend="transformers"))
    assert g.engine is None
    yield g
    g.close()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_the_transformers_path(
    gen: LocalGenerator, old_path: LocalGenerator, prompt: str
) -> None:
    # With the checkpoint's own repetition penalty (1.3), as both paths apply it.
    expected = old_path.generate(prompt, max_tokens=40, temperature=0, n=2)
    assert _signature(gen.generate(prompt, max_tokens=40, temperature=0, n=2)) == _signature(
        expected
    )
    stopped = {"max_tokens": 40, "temperature": 0, "stop": ["\n\n"], "no_repeat_ngram_size": 3}
    assert _signature(gen.generate(prompt, **stopped)) == _signature(
        old_path.generate(prompt, **stopped)
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_greedy_calls_are_the_same_whatever_joins_the_batch(gen: LocalGenerator, seed: int) -> None:
    calls = _random_calls(seed, 14, sampling=False)
    alone = [gen.generate(prompt, **params) for _, prompt, params in calls]
    together = _run_schedule(gen, calls)
    for i, (streamed, single) in enumerate(zip(together, alone, strict=True)):
        if i % 3 == 2:  # streamed: no token ids, the same text
            assert _signature(streamed)[1:] == _signature(single)[1:]
        else:
            assert _signature(streamed) == _signature(single)
    assert _engine(gen).counts()["active"] == 0


@pytest.mark.parametrize("seed", [3, 4])
def test_seeded_sampling_is_the_same_alone_and_among_companions(
    gen: LocalGenerator, seed: int
) -> None:
    calls = _random_calls(seed, 12, sampling=True)
    seeded = [i for i, (_, _, params) in enumerate(calls) if "seed" in params]
    assert seeded
    alone = [gen.generate(prompt, **params) for _, prompt, params in calls]
    together = _run_schedule(gen, calls)
    for i in seeded:
        assert _signature(together[i])[1:] == _signature(alone[i])[1:]


async def test_concurrent_agenerate_equals_sequential(gen: LocalGenerator) -> None:
    prompts = [p for p in PROMPTS for _ in range(3)][:16]
    alone = [gen.generate(p, max_tokens=20, temperature=0) for p in prompts]
    together = await asyncio.gather(
        *(gen.agenerate(p, max_tokens=20, temperature=0) for p in prompts)
    )
    assert [_signature(r) for r in together] == [_signature(r) for r in alone]


async def test_astream_equals_generate(gen: LocalGenerator) -> None:
    params = {"max_tokens": 30, "temperature": 0.8, "seed": 5, "n": 2, "stop": ["\n\n"]}
    full = gen.generate(PROMPTS[1], **params)
    chunks = [c async for c in gen.astream(PROMPTS[1], **params)]
    for choice in full.choices:
        assert "".join(c.text for c in chunks if c.index == choice.index) == choice.text
    assert chunks[-1].usage == full.usage


# --- cancellation and deadlines --------------------------------------------------------------

COMPANIONS = [PROMPTS[1], PROMPTS[2], PROMPTS[4]]


def _companions(gen: LocalGenerator) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = [None] * len(COMPANIONS)

    def work(i: int) -> None:
        results[i] = gen.generate(COMPANIONS[i], max_tokens=150, temperature=0)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(COMPANIONS))]
    for thread in threads:
        thread.start()
    engine = _engine(gen)
    deadline = time.monotonic() + 10
    while engine.counts()["active"] < len(COMPANIONS):  # all three are decoding (150 tokens)
        assert time.monotonic() < deadline, engine.counts()
        time.sleep(0.001)
    return threads, results


def _assert_freed_within_a_step(engine: Engine, cancelled_at: int, others: int) -> None:
    """The step running at cancellation ends; the next one starts by dropping the row."""
    _wait_for_step(engine, cancelled_at + 2)
    counts = engine.counts()
    assert counts["active"] <= others, counts
    assert counts["free"] == counts["slots"] - counts["active"]


def _check_companions(
    gen: LocalGenerator, threads: list[threading.Thread], results: list[Any]
) -> None:
    for thread in threads:
        thread.join(60)
    alone = [gen.generate(p, max_tokens=150, temperature=0) for p in COMPANIONS]
    assert [_signature(r) for r in results] == [_signature(r) for r in alone]
    _idle(_engine(gen))
    assert _engine(gen).counts()["free"] == _engine(gen).counts()["slots"]


def test_closing_a_stream_frees_its_row(gen: LocalGenerator) -> None:
    engine = _engine(gen)
    _idle(engine)
    threads, results = _companions(gen)
    stream = gen.stream(ENDLESS, max_tokens=400, temperature=0, n=2)
    for _ in zip(range(5), stream, strict=False):
        pass
    assert engine.counts()["active"] == len(COMPANIONS) + 2
    stream.close()
    _assert_freed_within_a_step(engine, engine.steps, len(COMPANIONS))
    _check_companions(gen, threads, results)


async def test_cancelling_agenerate_frees_its_row(gen: LocalGenerator) -> None:
    engine = _engine(gen)
    _idle(engine)
    threads, results = _companions(gen)
    victim = asyncio.ensure_future(gen.agenerate(ENDLESS, max_tokens=400, temperature=0))
    async with asyncio.timeout(10):  # until the victim decodes beside the companions
        while engine.counts()["active"] < len(COMPANIONS) + 1:
            await asyncio.sleep(0.001)
    victim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await victim
    await asyncio.to_thread(_assert_freed_within_a_step, engine, engine.steps, len(COMPANIONS))
    await asyncio.to_thread(_check_companions, gen, threads, results)


def test_a_timeout_frees_its_row(gen: LocalGenerator) -> None:
    engine = _engine(gen)
    _idle(engine)
    threads, results = _companions(gen)
    with pytest.raises(TimeoutError, match=r"timeout\.total"):
        gen.generate(ENDLESS, max_tokens=400, temperature=0, timeout={"total": 0.15})
    _assert_freed_within_a_step(engine, engine.steps, len(COMPANIONS))
    _check_companions(gen, threads, results)


async def test_an_async_timeout_frees_its_row(gen: LocalGenerator) -> None:
    engine = _engine(gen)
    _idle(engine)
    with pytest.raises(TimeoutError, match=r"timeout\.total"):
        await gen.agenerate(ENDLESS, max_tokens=400, temperature=0, timeout={"total": 0.1})
    await asyncio.to_thread(_idle, engine)
    assert engine.counts()["free"] == engine.counts()["slots"]


# --- latency under load ----------------------------------------------------------------------


def test_a_late_request_gets_its_first_token_after_one_prefill_and_one_step(
    gen: LocalGenerator,
) -> None:
    engine = _engine(gen)
    _idle(engine)
    streams = [gen.stream(ENDLESS, max_tokens=300, temperature=0) for _ in range(15)]
    firsts = [next(iter(s)) for s in streams]  # all 15 running
    assert all(chunk.text for chunk in firsts)
    assert engine.counts()["active"] == 15
    _wait_for_step(engine, engine.steps + 3)  # well into the run

    prompt = list(gen.tokenizer(PROMPTS[3])["input_ids"])
    channel = Channel()
    ticket = engine.submit(Job(prompt, SamplingParams(), max_new=20, stream=True), channel)
    events = follow(channel.queue, Budget(), ticket.cancel)
    _, text = next(events)
    assert text
    # Admitted at the next step; its first token comes from its own prefill, in that step.
    assert ticket.admitted_step - ticket.submitted_step <= 1
    assert ticket.first_token_step == ticket.admitted_step
    # The batch did not drain first: all 15 streams are still generating.
    assert engine.counts()["active"] == 16
    events.close()
    for stream in streams:
        stream.close()
    _idle(engine)


def test_calls_beyond_the_slots_wait_their_turn_in_order() -> None:
    engine, tokenizer = _private_engine(max_batch=2)
    try:
        channels = [Channel() for _ in range(4)]
        ids = list(tokenizer(PROMPTS[4])["input_ids"])
        jobs = [Job(ids, SamplingParams(), 6, n=n) for n in (1, 3, 1, 2)]
        tickets = [engine.submit(job, ch) for job, ch in zip(jobs, channels, strict=True)]
        for ticket, channel in zip(tickets, channels, strict=True):
            for _ in follow(channel.queue, Budget(), ticket.cancel):
                pass
        admitted = [t.admitted_step for t in tickets]
        assert admitted == sorted(admitted)  # first come, first served
        # n=3 on two slots: the third choice ran after the first two, and is the same text.
        assert len({row.text for row in tickets[1].rows}) == 1
        assert [len(t.rows) for t in tickets] == [1, 3, 1, 2]
        assert engine.counts() == {"active": 0, "queued": 0, "free": 2, "slots": 2, "outbox": 0}
    finally:
        engine.close()


# --- failures, closing, leaks ----------------------------------------------------------------


def _private_engine(max_batch: int, wrap: Callable[[Any], Any] | None = None) -> tuple[Engine, Any]:
    from muse_sdk.providers.local._gpt2 import LeanGPT2
    from muse_sdk.providers.local._lean_tokenizer import LeanTokenizer

    assert TINY is not None
    model = LeanGPT2.from_pretrained(TINY, device=torch.device("cpu"), dtype=torch.float32)
    tokenizer = LeanTokenizer(TINY)
    engine = Engine(
        wrap(model) if wrap else model,
        TokenText(tokenizer),
        frozenset([0]),
        max_batch=max_batch,
        name="test",
    )
    return engine, tokenizer


def test_a_failing_step_fails_its_calls_and_the_engine_goes_on() -> None:
    failures = {"left": 1}

    def wrap(model: Any) -> Any:
        original = model.decode

        def decode(*args: Any) -> Any:
            if failures["left"]:
                failures["left"] -= 1
                raise RuntimeError("CUDA error: an illegal memory access (simulated)")
            return original(*args)

        model.decode = decode
        return model

    engine, tokenizer = _private_engine(max_batch=4, wrap=wrap)
    try:
        ids = list(tokenizer("def")["input_ids"])
        channel = Channel()
        ticket = engine.submit(Job(ids, SamplingParams(), 5), channel)
        with pytest.raises(RuntimeError, match="simulated"):
            for _ in follow(channel.queue, Budget(), ticket.cancel):
                pass
        channel = Channel()
        ticket = engine.submit(Job(ids, SamplingParams(), 5), channel)
        for _ in follow(channel.queue, Budget(), ticket.cancel):
            pass
        assert len(ticket.rows[0].token_ids) == 5
        assert engine.counts()["free"] == 4
    finally:
        engine.close()


def test_a_failed_allocation_fails_the_waiting_calls_and_is_retried() -> None:
    attempts = {"left": 1}

    def wrap(model: Any) -> Any:
        original = model.allocate

        def allocate(*args: Any) -> Any:
            if attempts["left"]:
                attempts["left"] -= 1
                raise RuntimeError("out of memory (simulated)")
            return original(*args)

        model.allocate = allocate
        return model

    engine, tokenizer = _private_engine(max_batch=2, wrap=wrap)
    try:
        ids = list(tokenizer("def")["input_ids"])
        channel = Channel()
        ticket = engine.submit(Job(ids, SamplingParams(), 3), channel)
        with pytest.raises(RuntimeError, match="simulated"):
            for _ in follow(
                channel.queue, Budget(total=5, deadline_at=time.monotonic() + 5), ticket.cancel
            ):
                pass
        channel = Channel()
        ticket = engine.submit(Job(ids, SamplingParams(), 3), channel)
        for _ in follow(channel.queue, Budget(), ticket.cancel):
            pass
        assert len(ticket.rows[0].token_ids) == 3
    finally:
        engine.close()


def test_model_errors_reach_the_caller_as_provider_errors(gen: LocalGenerator) -> None:
    model = gen._model().model
    model.decode = lambda *args: (_ for _ in ()).throw(RuntimeError("boom"))
    try:
        with pytest.raises(ProviderError, match="boom"):
            gen.generate("def", max_tokens=5)
    finally:
        del model.decode
    assert gen.generate("def", max_tokens=3).usage.completion_tokens == 3


async def test_closing_the_engine_fails_what_it_still_runs() -> None:
    engine, tokenizer = _private_engine(max_batch=1)
    ids = list(tokenizer(ENDLESS)["input_ids"])
    loop = asyncio.get_running_loop()
    channels = [AsyncChannel(loop) for _ in range(2)]
    tickets = [engine.submit(Job(ids, SamplingParams(), 400), ch) for ch in channels]
    events = [
        afollow(ch.queue, Budget(), t.cancel) for ch, t in zip(channels, tickets, strict=True)
    ]
    async with asyncio.timeout(10):
        while engine.steps < 2:
            await asyncio.sleep(0.001)
    engine.close()
    for stream in events:
        with pytest.raises(BackendUnavailableError, match="closed"):
            async for _ in stream:
                pass
    with pytest.raises(BackendUnavailableError, match="closed"):
        engine.submit(Job(ids, SamplingParams(), 4), Channel())


def test_muse_tiny_runs_on_the_engine_without_transformers() -> None:
    import subprocess
    import sys

    script = (
        "import sys, muse_sdk as muse\n"
        "g = muse.load('local:muse-tiny', device='cpu')\n"
        "assert g.engine is not None and g.generate('def', max_tokens=3).text\n"
        "print(sorted(m for m in sys.modules if m.startswith(('transformers', 'torch._dynamo'))))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_backend_setting(tmp_path: Any) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(BackendUnavailableError, match="backend='lean' cannot run"):
        LocalGenerator(str(tmp_path), LocalSettings(device="cpu", backend="lean"))
    with LocalGenerator("muse-tiny", LocalSettings(device="cpu", backend="lean")) as lean:
        assert lean.engine is not None


def test_nothing_leaks_after_many_requests(gen: LocalGenerator) -> None:
    engine = _engine(gen)
    _idle(engine)
    rng = random.Random(0)

    def work(worker: int) -> None:
        for i in range(12):
            kind = rng.randrange(5)
            prompt = rng.choice(PROMPTS)
            try:
                if kind == 0:
                    gen.generate(prompt, max_tokens=rng.randrange(1, 12), n=rng.choice([1, 2]))
                elif kind == 1:
                    stream = gen.stream(prompt, max_tokens=30)
                    next(iter(stream))
                    stream.close()
                elif kind == 2:
                    gen.generate(ENDLESS, max_tokens=300, timeout={"total": 0.02})
                elif kind == 3:
                    gen.generate(prompt, max_tokens=8, temperature=0.9, seed=worker + i)
                else:
                    asyncio.run(gen.agenerate(prompt, max_tokens=6, stop=["\n"]))
            except TimeoutError:
                pass

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    _idle(engine)
    counts = engine.counts()
    assert counts == {
        "active": 0,
        "queued": 0,
        "free": counts["slots"],
        "slots": counts["slots"],
        "outbox": 0,
    }
    assert not engine._queue and not engine._active and not engine._touched


def _blocking_prefill(sizes: list[int], release: threading.Event, bad: int | None = None) -> Any:
    """Record each prefill pass's size; hold the first pass until ``release``; fail passes that
    hold a prompt of length ``bad``."""

    def wrap(model: Any) -> Any:
        original = model.prefill_many

        def prefill_many(slots: Any, prompts: Any) -> Any:
            sizes.append(len(prompts))
            if len(sizes) == 1:
                release.wait(30)
            if bad is not None and any(len(p) == bad for p in prompts):
                raise RuntimeError("prefill failed (simulated)")
            return original(slots, prompts)

        model.prefill_many = prefill_many
        return model

    return wrap


def _finish(engine: Engine, ids: list[int], tokens: int = 8) -> tuple[Any, Channel]:
    channel = Channel()
    return engine.submit(Job(ids, SamplingParams(), tokens), channel), channel


def _drain(ticket: Any, channel: Channel) -> list[int]:
    for _ in follow(channel.queue, Budget(), ticket.cancel):
        pass
    return list(ticket.rows[0].token_ids)


def test_prompts_arriving_together_are_prefilled_in_one_pass() -> None:
    sizes: list[int] = []
    release = threading.Event()
    engine, tokenizer = _private_engine(max_batch=8, wrap=_blocking_prefill(sizes, release))
    try:
        prompts = [list(tokenizer(p)["input_ids"]) for p in PROMPTS[:5]]
        first = _finish(engine, prompts[0])
        while not sizes:
            time.sleep(0.001)
        rest = [_finish(engine, ids) for ids in prompts[1:]]  # queued behind the first pass
        release.set()
        together = [_drain(*first)] + [_drain(*call) for call in rest]
        assert sizes[0] == 1 and sum(sizes[1:]) == 4 and len(sizes) < 5  # fewer passes
        alone = [_drain(*_finish(engine, ids)) for ids in prompts]
        assert together == alone
    finally:
        engine.close()


def test_a_failing_prefill_fails_only_its_own_call() -> None:
    sizes: list[int] = []
    release = threading.Event()
    engine, _ = _private_engine(max_batch=8, wrap=_blocking_prefill(sizes, release, 3))
    try:
        first = _finish(engine, [20, 21, 22, 23, 24])
        while not sizes:
            time.sleep(0.001)
        bad = _finish(engine, [10, 11, 12])
        good = _finish(engine, [10, 11, 12, 13])
        release.set()
        assert len(_drain(*first)) == 8 and len(_drain(*good)) == 8
        with pytest.raises(RuntimeError, match="simulated"):
            _drain(*bad)
        assert engine.counts()["free"] == 8
    finally:
        engine.close()
