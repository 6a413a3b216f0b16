"""Hooks: typed events per generator and process-wide, sync and async, never fatal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

import muse_sdk as muse
from muse_sdk import hooks
from muse_sdk.hooks import (
    AttemptFailed,
    Event,
    RequestFailed,
    RequestStarted,
    ResponseReceived,
    StreamChunkReceived,
)

FAST = {"initial_wait_s": 0.001, "max_wait_s": 0.001, "jitter": False}


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    hooks.remove_hook(recorder)


def test_a_call_reports_started_then_received_with_usage(recorder: Recorder) -> None:
    gen = muse.load("fake:echo", hooks=[recorder])
    result = gen.generate("one two three", max_tokens=2)
    assert recorder.kinds() == ["RequestStarted", "ResponseReceived"]
    started, received = recorder.events
    assert isinstance(started, RequestStarted) and isinstance(received, ResponseReceived)
    assert started.call_id == received.call_id
    assert (started.provider, started.model, started.operation) == (
        "fake",
        "echo",
        "text_completion",
    )
    assert started.params.max_tokens == 2 and started.stream is False
    assert received.result is result
    assert received.usage == result.usage and received.total_usage == result.total_usage
    assert received.latency_s > 0


def test_retries_report_each_failed_attempt_and_its_wait(recorder: Recorder) -> None:
    gen = muse.load(
        "fake:script",
        responses=["ok"],
        failures=["server", "rate_limit"],
        retry=FAST,
        hooks=[recorder],
    )
    gen.generate("hi")
    assert recorder.kinds() == [
        "RequestStarted",
        "AttemptFailed",
        "AttemptFailed",
        "ResponseReceived",
    ]
    first, second = recorder.events[1:3]
    assert isinstance(first, AttemptFailed) and isinstance(second, AttemptFailed)
    assert (first.attempt, second.attempt) == (1, 2)
    assert isinstance(first.error, muse.ServerError) and isinstance(
        second.error, muse.RateLimitError
    )
    assert first.wait_s is not None and first.wait_s >= 0


def test_a_failed_call_reports_its_last_attempt_and_the_failure(recorder: Recorder) -> None:
    gen = muse.load("fake:script", responses=["x"], failures=["auth"], hooks=[recorder])
    with pytest.raises(muse.AuthenticationError):
        gen.generate("hi")
    assert recorder.kinds() == ["RequestStarted", "AttemptFailed", "RequestFailed"]
    last, failed = recorder.events[1:]
    assert isinstance(last, AttemptFailed) and last.wait_s is None
    assert isinstance(failed, RequestFailed) and isinstance(failed.error, muse.AuthenticationError)


def test_a_stream_reports_every_chunk(recorder: Recorder) -> None:
    gen = muse.load("fake:echo", hooks=[recorder])
    chunks = list(gen.stream([{"role": "user", "content": "a b c"}]))
    seen = [e.chunk for e in recorder.events if isinstance(e, StreamChunkReceived)]
    assert seen == chunks
    assert recorder.kinds()[0] == "RequestStarted" and recorder.kinds()[-1] == "ResponseReceived"
    started = recorder.events[0]
    assert isinstance(started, RequestStarted) and started.stream and started.operation == "chat"


def test_a_hook_that_raises_is_logged_and_the_call_goes_on(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("hook bug")

    gen = muse.load("fake:echo", hooks=[broken, recorder])
    with caplog.at_level(logging.WARNING, logger="muse_sdk.hooks"):
        assert gen.generate("still works").text == "still works"
    assert recorder.kinds() == ["RequestStarted", "ResponseReceived"]  # later hooks still run
    assert "hook" in caplog.text and "hook bug" in caplog.text


def test_async_hooks_run_in_sync_and_async_calls() -> None:
    seen: list[str] = []

    async def hook(event: Event) -> None:
        await asyncio.sleep(0)
        seen.append(type(event).__name__)

    gen = muse.load("fake:echo", hooks=[hook])
    gen.generate("sync")
    assert seen == ["RequestStarted", "ResponseReceived"]

    async def main() -> None:
        await gen.agenerate("async")
        await asyncio.sleep(0.01)  # the hooks run as tasks on the caller's loop

    asyncio.run(main())
    assert seen == ["RequestStarted", "ResponseReceived"] * 2


def test_process_wide_hooks_see_every_generator(recorder: Recorder) -> None:
    hooks.add_hook(recorder)
    muse.load("fake:echo").generate("a")
    muse.load("fake:script", responses=["b"]).generate("b")
    assert recorder.kinds().count("ResponseReceived") == 2
    hooks.remove_hook(recorder)
    muse.load("fake:echo").generate("c")
    assert recorder.kinds().count("ResponseReceived") == 2


def test_a_fallback_chain_reports_the_member_calls_once_each(recorder: Recorder) -> None:
    hooks.add_hook(recorder)
    down = muse.load("fake:script", responses=["x"], failures=["server"], retry={"max_attempts": 1})
    chain = muse.FallbackGenerator([down, muse.load("fake:echo")])
    chain.generate("hi")
    assert recorder.kinds() == [
        "RequestStarted",
        "AttemptFailed",
        "RequestFailed",
        "RequestStarted",
        "ResponseReceived",
    ]


def record_to_list(event: Event) -> None:
    RECORDED.append(type(event).__name__)


RECORDED: list[str] = []


def test_profile_hooks_are_import_strings() -> None:
    config = {
        "profiles": {
            "watched": {
                "provider": "fake",
                "model": "echo",
                "hooks": ["tests.observe.test_hooks:record_to_list"],
            }
        }
    }
    RECORDED.clear()
    muse.load(profile="watched", config=config).generate("hi")
    assert RECORDED == ["RequestStarted", "ResponseReceived"]
    config["profiles"]["watched"]["hooks"] = ["no_such_module:hook"]
    with pytest.raises(muse.InvalidConfigError, match="cannot import hook"):
        muse.load(profile="watched", config=config)


def test_hooks_given_to_load_watch_the_fallbacks_too(recorder: Recorder) -> None:
    config = {
        "profiles": {
            "down": {
                "provider": "fake",
                "model": "script",
                "responses": ["x"],
                "failures": ["server"],
                "retry": {"max_attempts": 1},
            },
            "up": {"provider": "fake", "model": "echo"},
        }
    }
    chain = muse.load(profile="down", config=config, fallbacks=["up"], hooks=[recorder])
    chain.generate("hi")
    started = [e for e in recorder.events if isinstance(e, RequestStarted)]
    assert [e.model for e in started] == ["script", "echo"]
