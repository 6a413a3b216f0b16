"""The call log, as calls write it: opt-in, complete, and never a key."""

from __future__ import annotations

from pathlib import Path

import pytest

import muse_sdk as muse
from muse_sdk import pricing
from muse_sdk.calllog import CallLog
from tests.servers.openai_server import OpenAIServer

KEY = "sk-live-" + "k" * 40


@pytest.fixture
def log_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "logs.db"
    monkeypatch.setenv("MUSE_LOG_PATH", str(path))
    monkeypatch.setenv("MUSE_LOG", "1")
    return path


def test_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "logs.db"
    monkeypatch.setenv("MUSE_LOG_PATH", str(path))
    monkeypatch.delenv("MUSE_LOG", raising=False)
    muse.load("fake:echo").generate("hello")
    assert not path.exists()


def test_every_call_is_recorded_with_what_it_was(log_path: Path) -> None:
    pricing.set_price("fake:echo", input=1.0, output=1.0)
    try:
        gen = muse.load("fake:echo")
        result = gen.generate("one two three", max_tokens=2, temperature=0)
        list(gen.stream([{"role": "user", "content": "streamed"}]))
    finally:
        pricing.clear_prices()
    failing = muse.load("fake:script", responses=["x"], failures=["auth"])
    with pytest.raises(muse.AuthenticationError):
        failing.generate("doomed")
    with CallLog(log_path) as log:
        failed, streamed, plain = log.recent(10)
    assert plain.reply == result.text and plain.prompt == "one two three"
    assert (plain.provider, plain.model) == ("fake", "echo")
    assert plain.params == {"max_tokens": 2, "temperature": 0.0}
    assert (plain.prompt_tokens, plain.completion_tokens) == (3, 2)
    assert plain.cost == pytest.approx(5 / 1e6)
    assert plain.attempts == 1 and plain.latency_s > 0 and plain.error is None
    assert plain.finish_reason == "length" and not plain.stream
    assert streamed.stream and '"streamed"' in streamed.prompt
    assert failed.reply is None and failed.error is not None
    assert failed.error.startswith("AuthenticationError")


def test_a_profile_turns_it_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "logs.db"
    monkeypatch.setenv("MUSE_LOG_PATH", str(path))
    monkeypatch.delenv("MUSE_LOG", raising=False)
    config = {"log": True, "profiles": {"p": {"provider": "fake", "model": "echo"}}}
    muse.load(profile="p", config=config).generate("logged")
    with CallLog(path) as log:
        assert [r.prompt for r in log.recent()] == ["logged"]
    monkeypatch.setenv("MUSE_LOG", "0")  # the environment wins
    muse.load(profile="p", config=config).generate("not logged")
    with CallLog(path) as log:
        assert len(log.recent()) == 1


def test_keys_are_never_recorded(log_path: Path) -> None:
    with OpenAIServer() as server:
        gen = muse.load("openai:gpt-4o-mini", base_url=server.url, api_key=KEY)
        gen.generate(f"my key is {KEY}")
        bad = muse.load(
            "openai:gpt-4o-mini",
            base_url="http://127.0.0.1:9/v1",
            api_key=KEY,
            retry={"max_attempts": 1},
        )
        with pytest.raises(muse.ConnectionError):
            bad.generate("unreachable")
    raw = log_path.read_bytes()
    for extra in log_path.parent.glob("logs.db*"):
        raw += extra.read_bytes()
    assert KEY.encode() not in raw
    assert KEY[:20].encode() not in raw
