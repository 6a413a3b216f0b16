"""Shared fixtures: a clean environment so that a developer's config never leaks into tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    for name in (
        "MUSE_CONFIG",
        "MUSE_MODEL",
        "MUSE_PROFILE",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "MUSE_LOG",  # a developer's call log never receives the tests' calls
        "MUSE_LOG_PATH",
        "MUSE_TRACING",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(home)  # so that a ./muse.toml in the checkout never leaks into a test
    yield
