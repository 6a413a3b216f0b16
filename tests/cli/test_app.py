"""The application as a whole: version, help, exit codes, and real subprocess runs."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

from muse_sdk import __version__
from muse_sdk.cli import main
from muse_sdk.cli._errors import ExitCode
from tests.cli.conftest import Invoke, muse_command, run_muse


def test_version(invoke: Invoke) -> None:
    for option in ("--version", "-V"):
        result = invoke(option)
        assert result.exit_code == 0 and result.stdout == f"muse_sdk {__version__}\n"


def test_help_shows_flags_as_flags(invoke: Invoke) -> None:
    commands = [[], ["generate"], ["code"], ["batch"], ["models"], ["config"], ["config", "check"]]
    for command in commands:
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "--help" in result.stdout, command
        assert "<bool>" not in result.stdout, command  # as if --debug took a value
    top = invoke("--help").stdout
    assert "--debug" in top and "-V" in top
    assert "--truncate" in invoke("generate", "--help").stdout


def test_help_lists_every_command_and_the_exit_codes(invoke: Invoke) -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("generate", "code", "batch", "models", "config"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout
    bare = invoke()  # no command: the help, as a usage error, and no empty "error:" line
    assert bare.exit_code == 2 and "Usage" in bare.stdout and "error" not in bare.stderr


def test_unknown_command_is_one_error_line(invoke: Invoke) -> None:
    result = invoke("generat")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: No such command 'generat'")


def test_main_returns_the_exit_code(capsys: object) -> None:
    assert main(["--version"]) == ExitCode.OK
    assert main(["generate", "x", "-m", "nope:x"]) == ExitCode.USAGE
    assert main(["generate", "hello", "-m", "fake:echo"]) == ExitCode.OK


def test_version_imports_nothing_heavy() -> None:
    code = (
        "import sys; from muse_sdk.cli import main; rc = main(['--version']); "
        "heavy = [m for m in ('torch', 'transformers', 'openai', 'pydantic') if m in sys.modules]; "
        "print(rc, heavy)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip().endswith("0 []"), run.stdout + run.stderr


def test_subprocess_generate_and_stdin() -> None:
    run = run_muse(["generate", "Once upon a time", "-m", "fake:echo", "-v"])
    assert run.returncode == 0, run.stderr
    assert run.stdout == "Once upon a time\n" and "latency" in run.stderr
    piped = run_muse(["generate", "-", "-m", "fake:echo"], input="写一首关于秋天的诗\n")
    assert piped.returncode == 0 and piped.stdout == "写一首关于秋天的诗\n"


def test_subprocess_error_has_no_traceback() -> None:
    run = run_muse(["generate", "x", "-m", "fake:nope"])
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr


def test_python_dash_m_runs_the_cli() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "muse_sdk", "--version"], capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.startswith("muse_sdk ")


def _run_in_pty(args: list[str]) -> tuple[int, str, str]:
    """Run muse with stderr on a pseudo-terminal; return (exit code, stdout, terminal output)."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "PYTHONIOENCODING": "utf-8"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [*muse_command(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = proc.communicate(timeout=120)[0]
    return proc.wait(), stdout.decode(), b"".join(chunks).decode("utf-8", "replace")


def test_batch_progress_bar_renders_in_a_terminal(tmp_path: Path) -> None:
    source = tmp_path / "prompts.txt"
    source.write_text("".join(f"prompt number {i}\n" for i in range(12)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["batch", str(source), "-o", str(out), "-m", "fake:echo", "--concurrency", "2"]
    code, stdout, terminal = _run_in_pty(args)
    assert code == 0, terminal
    assert stdout == ""
    assert "prompts" in terminal and "12/12" in terminal and "━" in terminal
    assert "\x1b[" in terminal  # drawn with terminal escape codes
    assert len(out.read_text(encoding="utf-8").splitlines()) == 12
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[-1])["index"] == 11


SLOW = """
[profiles.slow]
provider = "fake"
model = "echo"
latency_s = 0.1
"""


def test_interrupted_batch_keeps_its_results_and_resumes(tmp_path: Path) -> None:
    Path("muse.toml").write_text(SLOW, encoding="utf-8")
    source = tmp_path / "prompts.txt"
    source.write_text("".join(f"prompt {i}\n" for i in range(60)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["batch", str(source), "-o", str(out), "-p", "slow", "--concurrency", "1"]
    proc = subprocess.Popen([*muse_command(), *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while (not out.exists() or not out.read_text(encoding="utf-8")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    assert "rerun the same command to resume" in stderr
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert 0 < len(kept) < 60
    assert [line["index"] for line in kept] == list(range(len(kept)))
    resumed = run_muse([*args[:4], "-m", "fake:echo"])
    assert resumed.returncode == 0, resumed.stderr
    assert f"60 succeeded ({len(kept)} from an earlier run)" in resumed.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 60
