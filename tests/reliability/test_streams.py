"""Streams against a misbehaving loopback server: stalls, cut bodies, non-streams, floods.

Each test states a rule of docs/reliability.md ("Streams: stalls, cut bodies and bounds") and
runs it sync and async where the rule says so. Every endless behaviour of the server stops on its
own (tests/reliability/stream_faults.py), so a test that fails still ends.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

import muse_sdk as muse
from muse_sdk.providers.openai._sse import MAX_LINE_BYTES, max_events
from tests.reliability.conftest import openai_gen
from tests.reliability.fault_server import FaultServer, Schedule, reply_for

Start = Callable[..., FaultServer]
PROMPT = "hello world"
FIRST_WORD = reply_for(PROMPT).split(" ")[0]  # the text a stream yields before it breaks
SYNC_ASYNC = pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])


async def read(gen: muse.Generator, aio: bool, seen: list[str], **params: Any) -> muse.Stream:
    """Read a whole stream into ``seen``; return it (a ``Stream`` or an ``AsyncStream``)."""
    if aio:
        async with gen.astream(PROMPT, **params) as astream:
            async for chunk in astream:
                seen.append(chunk.text)
        await gen.aclose()
        return astream  # type: ignore[return-value]  # both have .result
    with gen.stream(PROMPT, **params) as stream:
        for chunk in stream:
            seen.append(chunk.text)
    return stream


def wait_for_hangup(server: FaultServer, within_s: float = 3.0) -> float:
    """When the server saw the client close the connection (fails if it did not)."""
    until = time.monotonic() + within_s
    while not server.hangups and time.monotonic() < until:
        time.sleep(0.05)
    assert server.hangups, "the client never closed the connection"
    return server.hangups[0]


# --- 5. a stall hidden behind keep-alives --------------------------------------------------


@SYNC_ASYNC
@pytest.mark.parametrize(
    ("timeout", "limit_s"),
    [(2, 2.0), ({"read": 2, "total": 5}, 2.0), ({"connect": 2, "read": 30, "total": 1.5}, 1.5)],
    ids=["timeout=2", "read=2,total=5", "total=1.5"],
)
async def test_keepalive_stall_is_cut_by_read_or_total(
    fault_server: Start, aio: bool, timeout: Any, limit_s: float
) -> None:
    server = fault_server(Schedule(scripted=["keepalive_stall"]), stall_s=30)
    gen = openai_gen(server, timeout=timeout)
    seen: list[str] = []
    start = time.monotonic()
    with pytest.raises(muse.StreamInterruptedError) as info:
        await read(gen, aio, seen)
    took = time.monotonic() - start
    assert limit_s <= took < limit_s + 1.5  # keep-alives arrive every 0.5 s
    assert info.value.partial == "".join(seen) == FIRST_WORD
    assert isinstance(info.value.__cause__, muse.TimeoutError)
    assert wait_for_hangup(server) - start < limit_s + 3  # the connection was closed
    assert len(server.seen) == 1  # text was shown: never retried


def test_a_slow_reader_is_not_a_stalled_server(fault_server: Start) -> None:
    server = fault_server()
    gen = openai_gen(server, timeout={"read": 0.3})
    seen = []
    for chunk in gen.stream(PROMPT):  # the bytes wait in the socket while the reader sleeps
        time.sleep(0.5)
        seen.append(chunk.text)
    assert "".join(seen) == reply_for(PROMPT)


def test_with_no_timeout_the_read_limit_is_openais_default() -> None:
    from types import SimpleNamespace

    from muse_sdk.providers.openai._sse import DEFAULT_READ_S, guard

    gen = muse.load("openai:test-model", base_url="http://127.0.0.1:9/v1", api_key="none")
    events = SimpleNamespace(_decoder=None, response=SimpleNamespace(headers={}))
    decoder = guard(events, gen.make_request("hi", {}).started())
    assert decoder.read_s == DEFAULT_READ_S == 600  # openai's own default read timeout
    assert decoder.deadline_at is None
    assert events._decoder is decoder


# --- 6. cut bodies -----------------------------------------------------------------------------


@SYNC_ASYNC
@pytest.mark.parametrize("fault", ["close_mid_char", "close_mid_line", "close_no_done"])
async def test_a_cut_body_is_interrupted_with_the_partial_text(
    fault_server: Start, aio: bool, fault: str
) -> None:
    server = fault_server(Schedule(scripted=[fault]))
    seen: list[str] = []
    with pytest.raises(muse.StreamInterruptedError) as info:
        await read(openai_gen(server), aio, seen)
    assert info.value.partial == "".join(seen)
    assert seen and reply_for(PROMPT).startswith(info.value.partial)
    assert isinstance(info.value.__cause__, muse.ConnectionError)
    assert len(server.seen) == 1


@SYNC_ASYNC
async def test_a_body_complete_but_for_done_succeeds(fault_server: Start, aio: bool) -> None:
    server = fault_server(Schedule(scripted=["close_after_finish"]))
    seen: list[str] = []
    stream = await read(openai_gen(server), aio, seen)
    assert "".join(seen) == stream.result.text == reply_for(PROMPT)
    assert stream.result.finish_reason == "stop"


@SYNC_ASYNC
async def test_a_body_cut_before_the_first_chunk_is_retried(fault_server: Start, aio: bool) -> None:
    server = fault_server(Schedule(scripted=["close_before_first"]))
    seen: list[str] = []
    stream = await read(openai_gen(server), aio, seen)
    assert "".join(seen) == reply_for(PROMPT)
    assert stream.result.attempts == len(server.seen) == 2


# --- 7. a 200 that is not an event stream ------------------------------------------------------


@SYNC_ASYNC
@pytest.mark.parametrize(
    "fault", ["html_200", "json_200_no_choices", "error_body_200", "malformed_json"]
)
async def test_a_200_that_is_not_a_stream_raises_what_generate_raises(
    fault_server: Start, aio: bool, fault: str
) -> None:
    server = fault_server(Schedule(scripted=[fault, fault]))
    gen = openai_gen(server, retry={"max_attempts": 1})
    with pytest.raises(muse.ProviderError) as generated:
        gen.generate(PROMPT)
    seen: list[str] = []
    with pytest.raises(muse.ProviderError) as streamed:
        await read(gen, aio, seen)
    assert type(streamed.value) is type(generated.value) is muse.ServerError
    assert seen == []


@SYNC_ASYNC
async def test_a_whole_completion_on_a_stream_request_is_one_chunk(
    fault_server: Start, aio: bool
) -> None:
    server = fault_server(Schedule(scripted=["json_200_completion"]))  # "stream": true ignored
    seen: list[str] = []
    stream = await read(openai_gen(server, api="chat"), aio, seen)
    assert seen == [reply_for(PROMPT)]
    assert stream.result.finish_reason == "stop"
    assert stream.result.usage.completion_tokens == len(reply_for(PROMPT).split())


# --- 8. memory bounds --------------------------------------------------------------------------


@SYNC_ASYNC
async def test_an_endless_line_raises_and_memory_stays_flat(fault_server: Start, aio: bool) -> None:
    server = fault_server(Schedule(scripted=["endless_line"]))  # stops after 64 MiB
    gen = openai_gen(server, retry={"max_attempts": 1})
    tracemalloc.start()
    try:
        with pytest.raises(muse.ServerError, match="line of the event stream over"):
            await read(gen, aio, [])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MAX_LINE_BYTES
    wait_for_hangup(server)


@SYNC_ASYNC
async def test_a_reply_far_beyond_max_tokens_is_cut(fault_server: Start, aio: bool) -> None:
    server = fault_server(Schedule(scripted=["event_flood"]))  # stops after 100,000 events
    seen: list[str] = []
    with pytest.raises(muse.StreamInterruptedError) as info:
        await read(openai_gen(server), aio, seen, max_tokens=5)
    assert isinstance(info.value.__cause__, muse.ServerError)
    assert "ignored" in str(info.value.__cause__)
    assert info.value.partial == "".join(seen) == "x" * max_events(5, 1)
    wait_for_hangup(server)


def test_the_event_bound_is_generous_and_always_set() -> None:
    assert max_events(100, 2) == 4 * 100 * 2 + 64
    assert max_events(None, 1) == 4 * 262_144 + 64  # max_tokens unset: still bounded


# --- 20. the Stream object -----------------------------------------------------------------------


@SYNC_ASYNC
async def test_the_result_counts_attempts_and_names_the_model(
    fault_server: Start, aio: bool
) -> None:
    server = fault_server(Schedule(scripted=["500"]))
    seen: list[str] = []
    stream = await read(openai_gen(server), aio, seen, n=1)
    result = stream.result
    assert result.text == "".join(seen) == reply_for(PROMPT)
    assert (result.finish_reason, result.attempts, len(server.seen)) == ("stop", 2, 2)
    assert (result.provider, result.model, result.id) == ("openai", "test-model", "cmpl-s")
    assert result.latency_s > 0


def test_result_before_the_end_after_close_and_after_failure(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=[None, None, "close_mid_line"]))
    gen = openai_gen(server)
    stream = gen.stream(PROMPT)
    assert next(stream).text == FIRST_WORD
    with pytest.raises(muse.MuseError, match="has not ended yet"):
        _ = stream.result
    assert stream.get_final_result().text == reply_for(PROMPT)  # reads the rest

    closed = gen.stream(PROMPT)
    next(closed)
    closed.close()
    with pytest.raises(muse.MuseError, match="closed before it ended"):
        _ = closed.result

    broken = gen.stream(PROMPT)
    with pytest.raises(muse.StreamInterruptedError) as info:
        list(broken)
    with pytest.raises(muse.StreamInterruptedError) as again:
        _ = broken.result
    assert again.value is info.value


@SYNC_ASYNC
async def test_leaving_the_with_block_closes_the_connection(fault_server: Start, aio: bool) -> None:
    server = fault_server(Schedule(scripted=["keepalive_stall"]), stall_s=30)
    gen = openai_gen(server)
    if aio:
        async with gen.astream(PROMPT) as astream:
            assert (await anext(astream)).text == FIRST_WORD
        await gen.aclose()
    else:
        with gen.stream(PROMPT) as stream:
            assert next(stream).text == FIRST_WORD
    wait_for_hangup(server)
