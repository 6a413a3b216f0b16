"""API keys never appear in a repr, an error message or a log line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import muse_sdk as muse
from muse_sdk.config import Config

KEY = "sk-test-SECRET-0123456789abcdef"


def test_key_not_in_profile_repr_or_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", KEY)
    profile = muse.Profile.from_table({"provider": "fake", "model": "echo", "api_key": KEY})
    assert KEY not in repr(profile)
    assert KEY not in str(profile)
    assert KEY not in profile.model_dump_json()
    assert KEY not in repr(profile.settings)
    assert profile.settings.resolve_api_key("fake") == KEY  # type: ignore[attr-defined]


def test_key_read_from_named_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", KEY)
    gen = muse.load("fake:echo", require_key=True, api_key_env="FAKE_KEY")
    assert KEY not in repr(gen) and KEY not in repr(gen.settings)


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(muse.MissingCredentialsError, match="FAKE_KEY") as info:
        muse.load("fake:echo", require_key=True, api_key_env="FAKE_KEY")
    assert "export FAKE_KEY=" in str(info.value)
    with pytest.raises(muse.MissingCredentialsError, match="api_key_env"):
        muse.load("fake:echo", require_key=True)


def test_keyless_servers_accept_none() -> None:
    profile = muse.Profile.from_table({"provider": "fake", "model": "echo", "api_key": "none"})
    assert profile.settings.resolve_api_key("fake") is None  # type: ignore[attr-defined]


def test_key_not_in_config_errors_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "muse.toml"
    path.write_text(
        f'[profiles.a]\nprovider = "fake"\nmodel = "echo"\napi_key = "{KEY}"\ntemperature = 9\n',
        encoding="utf-8",
    )
    with pytest.raises(muse.InvalidConfigError) as info:
        Config.from_file(path).profiles["a"]  # a profile is validated when used
    assert KEY not in str(info.value) and KEY not in repr(info.value)

    policy = muse.RetryPolicy(sleep=lambda _s: None)
    gen = muse.load("fake:echo", api_key=KEY, failures=["server", "auth"], retry=policy)
    with pytest.raises(muse.AuthenticationError) as auth:
        gen.generate("hello")
    assert KEY not in str(auth.value)
    assert "retrying" in caplog.text  # the retry was logged...
    assert KEY not in caplog.text  # ...without the key


def test_empty_key_rejected() -> None:
    with pytest.raises(muse.InvalidConfigError, match="api_key"):
        muse.load("fake:echo", api_key="  ")
