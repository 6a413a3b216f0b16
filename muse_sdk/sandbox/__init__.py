"""A sandbox that runs tests against generated code, under kernel-enforced limits.

- :func:`run_python_tests`: ``code`` and pytest-style tests in a fresh directory, run by a
  confined child Python with a small stdlib driver; returns a :class:`TestReport` whose
  ``summary()`` is ready for a repair prompt.
- :func:`run_command`: any command (``node --test``, ``go test``) over a set of files, in the
  same sandbox; returns a :class:`RunResult`.
- :class:`Limits`: wall clock, CPU, memory, processes, file size, output kept, network.

Each run gets a private temporary directory (removed afterwards), an environment holding only
``PATH``, ``LANG``, ``HOME`` and ``TMPDIR``, and its own session, killed as a whole when the
first process ends or a limit is reached. As root on Linux, the code also runs as a private
unprivileged uid (so the process limit applies and the caller's files and ``/proc`` entries
are out of reach) in an empty network namespace. It contains mistakes and runaway code; it is
not a boundary against hostile code (no filesystem or syscall isolation).
"""

from __future__ import annotations

from muse_sdk.sandbox._limits import Limits
from muse_sdk.sandbox._procs import SandboxError
from muse_sdk.sandbox._report import Outcome, RunResult, TestFailure, TestReport
from muse_sdk.sandbox._runner import run_command, run_python_tests

__all__ = [
    "Limits",
    "Outcome",
    "RunResult",
    "SandboxError",
    "TestFailure",
    "TestReport",
    "run_command",
    "run_python_tests",
]
