"""The response cache in calls: keys, what is cached, hits, streams, flights, stores."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import muse_sdk as muse
from muse_sdk.cache import MemoryCache
from muse_sdk.cache._keys import request_key
from muse_sdk.core.generator import Generator
from muse_sdk.providers.fake import FakeGenerator

GREEDY = {"temperature": 0}


def fake(**settings: Any) -> FakeGenerator:
    settings.setdefault("responses", ["alpha beta gamma"])
    gen = muse.load("fake:script", **settings)
    assert isinstance(gen, FakeGenerator)
    return gen


class Person(BaseModel):
    name: str


def key(gen: Generator, prompt: Any = "hello", **params: Any) -> str:
    return request_key(gen, gen.make_request(prompt, {"temperature": 0, **params}))


def test_every_field_of_the_request_changes_the_key() -> None:
    gen = fake()
    base = key(gen)
    variants = {
        "prompt": key(gen, "hello!"),
        "chat": key(gen, [{"role": "user", "content": "hello"}]),
        "max_tokens": key(gen, max_tokens=5),
        "temperature": key(gen, temperature=0.1),
        "top_p": key(gen, top_p=0.5),
        "top_k": key(gen, top_k=3),
        "n": key(gen, n=2),
        "stop": key(gen, stop=["."]),
        "seed": key(gen, seed=1),
        "repetition_penalty": key(gen, repetition_penalty=1.2),
        "no_repeat_ngram_size": key(gen, no_repeat_ngram_size=2),
        "schema": key(gen, schema=Person),
        "regex": key(gen, regex="a+"),
        "tools": key(gen, tools=[{"name": "f"}]),
        "model": key(muse.load("fake:echo")),
        "settings": key(fake(responses=["other"])),
        "template": key(gen, muse.PromptTemplate("Say {x}").render(x="hello")),
    }
    assert len(set(variants.values()) | {base}) == len(variants) + 1
    assert key(gen, timeout=5) == base  # how long, not what: the same reply


def test_openai_base_url_model_and_extra_body_change_the_key() -> None:
    def openai(**settings: Any) -> Generator:
        settings.setdefault("base_url", "http://127.0.0.1:1/v1")
        settings.setdefault("api_key", "sk-test-abcdefgh")
        return muse.load("openai:gpt-4o-mini", **settings)

    base = key(openai())
    assert key(openai(base_url="http://127.0.0.1:2/v1")) != base
    assert (
        key(
            muse.load("openai:gpt-4o", base_url="http://127.0.0.1:1/v1", api_key="sk-test-abcdefgh")
        )
        != base
    )
    assert key(openai(), extra_body={"top_k": 2}) != base
    assert key(openai(api_key="sk-other-key-1234")) == base  # keys are never part of it


def test_local_revision_changes_the_key() -> None:
    pytest.importorskip("torch")
    a = muse.load("local:muse-tiny")
    b = muse.load("local:muse-tiny", revision="v2")
    assert key(a) != key(b)


def test_a_hit_makes_no_request_and_says_cached() -> None:
    gen = fake(cache="memory")
    first = gen.generate("hi", **GREEDY)
    second = gen.generate("hi", **GREEDY)
    assert gen.calls == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.text == first.text and second.usage == first.usage
    assert second.total_usage == muse.Usage() and first.total_usage == first.usage  # not billed
    assert gen.generate("other", **GREEDY).cached is False


def test_sampling_without_a_seed_is_not_cached_unless_asked() -> None:
    gen = fake(cache="memory")
    gen.generate("hi", temperature=0.8)
    gen.generate("hi", temperature=0.8)
    assert gen.calls == 2
    gen.generate("hi", temperature=0.8, seed=3)
    gen.generate("hi", temperature=0.8, seed=3)
    assert gen.calls == 3
    sampled = fake(cache="memory", cache_sampled=True)
    sampled.generate("hi", temperature=0.8)
    sampled.generate("hi", temperature=0.8)
    assert sampled.calls == 1


def test_a_cached_stream_replays_chunk_by_chunk() -> None:
    gen = fake(cache="memory")
    live = gen.stream("hi", **GREEDY)
    chunks = [c.text for c in live if c.text]
    replay = gen.stream("hi", **GREEDY)
    replayed = [c.text for c in replay if c.text]
    assert gen.calls == 1
    assert replayed == chunks and len(chunks) > 1
    assert replay.result.cached and replay.result.text == live.result.text
    assert replay.result.usage == live.result.usage
    assert gen.generate("hi", **GREEDY).cached  # a stream's entry serves generate too


def test_a_cached_structured_reply_is_validated_again() -> None:
    gen = fake(responses=['{"name": "Ann"}'], cache="memory")
    gen.generate("who", schema=Person, **GREEDY)
    hit = gen.generate("who", schema=Person, **GREEDY)
    assert hit.cached and hit.parsed == Person(name="Ann")


def test_per_call_cache_and_turning_it_off() -> None:
    store = MemoryCache()
    gen = fake()
    gen.generate("hi", cache=store, **GREEDY)
    assert gen.generate("hi", cache=store, **GREEDY).cached
    cached = fake(cache="memory")
    cached.generate("hi", **GREEDY)
    assert cached.generate("hi", cache=False, **GREEDY).cached is False
    assert cached.calls == 2


def test_concurrent_identical_calls_make_one_request() -> None:
    gen = fake(cache="memory", latency_s=0.2)
    results: list[muse.GenerationResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(gen.generate("same", **GREEDY)))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gen.calls == 1
    assert len({r.text for r in results}) == 1
    assert sum(not r.cached for r in results) == 1

    async def main() -> list[muse.GenerationResult]:
        agen = fake(cache="memory", latency_s=0.2)
        out = await asyncio.gather(*(agen.agenerate("same", **GREEDY) for _ in range(5)))
        assert agen.calls == 1
        return list(out)

    assert len(asyncio.run(main())) == 5


def test_sqlite_cache_survives_the_process_and_has_a_ttl(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    fake(cache=f"sqlite:{path}").generate("hi", **GREEDY)
    again = fake(cache=f"sqlite:{path}")
    assert again.generate("hi", **GREEDY).cached and again.calls == 0
    short = fake(cache=f"sqlite:{tmp_path / 'short.db'}?ttl_s=0.05")
    short.generate("hi", **GREEDY)
    import time

    time.sleep(0.1)
    assert short.generate("hi", **GREEDY).cached is False


def test_a_failed_call_is_not_cached() -> None:
    gen = fake(cache="memory", failures=["auth"])
    with pytest.raises(muse.AuthenticationError):
        gen.generate("hi", **GREEDY)
    assert gen.generate("hi", **GREEDY).cached is False


def test_bad_cache_values_are_errors() -> None:
    with pytest.raises((muse.InvalidParameterError, muse.InvalidConfigError)):
        fake(cache="redis://nope")
    with pytest.raises(muse.InvalidParameterError):
        fake().generate("hi", cache=42)


def test_a_per_call_cache_reaches_the_members_of_a_fallback_chain() -> None:
    store = MemoryCache()
    down = fake(failures=["server"] * 10, retry={"max_attempts": 1})
    up = fake(responses=["from the fallback"])
    chain = muse.FallbackGenerator([down, up])
    first = chain.generate("hi", cache=store, **GREEDY)
    again = chain.generate("hi", cache=store, **GREEDY)
    assert (first.cached, again.cached) == (False, True)
    assert again.text == "from the fallback" and up.calls == 1


def test_when_the_leading_call_is_cancelled_the_waiting_one_asks_itself() -> None:
    async def main() -> muse.GenerationResult:
        gen = fake(cache="memory", latency_s=0.3)
        leader = asyncio.ensure_future(gen.agenerate("same", **GREEDY))
        await asyncio.sleep(0.05)
        follower = asyncio.ensure_future(gen.agenerate("same", **GREEDY))
        await asyncio.sleep(0.05)
        leader.cancel()
        result = await follower
        assert gen.calls == 2  # the follower made its own request
        return result

    result = asyncio.run(main())
    assert result.text == "alpha beta gamma" and not result.cached
