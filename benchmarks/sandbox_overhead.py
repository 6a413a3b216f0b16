"""What the code sandbox costs per run (issue 18): target <= 150 ms over a bare interpreter.

Interleaved, after a warm-up, ``--runs`` times each:

1. baseline: a bare ``python -I -c pass`` subprocess (``subprocess.run``);
2. ``run_python_tests`` on a one-line function with one passing test;
3. ``run_command(["true"], {})``: the same sandbox without the test driver.

Prints the medians and each one's difference from the baseline (the sandbox's own cost: the
temporary directory, the confinement, the driver, the cleanup).

Run::

    python -m benchmarks.sandbox_overhead --runs 20
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
from collections.abc import Callable

from benchmarks._harness import interleave, per_call_ms
from muse_sdk.sandbox import run_command, run_python_tests

CODE = "def add(a, b):\n    return a + b\n"
TESTS = "from solution import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n"
TARGET_MS = 150.0


def bare() -> None:
    subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)


def python_tests() -> None:
    report = run_python_tests(CODE, TESTS)
    if not report.passed:
        raise SystemExit(f"the trivial test did not pass:\n{report.summary()}")


def command() -> None:
    result = run_command(["true"], {})
    if not result.ok:
        raise SystemExit(f"`true` did not pass:\n{result.summary()}")


def medians(fns: dict[str, Callable[[], None]], runs: int) -> dict[str, float]:
    """Median milliseconds of each function over ``runs`` interleaved runs (after a warm-up)."""
    for fn in fns.values():
        fn()
    measures = {name: functools.partial(per_call_ms, fn, 1) for name, fn in fns.items()}
    return {name: statistics.median(ms) for name, ms in interleave(measures, runs).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="the sandbox's cost per run")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    ms = medians(
        {"bare": bare, "run_python_tests": python_tests, "run_command": command}, args.runs
    )
    base = ms["bare"]
    lines = [
        "| measurement | median | baseline | overhead |",
        "|---|---|---|---|",
        f"| python -I -c pass (bare subprocess) | {base:.1f} ms | | |",
    ]
    for name, label in (
        ("run_python_tests", "run_python_tests, one passing test"),
        ("run_command", "run_command(['true'])"),
    ):
        extra = ms[name] - base
        verdict = "met" if extra <= TARGET_MS else "NOT met"
        lines.append(
            f"| {label} | {ms[name]:.1f} ms | {base:.1f} ms | "
            f"**{extra:+.1f} ms** (target <= {TARGET_MS:.0f} ms: {verdict}) |"
        )
    print("\n".join([f"runs: {args.runs} (medians)", *lines]))


if __name__ == "__main__":
    main()
