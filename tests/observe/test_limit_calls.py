"""Rate limits in calls: per profile, shared, queued, bounded by the call's deadline."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

import muse_sdk as muse


def profile(**limits: int) -> tuple[str, dict[str, object]]:
    name = f"limited-{uuid.uuid4().hex[:8]}"  # the registry is process-wide: a fresh profile
    table = {"provider": "fake", "model": "echo", **limits}
    return name, {"profiles": {name: table}}


def test_generators_of_one_profile_share_one_limiter() -> None:
    name, config = profile(rpm=5)
    first = muse.load(profile=name, config=config)
    second = muse.load(profile=name, config=config)
    assert first.features.limiter is second.features.limiter
    assert first.features.limiter.rpm == 5
    other_name, other = profile(rpm=5)
    assert (
        muse.load(profile=other_name, config=other).features.limiter is not first.features.limiter
    )


def test_a_full_window_queues_and_a_deadline_ends_the_wait() -> None:
    name, config = profile(rpm=1)
    gen = muse.load(profile=name, config=config)
    gen.generate("first")
    start = time.monotonic()
    with pytest.raises(muse.TimeoutError, match="rate limit"):
        muse.load(profile=name, config=config).generate("second", timeout={"total": 5})
    assert time.monotonic() - start < 1.0  # it knew the wait would pass the deadline


def test_async_calls_share_the_limit_too() -> None:
    name, config = profile(rpm=2)
    gen = muse.load(profile=name, config=config)

    async def main() -> list[object]:
        calls = [gen.agenerate(f"p{i}", timeout={"total": 2}) for i in range(3)]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert sum(isinstance(o, muse.GenerationResult) for o in outcomes) == 2
    assert sum(isinstance(o, muse.TimeoutError) for o in outcomes) == 1


def test_tokens_are_corrected_with_the_real_usage() -> None:
    name, config = profile(tpm=600)
    gen = muse.load(profile=name, config=config)
    # Estimated at ~500 tokens (max_tokens) but using 4: the window keeps room for more calls.
    for _ in range(3):
        gen.generate("a b", max_tokens=500, timeout={"total": 2})
