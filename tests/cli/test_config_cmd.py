"""``muse models`` and ``muse config check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from muse_sdk.config import DEFAULT_MODEL
from tests.cli.conftest import Invoke


def test_models_lists_providers_and_profiles(invoke: Invoke, muse_toml: Path) -> None:
    result = invoke("models")
    assert result.exit_code == 0, result.stderr
    for name in ("fake", "local", "openai", "coder", "fake:script"):
        assert name in result.stdout
    echo_row = next(line for line in result.stdout.splitlines() if " echo " in line)
    assert "default" in echo_row
    assert "default: echo ('default' in muse.toml)" in result.stdout


def test_models_default_follows_the_environment(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert f"default: {DEFAULT_MODEL} (built-in default)" in invoke("models").stdout
    monkeypatch.setenv("MUSE_MODEL", "openai:gpt-4o-mini")
    assert "default: openai:gpt-4o-mini ($MUSE_MODEL)" in invoke("models").stdout


def test_config_check_passes_on_a_good_file(invoke: Invoke, muse_toml: Path) -> None:
    result = invoke("config", "check")
    assert result.exit_code == 0, result.stdout
    assert "config file: muse.toml" in result.stdout
    assert "✓ profile 'coder': fake:script" in result.stdout
    assert "✓ default: echo" in result.stdout
    assert "OPENAI_API_KEY is not set (no profile needs it)" in result.stdout


def test_config_check_without_a_file(invoke: Invoke) -> None:
    result = invoke("config", "check")
    assert result.exit_code == 0
    assert "config file: none (built-in defaults)" in result.stdout


BAD = """
default = "writer"
colour = "blue"

[profiles.writer]
provider = "openai"
model = "gpt-3.5-turbo-instruct"

[profiles.typo]
provider = "fake"
model = "echo"
temprature = 0.5

[profiles.keyed]
provider = "openai"
model = "gpt-4o-mini"
api_key_env = "MY_GATEWAY_KEY"
"""


def test_config_check_reports_every_problem(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("muse.toml").write_text(BAD, encoding="utf-8")
    monkeypatch.setenv("MY_GATEWAY_KEY", "sk-very-secret-value")
    result = invoke("config", "check")
    assert result.exit_code == 2
    out = result.stdout
    assert "✗ unknown top-level key 'colour'" in out
    assert "✓ profile 'writer': openai:gpt-3.5-turbo-instruct" in out
    assert "✗ profile 'typo':" in out and "did you mean 'temperature'?" in out
    assert "✗ OPENAI_API_KEY is missing (used by 'writer')" in out
    assert "✓ MY_GATEWAY_KEY is set (used by 'keyed')" in out
    assert "3 problem(s) found" in out
    assert "sk-very-secret-value" not in result.output


def test_config_check_invalid_toml_and_bad_default(invoke: Invoke) -> None:
    Path("muse.toml").write_text("default = [", encoding="utf-8")
    broken = invoke("config", "check")
    assert broken.exit_code == 2 and "cannot be read as TOML" in broken.stdout
    Path("muse.toml").write_text('default = "ghost"\n', encoding="utf-8")
    ghost = invoke("config", "check")
    assert ghost.exit_code == 2 and "✗ default:" in ghost.stdout and "'ghost'" in ghost.stdout


def test_config_check_bad_muse_config(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSE_CONFIG", "/no/such/muse.toml")
    result = invoke("config", "check")
    assert result.exit_code == 2 and "MUSE_CONFIG points at" in result.stdout
    models = invoke("models")
    assert models.exit_code == 2 and models.stderr.startswith("error: MUSE_CONFIG points at")
