"""Server-given waits are capped, and ``timeout.total`` bounds a whole call, fallbacks included.

Issue 13, points 1, 3 and 9, against the loopback fault server.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import pytest

import muse_sdk as muse
from tests.reliability.conftest import openai_gen
from tests.reliability.fault_server import FaultServer, Schedule, reply_for

Start = Callable[..., FaultServer]


# --- 1. Retry-After has a cap -------------------------------------------------------------------


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_retry_after_above_the_cap_raises_at_once(fault_server: Start, api: str) -> None:
    server = fault_server(Schedule(scripted=["rate_limit"] * 3), retry_after="600")
    gen = openai_gen(server, api=api)
    start = time.monotonic()
    with pytest.raises(muse.RateLimitError) as info:
        gen.generate("patience")
    assert time.monotonic() - start < 2
    assert info.value.retry_after == 600
    assert len(server.seen) == 1
    assert any("max_retry_after_s" in note for note in info.value.__notes__)


async def test_retry_after_above_the_cap_raises_at_once_async(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["rate_limit"] * 3), retry_after="600")
    gen = openai_gen(server)
    start = time.monotonic()
    with pytest.raises(muse.RateLimitError) as info:
        await gen.agenerate("patience")
    assert time.monotonic() - start < 2
    assert (info.value.retry_after, len(server.seen)) == (600, 1)
    await gen.aclose()


def test_retry_after_cap_is_configurable(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["rate_limit"]), retry_after="2")
    gen = openai_gen(server, retry={"max_retry_after_s": 1})
    with pytest.raises(muse.RateLimitError) as info:
        gen.generate("not that long")
    assert (info.value.retry_after, len(server.seen)) == (2, 1)


def test_retry_after_above_max_wait_but_within_the_cap_is_honoured(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["rate_limit"]), retry_after="1.5")
    result = openai_gen(server, retry={"max_wait_s": 0.01}).generate("wait")
    first, second = server.seen
    assert (result.text, result.attempts) == (reply_for("wait"), 2)
    assert second.at - first.at >= 1.5


def test_retry_after_ms_is_honoured(fault_server: Start) -> None:
    server = fault_server(
        Schedule(scripted=["rate_limit"]), rate_limit_headers={"retry-after-ms": "1200"}
    )
    assert openai_gen(server).generate("ms").attempts == 2
    first, second = server.seen
    assert second.at - first.at >= 1.2


def test_retry_after_http_date_is_honoured(fault_server: Start) -> None:
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    server = fault_server(
        Schedule(scripted=["rate_limit"]), rate_limit_headers={"retry-after": when}
    )
    assert openai_gen(server).generate("date").attempts == 2
    first, second = server.seen
    assert second.at - first.at >= 1.0  # the date has one-second resolution


def test_retry_after_http_date_far_ahead_raises_at_once(fault_server: Start) -> None:
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    server = fault_server(
        Schedule(scripted=["rate_limit"]), rate_limit_headers={"retry-after": when}
    )
    start = time.monotonic()
    with pytest.raises(muse.RateLimitError) as info:
        openai_gen(server).generate("later")
    assert time.monotonic() - start < 2
    assert info.value.retry_after is not None and info.value.retry_after > 3000


# --- 3. timeout.total bounds a fallback chain -----------------------------------------------


@pytest.mark.parametrize("where", ["call", "profile"])
def test_total_bounds_a_chain_of_three_stalling_members(fault_server: Start, where: str) -> None:
    servers = [fault_server(Schedule(scripted=["stall"] * 10), stall_s=5) for _ in range(3)]
    timeout = {"connect": 2, "read": 2, **({"total": 0.5} if where == "profile" else {})}
    gens = [openai_gen(s, timeout=timeout) for s in servers]
    chain = muse.FallbackGenerator(gens)
    params = {"timeout": {"read": 2, "total": 0.5}} if where == "call" else {}
    start = time.monotonic()
    with pytest.raises(muse.ProviderError) as info:
        chain.generate("hurry", **params)
    elapsed = time.monotonic() - start
    assert elapsed < 0.5 + 0.4, elapsed  # before: each member had its own 0.5 s (1.8 s in all)
    err = info.value
    assert isinstance(err, muse.FallbackError)
    assert [type(e) for e in err.exceptions] == [muse.TimeoutError] * 3
    assert "not tried" in str(err.exceptions[-1])
    assert err.attempts == sum(len(s.seen) for s in servers)


async def test_total_bounds_a_chain_async(fault_server: Start) -> None:
    servers = [fault_server(Schedule(scripted=["stall"] * 10), stall_s=5) for _ in range(3)]
    chain = muse.FallbackGenerator([openai_gen(s) for s in servers])
    start = time.monotonic()
    with pytest.raises(muse.FallbackError):
        await chain.agenerate("hurry", timeout={"read": 2, "total": 0.5})
    assert time.monotonic() - start < 0.9


def test_total_bounds_a_chain_stream(fault_server: Start) -> None:
    servers = [fault_server(Schedule(scripted=["stall"] * 10), stall_s=5) for _ in range(3)]
    chain = muse.FallbackGenerator([openai_gen(s) for s in servers])
    start = time.monotonic()
    with pytest.raises(muse.FallbackError):
        list(chain.stream("hurry", timeout={"read": 2, "total": 0.5}))
    assert time.monotonic() - start < 0.9


def test_a_later_member_gets_what_is_left_of_the_budget(fault_server: Start) -> None:
    dead = fault_server(Schedule(scripted=["stall"] * 10), stall_s=5)
    healthy = fault_server()
    chain = muse.FallbackGenerator([openai_gen(dead), openai_gen(healthy)])
    result = chain.generate("second wind", timeout={"read": 0.3, "total": 3})
    assert result.text == reply_for("second wind")
    assert result.attempts == len(dead.seen) + 1


# --- 9. a chain that fails entirely names every member ------------------------------------------


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_chain_of_503s_names_every_member_and_counts_every_request(
    fault_server: Start, api: str
) -> None:
    primary = fault_server(Schedule(scripted=["503"] * 3), retry_after="0")
    backup = fault_server(Schedule(scripted=["503"] * 3))
    chain = muse.FallbackGenerator(
        [
            openai_gen(primary, api=api, retry={"max_attempts": 3}),
            openai_gen(backup, api=api, retry={"max_attempts": 3}),
        ]
    )
    with pytest.raises(muse.FallbackError) as info:
        chain.generate("down")
    err = info.value
    assert err.attempts == len(primary.seen) + len(backup.seen) == 6
    assert [e.status_code for e in err.exceptions] == [503, 503]
    assert str(err).count("answered 503") == 2
    assert err.failures[0][0] != "" and isinstance(err, muse.MuseError)


async def test_chain_of_503s_async_and_through_load(fault_server: Start) -> None:
    primary = fault_server(Schedule(scripted=["503"] * 2))
    backup = fault_server(Schedule(scripted=["503"] * 2))
    gen = muse.load(
        "openai:test-model",
        base_url=primary.base_url,
        api_key="none",
        retry={"max_attempts": 2, "initial_wait_s": 0.001},
        fallbacks=[openai_gen(backup, retry={"max_attempts": 2})],
    )
    with pytest.raises(muse.FallbackError) as info:
        await gen.agenerate("down")
    assert info.value.attempts == len(primary.seen) + len(backup.seen) == 4
    await gen.aclose()
