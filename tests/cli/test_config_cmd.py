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


def test_models_lists_the_model_names_muse_knows(invoke: Invoke) -> None:
    from muse_sdk.models import known_model_names

    result = invoke("models")
    assert result.exit_code == 0, result.stderr
    assert "use -m local:NAME" in result.stdout
    for name in known_model_names():
        assert f" {name} " in result.stdout


BROKEN_PROFILE = """
default = "echo"

[profiles.echo]
provider = "fake"
model = "echo"

[profiles.typo]
provider = "fake"
model = "echo"
temprature = 0.5

[profiles.gone]
provider = "nope"
model = "x"
"""


def test_models_works_with_a_broken_profile(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    Path("muse.toml").write_text(BROKEN_PROFILE, encoding="utf-8")
    result = invoke("models")
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "default" in rows["echo"] and "invalid" not in rows["echo"]
    assert "fake:echo" in rows["typo"] and "invalid (temprature)" in rows["typo"]
    assert "nope:x" in rows["gone"] and "invalid" in rows["gone"]
    assert "warning: 2 profiles are invalid: 'muse config check' says why" in result.stderr
    assert invoke("generate", "still works").stdout == "still works\n"


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
    assert "3 problems found" in out
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


def test_config_check_never_approves_a_file_that_does_not_parse(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-value")
    Path("muse.toml").write_text('default = "echo"\n[profiles.echo\n', encoding="utf-8")
    result = invoke("config", "check")
    assert result.exit_code == 2
    assert "✓" not in result.stdout, result.stdout
    assert "cannot be read as TOML" in result.stdout and "1 problem found" in result.stdout


CHAIN = """
[profiles.main]
provider = "fake"
model = "echo"
fallbacks = ["typo", "ghost", "nope:x", "fake:echo", "echo"]

[profiles.echo]
provider = "fake"
model = "echo"

[profiles.typo]
provider = "fake"
model = "echo"
temprature = 0.5
"""


def test_config_check_follows_fallback_chains(invoke: Invoke) -> None:
    Path("muse.toml").write_text(CHAIN, encoding="utf-8")
    result = invoke("config", "check")
    assert result.exit_code == 2
    out = result.stdout
    assert "✗ profile 'main': fallback 'typo' is an invalid profile" in out
    assert "✗ profile 'main': fallback 'ghost' is neither a profile" in out
    assert "✗ profile 'main': fallback 'nope:x' cannot be loaded: unknown provider 'nope'" in out
    assert "fallback 'fake:echo'" not in out and "fallback 'echo'" not in out
    assert "4 problems found" in out  # typo itself, and three bad fallbacks


@pytest.mark.parametrize(
    "text",
    [
        "default = [",
        "default = 3",
        'default = "ghost"',
        'colour = "blue"',
        "profiles = 3",
        "[profiles]\nwriter = 3",
        '[profiles.a]\nprovider = "fake"',
        '[profiles.a]\nprovider = "local"\nmodel = "gpt2"\ndevice = "tpu"',
        '[profiles.a]\nprovider = "fake"\nmodel = "echo"\nretry = "often"',
        '[profiles.a]\nprovider = "fake"\nmodel = "echo"\nfallbacks = ["b"]',
    ],
)
def test_config_check_exits_2_for_every_problem(invoke: Invoke, text: str) -> None:
    Path("muse.toml").write_text(text, encoding="utf-8")
    result = invoke("config", "check")
    assert result.exit_code == 2, (text, result.output, result.exception)
    found = result.stdout.count("✗ ")
    assert found >= 1 and f"{found} problem" in result.stdout, result.stdout
