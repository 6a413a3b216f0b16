"""``timeout.read`` and ``timeout.total`` on the local provider, with muse-tiny (issue 13, point 4).

A slow decode step is made real by wrapping the engine's model calls (``prefill``/``decode``),
as a forward hook would (the provider's code is untouched); a busy model is a model lock held by
another thread, as another call (or an engine step) would.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import muse_sdk as muse  # noqa: E402
from muse_sdk.errors import StreamInterruptedError, TimeoutError  # noqa: E402
from muse_sdk.models import shipped_model_dir  # noqa: E402
from muse_sdk.providers.local import LocalGenerator  # noqa: E402

# Greedy muse-tiny writes all 500 tokens for this prompt (no end-of-text): ~1.5 s on one core.
PROMPT, LONG = "def", 500


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGenerator]:
    """A private copy of muse-tiny, so that hooks on it never touch other tests' model."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tiny = shipped_model_dir("muse-tiny")
    assert tiny is not None
    copy = tmp_path_factory.mktemp("tiny") / "muse-tiny"
    shutil.copytree(tiny, copy)
    g = muse.load(f"local:{copy}", device="cpu", retry={"max_attempts": 3})
    assert isinstance(g, LocalGenerator)
    yield g
    g.close()
    torch.set_num_threads(before)


class Steps:
    """Counts forward passes (decode steps); from step ``slow_after`` on, each sleeps ``delay``."""

    def __init__(self, slow_after: int | None = None, delay: float = 0.0) -> None:
        self.count = 0
        self.slow_after = slow_after
        self.delay = delay

    def __call__(self, module: Any, args: Any, output: Any) -> None:
        self.count += 1
        if self.slow_after is not None and self.count > self.slow_after:
            time.sleep(self.delay)


@pytest.fixture
def steps(gen: LocalGenerator) -> Iterator[Steps]:
    counter = Steps()
    model = gen._model().model  # the lean GPT-2 the engine drives
    for name in ("prefill", "decode"):
        original = getattr(model, name)

        def hooked(*args: Any, _original: Any = original) -> Any:
            output = _original(*args)
            counter(model, args, output)
            return output

        setattr(model, name, hooked)
    yield counter
    for name in ("prefill", "decode"):
        delattr(model, name)
    assert_model_is_free(gen)


def assert_model_is_free(gen: LocalGenerator) -> None:
    """The next call gets the model (a timed-out call stops within one decode step)."""
    result = gen.generate(PROMPT, max_tokens=3, timeout={"total": 5})
    assert result.usage.completion_tokens == 3


def settle(steps: Steps, quiet: float = 0.2) -> int:
    """Wait until no step has run for ``quiet`` seconds (generation stopped); return the count."""
    deadline = time.monotonic() + 5.0
    last, since = steps.count, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if steps.count != last:
            last, since = steps.count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return last
    raise AssertionError("generation kept running after the timeout")


# --- total -----------------------------------------------------------------------------------


def test_total_stops_a_long_generation(gen: LocalGenerator, steps: Steps) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timeout\.total \(0\.05 s\)") as info:
        gen.generate(PROMPT, max_tokens=LONG, temperature=0, timeout={"total": 0.05})
    elapsed = time.monotonic() - start
    assert elapsed < 0.6, elapsed
    assert info.value.provider == "local" and info.value.retryable is False
    assert settle(steps) < LONG  # generation stopped, it did not run on in the background


def busy(gen: LocalGenerator, seconds: float) -> None:
    """Make the model busy for ``seconds``, as another call holding its lock would."""
    lock = gen._model().lock
    held = threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            time.sleep(seconds)

    threading.Thread(target=hold, daemon=True).start()
    held.wait()


def test_total_includes_waiting_for_a_busy_model(gen: LocalGenerator) -> None:
    busy(gen, 0.8)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="waiting for the model"):
        gen.generate(PROMPT, max_tokens=3, timeout={"total": 0.2})
    assert time.monotonic() - start < 0.6
    assert_model_is_free(gen)


def test_read_does_not_bound_the_wait_for_a_busy_model(gen: LocalGenerator) -> None:
    busy(gen, 0.4)
    result = gen.generate(PROMPT, max_tokens=3, timeout={"read": 0.1, "total": 5})
    assert result.usage.completion_tokens == 3


def test_timeouts_are_not_retried(gen: LocalGenerator, steps: Steps) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        gen.generate(PROMPT, max_tokens=LONG, temperature=0, timeout={"read": 5, "total": 0.1})
    assert time.monotonic() - start < 0.6  # three attempts would take three budgets
    assert info.value.attempts == 1


def test_batch_items_time_out(gen: LocalGenerator) -> None:
    # Both write hundreds of tokens ("class" ends after 45, which can take under 0.1 s).
    results = gen.batch([PROMPT, "for"], max_tokens=LONG, temperature=0, timeout={"total": 0.1})
    assert all(isinstance(item, TimeoutError) for item in results)


# --- read ------------------------------------------------------------------------------------


def test_read_bounds_the_wait_for_each_token(gen: LocalGenerator, steps: Steps) -> None:
    steps.slow_after, steps.delay = 3, 0.8
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timeout\.read \(0\.15 s\)"):
        gen.generate(PROMPT, max_tokens=20, temperature=0, timeout={"read": 0.15})
    assert time.monotonic() - start < 0.7  # raised on time, not after the slow step ended
    assert settle(steps, quiet=1.2) == 4  # the slow step under way finished, then it stopped


def test_read_allows_a_long_call_of_quick_steps(gen: LocalGenerator) -> None:
    result = gen.generate(PROMPT, max_tokens=100, temperature=0, timeout={"read": 1.0})
    assert result.usage.completion_tokens == 100


def test_stream_past_read_keeps_the_partial_text(gen: LocalGenerator, steps: Steps) -> None:
    steps.slow_after, steps.delay = 8, 0.8
    received: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in gen.stream(PROMPT, max_tokens=50, temperature=0, timeout={"read": 0.15}):
            received.append(chunk.text)
    text = "".join(received)
    assert text and info.value.partial == text
    assert "timeout.read" in str(info.value)


def test_stream_past_total_keeps_the_partial_text(gen: LocalGenerator, steps: Steps) -> None:
    steps.slow_after, steps.delay = 8, 0.3
    received: list[str] = []
    start = time.monotonic()
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in gen.stream(PROMPT, max_tokens=LONG, temperature=0, timeout={"total": 0.4}):
            received.append(chunk.text)
    assert time.monotonic() - start < 0.9
    assert received and info.value.partial == "".join(received)
    assert "timeout.total" in str(info.value)


def test_stream_timing_out_before_any_text_raises_timeout(gen: LocalGenerator) -> None:
    busy(gen, 0.6)  # busy for the whole budget: nothing was yielded
    with pytest.raises(TimeoutError, match="waiting for the model"):
        next(iter(gen.stream(PROMPT, max_tokens=3, timeout={"total": 0.1})))
    assert_model_is_free(gen)


# --- async -----------------------------------------------------------------------------------


async def test_agenerate_past_read(gen: LocalGenerator, steps: Steps) -> None:
    steps.slow_after, steps.delay = 3, 0.8
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timeout\.read"):
        await gen.agenerate(PROMPT, max_tokens=20, timeout={"read": 0.15})
    assert time.monotonic() - start < 0.7


async def test_agenerate_past_total(gen: LocalGenerator, steps: Steps) -> None:
    with pytest.raises(TimeoutError, match=r"timeout\.total"):
        await gen.agenerate(PROMPT, max_tokens=LONG, temperature=0, timeout={"total": 0.05})
    assert settle(steps) < LONG


async def test_astream_past_read_keeps_the_partial_text(gen: LocalGenerator, steps: Steps) -> None:
    steps.slow_after, steps.delay = 8, 0.8
    received: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async for chunk in gen.astream(PROMPT, max_tokens=50, timeout={"read": 0.15}):
            received.append(chunk.text)
    assert received and info.value.partial == "".join(received)


def test_no_timeout_changes_nothing(gen: LocalGenerator) -> None:
    plain = gen.generate(PROMPT, max_tokens=30, temperature=0)
    timed = gen.generate(PROMPT, max_tokens=30, temperature=0, timeout={"read": 5, "total": 30})
    streamed = "".join(c.text for c in gen.stream(PROMPT, max_tokens=30, timeout=30))
    assert plain.text == timed.text == streamed
