"""No key in an error's chain, in config errors, and no garbled messages for short "keys".

Issue 13, points 10, 11 and 12, against the loopback fault server.
"""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable

import pytest

import muse_sdk as muse
from muse_sdk._redact import Redactor, scrub_chain
from tests.reliability.fault_server import FaultServer, Schedule

Start = Callable[..., FaultServer]
# Not shaped like an OpenAI key, so only muse's knowledge of *this* key can hide it.
KEY = "museKEY-0123456789abcdefSECRET"


def _gen(server: FaultServer, api: str = "completions") -> muse.Generator:
    return muse.load(
        "openai:test-model",
        base_url=server.base_url,
        api_key=KEY,
        api=api,
        retry={"max_attempts": 1},
    )


def _everything_shown(err: BaseException) -> str:
    """What a user can see of an error: its text, its chain's text, and the traceback."""
    parts = [str(err), repr(err), *getattr(err, "__notes__", [])]
    for linked in (err.__cause__, err.__context__):
        if linked is not None:
            parts += [str(linked), repr(linked), *getattr(linked, "__notes__", [])]
    parts.append("".join(traceback.format_exception(err)))
    return "\n".join(parts)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_key_echoed_by_a_401_is_gone_from_the_whole_chain(fault_server: Start, api: str) -> None:
    server = fault_server(Schedule(scripted=["echo_key_401"]))
    with pytest.raises(muse.AuthenticationError) as info:
        _gen(server, api).generate("who am i")
    shown = _everything_shown(info.value)
    assert server.last_key == KEY  # the server really had it to echo
    assert info.value.__cause__ is not None and "Incorrect API key" in str(info.value.__cause__)
    assert KEY not in shown
    try:  # and as a program sees it while handling the error
        _gen(server, api).generate("again")
    except muse.MuseError:
        assert KEY not in traceback.format_exc()


async def test_key_echoed_by_a_401_is_gone_async(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["echo_key_401"]))
    gen = _gen(server, "chat")
    with pytest.raises(muse.AuthenticationError) as info:
        await gen.agenerate("who am i")
    assert KEY not in _everything_shown(info.value)
    await gen.aclose()


def test_key_echoed_by_a_401_is_gone_from_a_stream(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["echo_key_401"]))
    with pytest.raises(muse.AuthenticationError) as info:
        list(_gen(server, "chat").stream("who am i"))
    assert KEY not in _everything_shown(info.value)


async def test_key_echoed_by_a_401_is_gone_from_an_async_stream(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["echo_key_401"]))
    gen = _gen(server)
    with pytest.raises(muse.AuthenticationError) as info:
        async for _ in gen.astream("who am i"):
            pass
    assert KEY not in _everything_shown(info.value)
    await gen.aclose()


def test_scrub_chain_replaces_what_it_cannot_rewrite() -> None:
    class StubbornError(Exception):
        def __str__(self) -> str:
            return f"computed from state: {KEY}"

    top = RuntimeError("top")
    top.__cause__ = StubbornError()
    top.__cause__.__context__ = ValueError(f"inner {KEY}")
    top.add_note(f"note {KEY}")
    scrub_chain(top, Redactor([KEY]))
    assert KEY not in _everything_shown(top)
    assert "StubbornError" in str(top.__cause__) and "***" in str(top.__cause__)


# --- 11. config errors never echo a secret -------------------------------------------------


@pytest.mark.parametrize("value", [(KEY,), {"key": KEY}, [KEY], 12345678901234567890])
def test_config_error_does_not_echo_a_secret_value(value: object) -> None:
    with pytest.raises(muse.InvalidConfigError) as info:
        muse.load("openai:gpt-4o-mini", api_key=value)
    assert info.value.field == "api_key"
    assert "secret" in str(info.value)
    assert KEY not in _everything_shown(info.value)
    assert "12345678901234567890" not in _everything_shown(info.value)


def test_config_file_error_does_not_echo_a_secret_value(tmp_path: object) -> None:
    config = {"profiles": {"p": {"provider": "openai", "model": "m", "api_key": [KEY]}}}
    with pytest.raises(muse.InvalidConfigError) as info:
        muse.load(profile="p", config=config)
    assert KEY not in _everything_shown(info.value)


def test_other_config_errors_still_show_the_value() -> None:
    with pytest.raises(muse.InvalidConfigError, match="nowhere"):
        muse.load("openai:gpt-4o-mini", api_key="none", base_url="nowhere")


# --- 12. very short "keys" are not substring-redacted ---------------------------------------


def test_a_one_letter_key_does_not_garble_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "e")
    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gen = muse.load("openai:test-model", base_url=f"http://127.0.0.1:{port}/v1", retry=1)
    with pytest.raises(muse.ConnectionError) as info:
        gen.generate("hello")
    message = str(info.value)
    assert "the connection to" in message and "failed" in message
    assert "***" not in message


def test_redactor_keeps_long_secrets_and_key_shapes_only() -> None:
    redact = Redactor(["e", "short7!", KEY, None])
    assert redact("the connection failed") == "the connection failed"
    assert redact(f"key {KEY} and sk-abcd1234") == "key *** and sk-***"
