"""The code sandbox: outcomes, limits, isolation and cleanup, each shown by a run that breaks it."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from muse_sdk.sandbox import Limits, SandboxError, run_command, run_python_tests
from muse_sdk.sandbox._procs import strays

LINUX_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not LINUX_ROOT, reason="private uid, network namespace: only as root on Linux"
)

ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = """\
from solution import add

def test_small():
    assert add(2, 2) == 4

def test_negative():
    assert add(-1, -2) == -3
"""
#: The first line the code prints: its uid and session, to look for strays afterwards.
WHO = "import os\nprint(os.getuid(), os.getsid(0), flush=True)\n"


def _no_strays(stdout: str) -> None:
    uid, sid = (int(part) for part in stdout.split()[:2])
    assert strays(uid if uid != os.getuid() else None, sid) == []


def test_passing_tests(tmp_path: Path) -> None:
    report = run_python_tests(ADD, ADD_TESTS)
    assert report.passed and report.outcome == "passed"
    assert (report.tests_run, report.tests_passed, report.failures) == (2, 2, ())
    assert report.summary() == "all 2 tests passed"
    assert report.duration_s < 5
    (tmp_path / "test_add.py").write_text(ADD_TESTS, encoding="utf-8")
    assert run_python_tests(ADD, tmp_path / "test_add.py").tests_passed == 2


def test_wrong_answer_names_the_test_and_the_failing_lines() -> None:
    code = "def add(a, b):\n    return a - b\n\ndef div(a, b):\n    return a / b\n"
    tests = ADD_TESTS + "\ndef test_div():\n    from solution import div\n    assert div(1, 0)\n"
    report = run_python_tests(code, tests)
    assert report.outcome == "failed" and not report.passed
    assert (report.tests_run, report.tests_passed) == (3, 0)
    small, _, div = report.failures
    assert small.name == "test_small"
    assert small.message.startswith("AssertionError") and "`assert add(2, 2) == 4`" in small.message
    assert "ZeroDivisionError: division by zero" in div.message
    where = "solution.py:5 `return a / b`, called from test_solution.py:11 `assert div(1, 0)`"
    assert where in div.message
    summary = report.summary()
    assert summary.startswith("3 of 3 tests failed:") and "- test_small: AssertionError" in summary


def test_syntax_error_in_the_code() -> None:
    report = run_python_tests("def add(a, b):\n    return a +\n", ADD_TESTS)
    assert report.outcome == "error" and report.tests_run == 0
    assert "solution.py does not import: SyntaxError" in report.message
    assert "line 2" in report.message and "error: " in report.summary()
    broken_tests = run_python_tests(ADD, "def test_x(:\n    pass\n")
    assert broken_tests.outcome == "error"
    assert broken_tests.message.startswith("test_solution.py does not import: SyntaxError")


def test_infinite_loop_hits_the_wall_clock() -> None:
    tests = "import time\n\ndef test_ok():\n    pass\n\ndef test_hang():\n    time.sleep(100)\n"
    report = run_python_tests(ADD, tests, limits=Limits(wall_s=1.5))
    assert report.outcome == "timeout" and report.tests_run == 1
    assert report.message == "the wall-clock limit of 1.5 s was reached in test_hang"
    assert 1.4 < report.duration_s < 3


def test_cpu_burn_hits_the_cpu_limit() -> None:
    tests = "def test_burn():\n    while True:\n        pass\n"
    report = run_python_tests(ADD, tests, limits=Limits(cpu_s=1, wall_s=20))
    assert report.outcome == "timeout"
    assert report.message == "the CPU time limit of 1 s was reached in test_burn"
    assert report.duration_s < 5


def test_ten_gigabytes_is_out_of_memory() -> None:
    tests = "def test_ok():\n    pass\n\ndef test_alloc():\n    x = bytearray(10 * 1024**3)\n"
    report = run_python_tests(ADD, tests, limits=Limits(memory_mb=256))
    assert report.outcome == "memory" and report.tests_passed == 1
    assert report.message == "out of memory in test_alloc (the limit is 256 MB per process)"
    assert report.failures[0].message.startswith("MemoryError")


@needs_root
def test_fork_bomb_is_contained_and_cleaned_up() -> None:
    """Children that leave the session still count, and none survives the run."""
    bomb = WHO + (
        "import time\n\ndef test_bomb():\n"
        "    for _ in range(200):\n"
        "        if os.fork() == 0:\n"
        "            os.setsid()\n"
        "            time.sleep(60)\n"
        "            os._exit(0)  # never a second generation, should the cleanup fail\n"
    )
    report = run_python_tests("", bomb, limits=Limits(processes=16))
    assert report.outcome == "failed", report.summary()
    message = report.failures[0].message
    assert message.startswith("BlockingIOError") and "allows 16 processes" in message
    _no_strays(report.stdout)


@needs_root
def test_exponential_fork_bomb_is_killed_at_the_wall_clock() -> None:
    bomb = WHO + (
        "import time\n\ndef test_bomb():\n"
        "    for _ in range(8):  # at most 2**8 processes, should the limit fail\n"
        "        try:\n"
        "            if os.fork() == 0:\n"
        "                os.setsid()\n"
        "        except OSError:\n"
        "            pass\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
    )
    report = run_python_tests("", bomb, limits=Limits(processes=8, wall_s=1.5))
    assert report.outcome == "timeout"
    _no_strays(report.stdout)


def test_sys_exit_at_import_crashes() -> None:
    report = run_python_tests("import sys\nsys.exit(3)\n", ADD_TESTS)
    assert report.outcome == "crashed"
    assert report.message == "solution.py called sys.exit(3) on import"
    hard = run_python_tests("import os\nos._exit(3)\n", ADD_TESTS)
    assert (hard.outcome, hard.exit_code) == ("crashed", 3)
    assert "exited with code 3" in hard.message


def test_a_fatal_signal_is_killed() -> None:
    tests = "import os, signal\n\ndef test_segv():\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
    report = run_python_tests("", tests)
    assert (report.outcome, report.exit_code) == ("killed", None)
    assert report.message == "the process was killed by SIGSEGV in test_segv"


def test_output_flood_is_trimmed_and_drained() -> None:
    tests = (
        "import sys\n\ndef test_flood():\n    print('FIRST')\n"
        "    for _ in range(100):\n        sys.stdout.write('x' * (1 << 20))\n    print('LAST')\n"
    )
    limits = Limits(output_bytes=4096)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = run_python_tests("", tests, limits=limits)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown_kib < 30 * 1024  # drained, not kept: 100 MB went through
    assert report.outcome == "passed", report.summary()
    assert report.stdout.startswith("FIRST") and report.stdout.rstrip().endswith("LAST")
    assert "bytes trimmed ...]" in report.stdout and len(report.stdout) < 4200
    assert report.duration_s < 5


def test_the_callers_secrets_are_out_of_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in the child's environment, nor in any /proc/<pid>/environ it can read."""
    secret = "sk-sandbox-test-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    # A process of the caller's user started with the key, as a shell running muse would be.
    holder = subprocess.Popen(["sleep", "30"], env={**os.environ})
    tests = (
        "import os\n\ndef test_env():\n    print(sorted(os.environ))\n"
        "    os.environ['OPENAI_API_KEY']\n\n"
        "def test_proc():\n    found = []\n    for pid in os.listdir('/proc'):\n"
        "        try:\n            with open(f'/proc/{pid}/environ', 'rb') as f:\n"
        "                found.append(f.read())\n        except OSError:\n            pass\n"
        f"    assert not any(b'{secret}' in data for data in found)\n"
    )
    try:
        report = run_python_tests("", tests)
    finally:
        holder.kill()
        holder.wait()
    assert report.failures[0].name == "test_env"
    assert report.failures[0].message.startswith("KeyError: 'OPENAI_API_KEY'")
    assert secret not in report.stdout and "['HOME', 'LANG', 'PATH', 'TMPDIR']" in report.stdout
    if LINUX_ROOT:  # a child of the caller's own uid could read the holder's environ
        assert report.tests_passed == 1, report.summary()


@pytest.fixture
def server() -> Iterator[tuple[int, list[socket.socket]]]:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    listener.close()
    for conn in accepted:
        conn.close()


@needs_root
def test_network_is_blocked(server: tuple[int, list[socket.socket]]) -> None:
    port, accepted = server
    tests = (
        "import socket\n\ndef test_connect():\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
    )
    blocked = run_python_tests("", tests)
    assert blocked.network_isolated and blocked.outcome == "failed"
    message = blocked.failures[0].message
    assert "Network is unreachable" in message and message.endswith("(the sandbox has no network)")
    assert accepted == []
    allowed = run_python_tests("", tests, limits=Limits(network=True))
    assert allowed.outcome == "passed" and not allowed.network_isolated
    assert allowed.unenforced == ()


def test_the_directory_is_private_and_removed() -> None:
    tests = (
        "import os\n\ndef test_where():\n    print(os.getcwd())\n"
        "    assert os.environ['HOME'] == os.environ['TMPDIR'] == os.getcwd()\n"
        "    open('scratch.txt', 'w').write('mine')\n"
    )
    report = run_python_tests("", tests)
    assert report.outcome == "passed", report.summary()
    where = Path(report.stdout.strip())
    assert where.name.startswith("muse-sandbox-") and not where.exists()


def test_parallel_runs_do_not_interfere() -> None:
    def one(k: int) -> tuple[str, str]:
        code = f"K = {k}\nprint('run', K)\n"
        tests = f"from solution import K\n\ndef test_k():\n    assert K == {k if k != 2 else 0}\n"
        report = run_python_tests(code, tests)
        return report.outcome, report.stdout.strip()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    assert results == [
        ("passed", "run 0"),
        ("passed", "run 1"),
        ("failed", "run 2"),
        ("passed", "run 3"),
    ]


def test_test_classes_async_tests_and_fixtures() -> None:
    tests = (
        "from solution import add\n\nclass TestAdd:\n    def test_one(self):\n"
        "        assert add(1, 0) == 1\n\nasync def test_async():\n    assert add(1, 1) == 2\n\n"
        "def test_fixture(tmp_path):\n    pass\n"
    )
    report = run_python_tests(ADD, tests)
    assert (report.tests_run, report.tests_passed) == (3, 2)
    assert report.failures[0].name == "test_fixture"
    assert "needs tmp_path: pytest fixtures are not supported" in report.failures[0].message
    empty = run_python_tests(ADD, "from solution import add\n")
    assert empty.outcome == "error" and "no test found" in empty.message


def test_parametrize_when_pytest_is_installed() -> None:
    tests = (
        "import pytest\nfrom solution import add\n\n"
        "@pytest.mark.parametrize('a, b, total', [(1, 2, 3), (2, 2, 5)])\n"
        "def test_add(a, b, total):\n    assert add(a, b) == total\n"
    )
    report = run_python_tests(ADD, tests)
    assert [f.name for f in report.failures] == ["test_add[1]"] and report.tests_run == 2


def test_run_command_outcomes() -> None:
    files = {"lib/run.sh": "echo out; echo err >&2; exit 3\n"}
    failed = run_command(["sh", "lib/run.sh"], files)
    assert (failed.outcome, failed.exit_code, failed.message) == ("failed", 3, "exit code 3")
    assert failed.stdout == "out\n" and failed.stderr == "err\n"
    assert "stderr (last lines):\n  err" in failed.summary()
    missing = run_command(["no-such-program-muse"], {})
    assert missing.outcome == "error" and "cannot run 'no-such-program-muse'" in missing.message
    slow = run_command(["sleep", "30"], {}, limits=Limits(wall_s=1))
    assert slow.outcome == "timeout" and slow.duration_s < 3


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_test_runner() -> None:
    files = {
        "add.js": "exports.add = (a, b) => a + b;\n",
        "add.test.js": (
            "const test = require('node:test');\nconst assert = require('node:assert');\n"
            "const { add } = require('./add.js');\n"
            "test('adds', () => assert.strictEqual(add(2, 2), 4));\n"
        ),
    }
    passed = run_command(["node", "--test"], files)
    assert passed.outcome == "passed", passed.summary()
    files["add.js"] = "exports.add = (a, b) => a - b;\n"
    assert run_command(["node", "--test"], files).outcome == "failed"


def test_bad_arguments() -> None:
    with pytest.raises(SandboxError, match="relative path"):
        run_command(["true"], {"../escape.txt": ""})
    with pytest.raises(SandboxError, match="module_name"):
        run_python_tests(ADD, ADD_TESTS, module_name="my-module")
    with pytest.raises(ValidationError):
        Limits(wall_s=0)
    with pytest.raises(ValidationError):
        Limits(wal_s=1)  # type: ignore[call-arg]


def test_import_muse_sdk_does_not_import_the_sandbox() -> None:
    code = "import sys, muse_sdk; print('muse_sdk.sandbox' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
