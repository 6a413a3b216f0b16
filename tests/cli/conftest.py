"""Helpers for the CLI tests: run ``muse`` in-process, and write a muse.toml of fake profiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from muse_sdk import registry
from muse_sdk.cli._app import app
from muse_sdk.core.generator import Request
from muse_sdk.errors import UnsupportedParameterError
from muse_sdk.providers.fake import FakeGenerator

FENCED = "Here is the code:\n\n```python\nprint('cats and dogs')\n```\nHope it helps."
PROFILES = f"""
default = "echo"

[profiles.echo]
provider = "fake"
model = "echo"

[profiles.coder]
provider = "fake"
model = "script"
responses = [{json.dumps(FENCED)}]

[profiles.broken]
provider = "fake"
model = "script"
responses = ["```python\\ndef classify(:\\n    pass\\n```"]

[profiles.cut]
provider = "fake"
model = "script"
responses = ["```python\\nimport os\\nprint(os.getcwd())"]

[profiles.empty]
provider = "fake"
model = "script"
responses = ["```python\\n```"]

[profiles.prose]
provider = "fake"
model = "script"
responses = ["I would rather not write that code."]

[profiles.tiny]
provider = "fake"
model = "echo"
context_length = 1

[profiles.denied]
provider = "fake"
model = "script"
responses = ["never"]
failures = ["auth", "auth", "auth", "auth", "auth", "auth"]

[profiles.interrupted]
provider = "fake"
model = "script"
responses = ["one two three four"]
fail_stream_after = 2
"""

Invoke = Callable[..., Result]


@pytest.fixture
def muse_toml() -> Path:
    """A muse.toml in the working directory (a fresh temp dir) with fake profiles."""
    path = Path.cwd() / "muse.toml"
    path.write_text(PROFILES, encoding="utf-8")
    return path


class Unloadable(FakeGenerator):
    """A model that never loads: a command that builds one before checking its input fails."""

    provider = "unloadable"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded before the input was checked")


class CompletionOnly(FakeGenerator):
    """A text-completion model, like GPT-2: it refuses chat messages."""

    provider = "completion"

    def _check_request(self, request: Request) -> None:
        super()._check_request(request)
        if not isinstance(request.prompt, str):
            raise UnsupportedParameterError(self.provider, "chat messages")


@pytest.fixture
def unloadable(monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``-m`` value whose model cannot be loaded (and the provider 'completion')."""
    monkeypatch.setitem(registry._registered, "unloadable", Unloadable)
    monkeypatch.setitem(registry._registered, "completion", CompletionOnly)
    return "unloadable:model"


@pytest.fixture
def invoke() -> Invoke:
    """Run ``muse ARGS...`` in-process; stdout and stderr stay apart."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return run


def muse_command() -> list[str]:
    """The installed ``muse`` script, else ``python -m muse_sdk``."""
    script = Path(sys.executable).parent / "muse"
    return [str(script)] if script.exists() else [sys.executable, "-m", "muse_sdk"]


def run_muse(
    args: Sequence[str], *, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``muse`` as a real subprocess in the current directory."""
    full_env = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}
    return subprocess.run(
        [*muse_command(), *args],
        input=input,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        env=full_env,
    )
