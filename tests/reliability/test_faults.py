"""Fault injection against a real loopback server: nothing lost, nothing duplicated, no hangs.

The figures these tests assert are the guarantees stated in docs/reliability.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import muse_sdk as muse
from tests.reliability.conftest import READ_TIMEOUT_S, openai_gen
from tests.reliability.fault_server import FaultServer, Schedule, reply_for

Start = Callable[..., FaultServer]
#: The read timeout of the fan-out tests, whose replies queue behind many others.
LOADED_READ_S = 1.5


@pytest.mark.slow
@pytest.mark.parametrize("api", ["completions", "chat"])
def test_500_requests_with_30_percent_faults_all_succeed_exactly_once(
    fault_server: Start, api: str
) -> None:
    server = fault_server(Schedule(seed=7, rate=0.3, max_consecutive=5), stall_s=LOADED_READ_S * 3)
    # Under 16-way load on two shared cores a good reply can take longer than READ_TIMEOUT_S; the
    # client would then time out and ask again, and the server would count two good replies.
    gen = openai_gen(server, api=api, timeout={"connect": 2, "read": LOADED_READ_S})
    prompts = [f"prompt {i}" for i in range(500)]

    results = gen.batch(prompts, max_concurrency=16)

    assert results.ok, results.summary()
    assert results.texts == [reply_for(p) for p in prompts]  # each answered once, in order
    seen = server.attempts_by_prompt()
    assert sum(seen.values()) == len(server.seen)
    assert {
        p: r.attempts for p, r in zip(prompts, results.raise_for_errors(), strict=True)
    } == dict(seen)  # the server saw exactly the attempts the client reports, prompt by prompt
    faults = server.faults()
    assert faults["ok"] == 500
    assert sum(faults.values()) - 500 >= 150  # about 30% of attempts were faulty
    assert results.retried > 100
    gen.close()


async def test_async_fan_out_with_faults(fault_server: Start) -> None:
    server = fault_server(Schedule(seed=3, rate=0.3, max_consecutive=5), stall_s=LOADED_READ_S * 3)
    gen = openai_gen(server, timeout={"connect": 2, "read": LOADED_READ_S})
    prompts = [f"async {i}" for i in range(120)]
    results = await gen.abatch(prompts, max_concurrency=32)
    assert results.texts == [reply_for(p) for p in prompts]
    assert sum(r.attempts for r in results.raise_for_errors()) == len(server.seen)
    await gen.aclose()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, muse.BadRequestError),
        (401, muse.AuthenticationError),
        (404, muse.NotFoundError),
        (422, muse.BadRequestError),
    ],
)
def test_non_retryable_status_is_one_request_and_no_fallback(
    fault_server: Start, status: int, error: type[muse.ProviderError]
) -> None:
    server = fault_server(Schedule(scripted=[f"status:{status}"]))
    backup = muse.load("fake:echo")
    gen = openai_gen(server, fallbacks=[backup])
    with pytest.raises(error) as info:
        gen.generate("hello")
    assert type(info.value) is error
    assert info.value.status_code == status
    assert len(server.seen) == 1
    assert backup.calls == 0  # type: ignore[attr-defined]


def test_retry_after_is_honoured(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["rate_limit"]), retry_after="2")
    result = openai_gen(server).generate("wait for me")
    assert result.attempts == 2
    first, second = server.seen
    assert second.at - first.at >= 2.0


def test_retry_after_never_breaks_the_deadline(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["rate_limit"]), retry_after="2")
    gen = openai_gen(server, timeout={"connect": 2, "read": 2, "total": 1.0})
    start = time.monotonic()
    with pytest.raises(muse.RateLimitError) as info:
        gen.generate("in a hurry")
    assert time.monotonic() - start < 1.0
    assert info.value.retry_after == 2
    assert len(server.seen) == 1


def test_stall_before_first_byte_times_out(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["stall"]), stall_s=5)
    gen = openai_gen(server, retry={"max_attempts": 1})
    start = time.monotonic()
    with pytest.raises(muse.TimeoutError):
        gen.generate("hello")
    assert time.monotonic() - start < READ_TIMEOUT_S + 1


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_stalled_stream_is_cut_by_the_read_timeout(fault_server: Start, api: str) -> None:
    server = fault_server(Schedule(scripted=["stall_mid_stream"]), stall_s=5)
    gen = openai_gen(server, api=api)
    seen: list[str] = []
    start = time.monotonic()
    with pytest.raises(muse.StreamInterruptedError) as info:
        for chunk in gen.stream("slow stream"):
            seen.append(chunk.text)
    assert time.monotonic() - start < READ_TIMEOUT_S + 1
    assert info.value.partial == "".join(seen) == "answer"
    assert len(server.seen) == 1  # text was shown: never retried


@pytest.mark.parametrize("fault", ["500", "rate_limit", "reset_before_headers", "stall"])
def test_stream_failing_before_first_chunk_is_retried(fault_server: Start, fault: str) -> None:
    server = fault_server(Schedule(scripted=[fault]), stall_s=READ_TIMEOUT_S * 3)
    text = "".join(c.text for c in openai_gen(server).stream("retry me"))
    assert text == reply_for("retry me")
    assert len(server.seen) == 2


async def test_cut_sse_stream_keeps_partial(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["sse_cut"]))
    gen = openai_gen(server, api="chat")
    seen: list[str] = []
    with pytest.raises(muse.StreamInterruptedError) as info:
        async for chunk in gen.astream("cut me"):
            seen.append(chunk.text)
    assert info.value.partial == "".join(seen) == "answer"
    await gen.aclose()


@pytest.mark.parametrize(
    "fault",
    [
        "500",
        "502",
        "503",
        "reset_before_headers",
        "reset_after_headers",
        "malformed_json",
        "error_body_200",
        "sse_cut",
    ],
)
def test_each_transient_fault_is_retried(fault_server: Start, fault: str) -> None:
    server = fault_server(Schedule(scripted=[fault]))
    result = openai_gen(server).generate("again")
    assert (result.text, result.attempts, len(server.seen)) == (reply_for("again"), 2, 2)


def test_fallback_from_dead_primary_to_fake() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gen = muse.load(
        "openai:test-model",
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="none",
        retry={"max_attempts": 2, "initial_wait_s": 0.001},
        fallbacks=["fake:echo"],
    )
    result = gen.generate("still answered")
    assert (result.provider, result.text) == ("fake", "still answered")
    assert result.attempts == 3


def test_batch_summary_counts(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["500", None, "status:401"]))
    results = openai_gen(server).batch(["a", "b", "c"], max_concurrency=1)
    assert (results.succeeded, results.retried, results.failed) == (2, 1, 1)
    assert "3 items: 2 succeeded (1 retried), 1 failed" in repr(results)
