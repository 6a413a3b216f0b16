"""``Stream`` and ``AsyncStream``: chunks, then a result that loses nothing (fake provider)."""

from __future__ import annotations

import pytest

import muse_sdk as muse
from muse_sdk.fallback import FallbackGenerator


async def _no_async_wait(_seconds: float) -> None:
    return None


def policy(max_attempts: int = 3) -> muse.RetryPolicy:
    return muse.RetryPolicy(
        sleep=lambda _s: None, async_sleep=_no_async_wait, max_attempts=max_attempts
    )


def test_a_stream_is_an_iterator_with_the_whole_result_at_the_end() -> None:
    gen = muse.load("fake:echo", failures=["server"], retry=policy())
    stream = gen.stream("one two three", max_tokens=2, n=2)
    assert isinstance(stream, muse.Stream) and iter(stream) is stream
    chunks = list(stream)
    result = stream.result
    assert result.texts == ["one two", "one two"]
    assert [c.finish_reason for c in result.choices] == ["length", "length"]
    assert result.usage == chunks[-1].usage and result.usage.completion_tokens == 4
    assert (result.provider, result.model, result.attempts) == ("fake", "echo", 2)
    assert result.latency_s > 0
    assert result.texts == gen.generate("one two three", max_tokens=2, n=2).texts


def test_result_before_the_end_raises_and_get_final_result_reads_the_rest() -> None:
    stream = muse.load("fake:echo").stream("a b c")
    assert next(stream).text == "a"
    with pytest.raises(muse.MuseError, match="has not ended yet"):
        _ = stream.result
    assert stream.get_final_result().text == "a b c"
    assert stream.result is stream.result  # computed once


def test_a_closed_stream_has_no_result_and_closing_twice_is_fine() -> None:
    with muse.load("fake:echo").stream("a b c") as stream:
        next(stream)
    stream.close()
    assert list(stream) == []
    with pytest.raises(muse.MuseError, match="closed before it ended"):
        _ = stream.result
    unopened = muse.load("fake:echo").stream("a b c")
    unopened.close()
    with pytest.raises(muse.MuseError, match="closed before it ended"):
        unopened.get_final_result()


def test_after_a_failure_result_raises_the_same_error() -> None:
    stream = muse.load("fake:echo", fail_stream_after=1, retry=policy()).stream("a b c")
    with pytest.raises(muse.StreamInterruptedError) as info:
        list(stream)
    assert info.value.partial == "a" and info.value.attempts == 1
    with pytest.raises(muse.StreamInterruptedError) as again:
        _ = stream.result
    assert again.value is info.value


async def test_async_stream_mirrors_the_sync_one() -> None:
    gen = muse.load("fake:echo", failures=["rate_limit"], retry=policy())
    async with gen.astream("一 二 三", max_tokens=2) as stream:
        assert isinstance(stream, muse.AsyncStream)
        texts = [chunk.text async for chunk in stream]
    assert "".join(texts) == stream.result.text == "一 二"
    assert (stream.result.finish_reason, stream.result.attempts) == ("length", 2)

    half = gen.astream("a b c")
    assert (await anext(half)).text == "a"
    with pytest.raises(muse.MuseError, match="has not ended yet"):
        _ = half.result
    assert (await half.get_final_result()).text == "a b c"

    closed = gen.astream("a b c")
    await anext(closed)
    await closed.close()
    with pytest.raises(muse.MuseError, match="closed before it ended"):
        _ = closed.result


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
async def test_a_fallback_stream_names_the_member_and_counts_every_request(aio: bool) -> None:
    primary = muse.load(
        "fake:script", responses=["never"], failures=["server"] * 2, retry=policy(2)
    )
    backup = muse.load("fake:echo", failures=["connection"], retry=policy(2))
    gen = FallbackGenerator([primary, backup])
    if aio:
        astream = gen.astream("x y")
        result = await astream.get_final_result()
    else:
        result = gen.stream("x y").get_final_result()
    assert (result.text, result.provider, result.model) == ("x y", "fake", "echo")
    assert result.attempts == 4  # two on the primary, two on the backup
