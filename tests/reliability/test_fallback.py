"""Fallbacks: the next generator answers only when the previous one gave up on a retryable error."""

from __future__ import annotations

import pytest

import muse_sdk as muse
from muse_sdk.fallback import FallbackGenerator
from muse_sdk.providers.fake import FakeGenerator


async def _no_wait(_seconds: float) -> None:
    return None


def policy(attempts: int = 3) -> muse.RetryPolicy:
    return muse.RetryPolicy(sleep=lambda _s: None, async_sleep=_no_wait, max_attempts=attempts)


def chain(failures: list[str]) -> tuple[FallbackGenerator, FakeGenerator, FakeGenerator]:
    primary = muse.load("fake:script", responses=["primary"], failures=failures, retry=policy())
    backup = muse.load("fake:script", responses=["backup"], retry=policy())
    gen = FallbackGenerator([primary, backup])
    assert isinstance(primary, FakeGenerator) and isinstance(backup, FakeGenerator)
    return gen, primary, backup


def test_primary_answers_when_healthy() -> None:
    gen, primary, backup = chain([])
    assert gen.generate("x").text == "primary"
    assert (primary.calls, backup.calls) == (1, 0)


def test_falls_back_after_retries_exhausted() -> None:
    gen, primary, backup = chain(["server"] * 3)
    result = gen.generate("x")
    assert (result.text, result.provider) == ("backup", "fake")
    assert (primary.calls, backup.calls) == (3, 1)
    assert result.attempts == 4  # three failed attempts on the primary, one on the backup


async def test_async_falls_back() -> None:
    gen, primary, backup = chain(["connection"] * 3)
    assert (await gen.agenerate("x")).text == "backup"
    assert (primary.calls, backup.calls) == (3, 1)


@pytest.mark.parametrize("kind", ["auth", "bad_request", "not_found"])
def test_non_retryable_errors_do_not_fall_through(kind: str) -> None:
    gen, primary, backup = chain([kind])
    with pytest.raises(muse.ProviderError):
        gen.generate("x")
    assert (primary.calls, backup.calls) == (1, 0)


def test_one_error_names_every_member_when_all_fail() -> None:
    primary = muse.load("fake:echo", failures=["server"] * 3, retry=policy())
    backup = muse.load("fake:echo", failures=["rate_limit"] * 3, retry=policy())
    with pytest.raises(muse.FallbackError) as info:
        FallbackGenerator([primary, backup]).generate("x")
    err = info.value
    assert [type(e) for e in err.exceptions] == [muse.ServerError, muse.RateLimitError]
    assert "ServerError" in str(err) and "RateLimitError" in str(err)
    assert err.attempts == 6  # three attempts on each member
    assert isinstance(err, muse.MuseError) and err.retryable


def test_non_retryable_error_of_a_fallback_is_named_with_the_earlier_failures() -> None:
    primary = muse.load("fake:echo", failures=["server"] * 3, retry=policy())
    backup = muse.load("fake:echo", failures=["auth"], retry=policy())
    with pytest.raises(muse.FallbackError) as info:
        FallbackGenerator([primary, backup]).generate("x")
    assert [type(e) for e in info.value.exceptions] == [muse.ServerError, muse.AuthenticationError]
    assert info.value.attempts == 4 and not info.value.retryable


def test_each_member_merges_the_call_with_its_own_defaults() -> None:
    primary = muse.load("fake:echo", failures=["server"], retry=1, max_tokens=1)
    backup = muse.load("fake:echo", max_tokens=2, temperature=0.5)
    gen = FallbackGenerator([primary, backup])
    assert gen.generate("one two three four").text == "one two"  # the backup's max_tokens
    assert gen.generate("one two three four", max_tokens=3).text == "one two three"


def test_stream_falls_back_before_first_chunk_only() -> None:
    gen, primary, backup = chain(["server"] * 3)
    assert "".join(c.text for c in gen.stream("x")) == "backup"
    primary = muse.load("fake:echo", fail_stream_after=1, retry=policy())
    backup = muse.load("fake:echo", retry=policy())
    with pytest.raises(muse.StreamInterruptedError) as info:
        list(FallbackGenerator([primary, backup]).stream("one two three"))
    assert info.value.partial == "one"
    assert backup.calls == 0  # type: ignore[attr-defined]


async def test_astream_falls_back() -> None:
    gen, _, backup = chain(["timeout"] * 3)
    assert "".join([c.text async for c in gen.astream("x")]) == "backup"
    assert backup.calls == 1


def test_batch_through_fallback_counts() -> None:
    gen, _primary, _backup = chain(["server"] * 3)
    results = gen.batch(["a", "b"], max_concurrency=1)
    assert results.texts == ["backup", "primary"]
    assert results.retried == 1 and results.ok


def test_bad_params_fail_before_any_call() -> None:
    gen, primary, _backup = chain([])
    with pytest.raises(muse.InvalidParameterError):
        gen.generate("x", temperature=5)
    assert primary.calls == 0


def test_profile_fallbacks_from_config() -> None:
    config = {
        "default": "main",
        "profiles": {
            "main": {
                "provider": "fake",
                "model": "script",
                "responses": ["main"],
                "failures": ["server"],
                "retry": {"max_attempts": 1},
                "fallbacks": ["backup", "fake:echo"],
            },
            "backup": {"provider": "fake", "model": "script", "responses": ["from backup"]},
        },
    }
    gen = muse.load(config=config)
    assert isinstance(gen, FallbackGenerator)
    assert [g.name for g in gen.generators] == ["main", "backup", "fake:echo"]
    assert gen.generate("x").text == "from backup"
    assert "fake:script -> fake:script -> fake:echo" in repr(gen)


def test_fallbacks_override_in_code() -> None:
    backup = muse.load("fake:script", responses=["b"])
    gen = muse.load("fake:echo", failures=["server"], retry=1, fallbacks=[backup])
    assert gen.generate("x").text == "b"
    gen = muse.load("fake:echo", failures=["server"], retry=1, fallbacks="fake:echo")
    assert isinstance(gen, FallbackGenerator) and gen.generate("y").text == "y"
    assert muse.load("fake:echo", fallbacks=[]).provider == "fake"


def test_needs_two_generators() -> None:
    with pytest.raises(muse.InvalidConfigError):
        FallbackGenerator([muse.load("fake:echo")])


def test_what_the_primary_cannot_honour_fails_before_any_call() -> None:
    class NoTopK(FakeGenerator):
        unsupported_params = frozenset({"top_k"})

    primary = NoTopK("echo")
    backup = muse.load("fake:echo")
    gen = FallbackGenerator([primary, backup])
    with pytest.raises(muse.UnsupportedParameterError, match="top_k"):
        gen.generate("x", top_k=5)
    results = gen.batch(["a", "b"], top_k=5)
    assert all(isinstance(item, muse.UnsupportedParameterError) for item in results)
    assert (primary.calls, backup.calls) == (0, 0)  # type: ignore[attr-defined]
