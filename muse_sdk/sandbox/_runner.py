"""``run_python_tests`` and ``run_command``: build the child's config, run it, judge the result."""

from __future__ import annotations

import keyword
import math
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from muse_sdk.errors import BackendUnavailableError
from muse_sdk.sandbox._limits import MIB, Limits
from muse_sdk.sandbox._procs import SandboxError, pick_uid, python_paths, unmask_plan
from muse_sdk.sandbox._report import Outcome, RunResult, TestFailure, TestReport
from muse_sdk.sandbox._spawn import Raw, env_for, prepare_dir, remove_dir, spawn

__all__ = ["run_command", "run_python_tests"]

#: Words in the end of stderr that say a runtime ran out of memory.
MEMORY_WORDS = ("memoryerror", "out of memory", "cannot allocate memory", "bad_alloc")


def _check_platform() -> None:
    if os.name != "posix":
        raise BackendUnavailableError(
            "the sandbox needs a POSIX system (Linux or macOS) for its process limits; "
            "on Windows, run the tests in WSL or a container"
        )


def _config(mode: str, limits: Limits, uid: int | None, needed: list[str]) -> dict[str, Any]:
    memory = "RLIMIT_AS" if mode == "tests" else "RLIMIT_DATA"
    cpu = math.ceil(limits.cpu_s)
    return {
        "mode": mode,
        "network": limits.network,
        "uid": uid,
        "processes": limits.processes,
        "unmask": unmask_plan(needed) if uid is not None else [],
        "rlimits": [
            (memory, (limits.memory_mb * MIB,) * 2, "memory_mb"),
            ("RLIMIT_CPU", (cpu, cpu + 1), "cpu_s"),
            ("RLIMIT_FSIZE", (limits.file_mb * MIB,) * 2, "file_mb"),
            ("RLIMIT_CORE", (0, 0), ""),
        ],
    }


def _run(
    mode: str, files: Mapping[str, str], limits: Limits, extra: dict[str, Any], needed: list[str]
) -> tuple[Raw, dict[str, Any]]:
    _check_platform()
    uid = pick_uid() if os.geteuid() == 0 else None
    tmp = prepare_dir(files, uid)
    try:
        config = {**_config(mode, limits, uid, [*needed, tmp]), **extra}
        raw = spawn(config, tmp, limits, uid)
    finally:
        remove_dir(tmp)
    setup_error = raw.first("setup_error")
    if setup_error:
        raise SandboxError(setup_error)
    applied = raw.first("applied")
    if applied is None and not raw.timed_out:
        raise SandboxError(
            f"the sandbox's child failed before running any code (exit {raw.exit_code}, "
            f"signal {raw.signal}): {raw.stderr.strip()[-2000:]}"
        )
    fields = {
        "exit_code": raw.exit_code,
        "stdout": raw.stdout,
        "stderr": raw.stderr,
        "duration_s": round(raw.duration_s, 4),
        "network_isolated": bool(applied and applied["network_isolated"]),
        "unenforced": tuple(name for name in (applied or {}).get("unenforced", ()) if name),
    }
    return raw, fields


def _limit_hit(raw: Raw, limits: Limits, during: str) -> tuple[Outcome, str] | None:
    if raw.timed_out:
        return "timeout", f"the wall-clock limit of {limits.wall_s:g} s was reached{during}"
    cpu_kill = raw.signal == signal.SIGKILL and raw.cpu_s >= math.ceil(limits.cpu_s) - 0.05
    if raw.signal == signal.SIGXCPU or cpu_kill:
        return "timeout", f"the CPU time limit of {limits.cpu_s:g} s was reached{during}"
    return None


def _out_of_memory(raw: Raw) -> bool:
    return any(word in raw.stderr[-4096:].lower() for word in MEMORY_WORDS)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _hint(kind: str, message: str, limits: Limits) -> str:
    if kind == "MemoryError":
        return f" (the sandbox allows {limits.memory_mb} MB per process)"
    if "Resource temporarily unavailable" in message or "can't start new thread" in message:
        return f" (the sandbox allows {limits.processes} processes and threads)"
    if "File too large" in message:
        return f" (the sandbox allows files up to {limits.file_mb} MB)"
    if "Network is unreachable" in message and not limits.network:
        return " (the sandbox has no network)"
    return ""


def run_command(
    command: Sequence[str], files: Mapping[str, str], *, limits: Limits | None = None
) -> RunResult:
    """Run ``command`` in a fresh directory holding ``files``, confined by ``limits``.

    ``files`` maps relative paths to their text. ``command[0]`` is looked up on ``PATH``. The
    outcome is ``passed`` for exit code 0, ``failed`` for another, ``error`` when the command
    cannot start, and ``timeout``, ``memory`` or ``killed`` when a limit or a signal ended it.
    """
    limits = limits or Limits()
    argv = [str(part) for part in command]
    if not argv:
        raise SandboxError("the command is empty: give the program and its arguments")
    found = shutil.which(argv[0], path=env_for("")["PATH"])
    needed = [str(Path(found).resolve().parent.parent)] if found else []
    raw, fields = _run("exec", files, limits, {"argv": argv}, [*python_paths(), *needed])
    outcome: Outcome
    hit = _limit_hit(raw, limits, "")
    if hit:
        outcome, message = hit
    elif raw.first("exec_error"):
        outcome, message = "error", raw.first("exec_error")
    elif raw.signal is not None:
        outcome = "memory" if _out_of_memory(raw) else "killed"
        message = f"the command was killed by {_signal_name(raw.signal)}"
    elif raw.exit_code == 0:
        outcome, message = "passed", "exit code 0"
    else:
        outcome = "memory" if _out_of_memory(raw) else "failed"
        message = f"exit code {raw.exit_code}"
    return RunResult(outcome=outcome, message=message, **fields)


def _read_tests(tests: str | Path) -> str:
    if isinstance(tests, Path):
        try:
            return tests.read_text(encoding="utf-8")
        except OSError as exc:
            raise SandboxError(f"cannot read the tests from {tests}: {exc}") from exc
    if isinstance(tests, str):
        return tests
    raise SandboxError(
        f"tests must be the test source (str) or a test file (Path), not {type(tests).__name__}"
    )


def run_python_tests(
    code: str, tests: str | Path, *, limits: Limits | None = None, module_name: str = "solution"
) -> TestReport:
    """Run pytest-style ``tests`` against ``code`` in a confined child Python.

    ``code`` becomes ``<module_name>.py`` and the tests (source text, or a ``Path`` to a test
    file) ``test_<module_name>.py`` in a fresh temporary directory, removed afterwards. The
    child (``python -I``, with no environment but ``PATH``) imports both, then runs every
    ``test*`` function and ``Test*`` class method with a small stdlib driver: pytest is not
    needed, fixtures are not supported, ``pytest.mark.parametrize`` is when pytest is installed.
    Failures carry the exception and the failing lines. Nothing the code does is raised here:
    it is all in the report; ``SandboxError`` means the sandbox itself cannot run.
    """
    limits = limits or Limits()
    if not module_name.isidentifier() or keyword.iskeyword(module_name):
        raise SandboxError(f"module_name {module_name!r} must be a valid Python module name")
    files = {f"{module_name}.py": code, f"test_{module_name}.py": _read_tests(tests)}
    extra = {"module": module_name}
    raw, fields = _run("tests", files, limits, extra, list(python_paths()))
    return _judge_tests(raw, fields, limits, module_name)


def _judge_tests(raw: Raw, fields: dict[str, Any], limits: Limits, module_name: str) -> TestReport:
    done = [event for event in raw.events if "done" in event]
    finished = {event["done"] for event in done}
    started = [event["start"] for event in raw.events if "start" in event]
    running = next((name for name in started if name not in finished), "")
    during = f" in {running}" if running else ""
    failures = tuple(
        TestFailure(name=e["done"], message=e["message"] + _hint(e["kind"], e["message"], limits))
        for e in done
        if not e["ok"]
    )
    counts = {"tests_run": len(done), "tests_passed": len(done) - len(failures)}
    imported = raw.first("import_error")
    kind = next((e["kind"] for e in raw.events if "import_error" in e), "")
    outcome: Outcome
    hit = _limit_hit(raw, limits, during)
    if hit:
        outcome, message = hit
    elif kind == "MemoryError" or any(e.get("kind") == "MemoryError" for e in done):
        hungry = [e["done"] for e in done if e.get("kind") == "MemoryError"]
        where = hungry[0] if hungry else f"importing {imported}"
        outcome = "memory"
        message = f"out of memory in {where} (the limit is {limits.memory_mb} MB per process)"
    elif raw.signal is not None:
        outcome = "memory" if _out_of_memory(raw) else "killed"
        message = f"the process was killed by {_signal_name(raw.signal)}{during}"
    elif imported:
        error = next(e for e in raw.events if "import_error" in e)
        if kind == "SystemExit":
            outcome, message = "crashed", f"{imported} called sys.exit({error['code']}) on import"
        else:
            outcome, message = "error", f"{imported} does not import: {error['message']}"
    elif raw.first("end") is None:
        outcome = "crashed"
        message = f"the process exited with code {raw.exit_code}{during} before the tests ended"
    elif raw.first("collected") == 0:
        outcome = "error"
        message = f"no test found in test_{module_name}.py: name them test_* (or Test*.test_*)"
    elif failures:
        outcome, message = "failed", f"{len(failures)} of {len(done)} tests failed"
    else:
        outcome, message = (
            "passed",
            "the test passed" if len(done) == 1 else f"all {len(done)} tests passed",
        )
    return TestReport(outcome=outcome, message=message, failures=failures, **counts, **fields)
