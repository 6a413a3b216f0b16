"""What a sandboxed run returns: ``RunResult`` for a command, ``TestReport`` for Python tests."""

from __future__ import annotations

from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Outcome", "RunResult", "TestFailure", "TestReport"]

#: How a run ended, worst first in the order the sandbox checks them:
#:
#: - ``timeout``: the wall-clock or CPU limit was reached (the whole process tree was killed);
#: - ``memory``: the memory limit was reached (``MemoryError``, or a runtime's out-of-memory exit);
#: - ``killed``: a signal ended the process (a crash such as SIGSEGV, or SIGKILL from outside);
#: - ``crashed``: the code ended the process (``sys.exit`` at import, ``os._exit``) before the
#:   tests reported;
#: - ``error``: the tests could not run: the code or the tests do not import (a syntax error, an
#:   exception at import), no test was found, or the command could not start;
#: - ``failed``: a test failed (or the command exited non-zero);
#: - ``passed``: every test passed (or the command exited 0).
Outcome: TypeAlias = Literal["passed", "failed", "timeout", "crashed", "memory", "killed", "error"]

SUMMARY_FAILURES = 5
SUMMARY_TAIL_LINES = 12


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TestFailure(_Frozen):
    """One failed test: its name and the exception with the failing lines (trimmed)."""

    __test__ = False  # not a pytest test class

    name: str
    message: str


class RunResult(_Frozen):
    """How a sandboxed command ended, with its output trimmed to ``Limits.output_bytes``.

    ``message`` explains ``outcome`` in one line; ``exit_code`` is ``None`` when a signal ended
    the process. ``network_isolated`` tells whether the code ran without network access, and
    ``unenforced`` names the :class:`Limits` fields this platform could not enforce.
    """

    outcome: Outcome
    message: str = ""
    exit_code: int | None = None
    stdout: str = Field(default="", repr=False)
    stderr: str = Field(default="", repr=False)
    duration_s: float = 0.0
    network_isolated: bool = False
    unenforced: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the run passed."""
        return self.outcome == "passed"

    def summary(self) -> str:
        """A short text for a repair prompt: the outcome, then the end of the output."""
        lines = [f"{self.outcome}: {self.message}" if self.message else self.outcome]
        return "\n".join(lines + self._output_tail())

    def _output_tail(self) -> list[str]:
        if self.outcome == "passed":
            return []
        parts = []
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            tail = text.rstrip().splitlines()[-SUMMARY_TAIL_LINES:]
            if tail:
                parts.append(f"{name} (last lines):")
                parts.extend(f"  {line}" for line in tail)
        return parts


class TestReport(RunResult):
    """The result of :func:`run_python_tests`: counts, failures and how the run ended."""

    __test__ = False  # not a pytest test class

    tests_run: int = 0
    tests_passed: int = 0
    failures: tuple[TestFailure, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every test ran and passed."""
        return self.outcome == "passed"

    def summary(self) -> str:
        """A short text for a repair prompt: the outcome, the failing tests, the output's end."""
        if self.outcome == "passed":
            return (
                "the test passed" if self.tests_run == 1 else f"all {self.tests_run} tests passed"
            )
        if self.outcome == "failed":
            lines = [f"{self.tests_run - self.tests_passed} of {self.tests_run} tests failed:"]
        else:
            lines = [f"{self.outcome}: {self.message}"]
        shown = self.failures[:SUMMARY_FAILURES]
        lines.extend(f"- {failure.name}: {failure.message}" for failure in shown)
        if len(self.failures) > len(shown):
            lines.append(f"- ... and {len(self.failures) - len(shown)} more")
        if self.outcome != "failed" or not self.failures:
            lines.extend(self._output_tail())
        return "\n".join(lines)
