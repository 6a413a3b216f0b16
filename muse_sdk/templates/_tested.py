"""Checking candidates against the user's tests, and choosing the best of several.

Tests are pytest-style test code (source text, or a ``Path``) run by :mod:`muse_sdk.sandbox`
against the candidate in a confined child process; or, for other languages, a ``test_command``
run in the same sandbox over the code and the tests written as files; or a callable that gets the
code and raises on failure (run in the caller's process: it is the caller's own code).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from muse_sdk.errors import TemplateError
from muse_sdk.sandbox import Limits, TestFailure, TestReport, run_command, run_python_tests
from muse_sdk.templates._result import CodeResult

__all__ = ["TestPlan", "Tests", "best_of", "judge"]

Tests: TypeAlias = str | Path | Callable[[str], object]

#: File names of the code and the tests for a ``test_command``, by language.
_FILES = {
    "python": ("solution.py", "test_solution.py"),
    "javascript": ("solution.js", "solution.test.js"),
    "typescript": ("solution.ts", "solution.test.ts"),
    "go": ("solution.go", "solution_test.go"),
    "rust": ("lib.rs", "tests.rs"),
    "bash": ("solution.sh", "test_solution.sh"),
    "ruby": ("solution.rb", "test_solution.rb"),
    "java": ("Solution.java", "SolutionTest.java"),
    "c": ("solution.c", "test_solution.c"),
    "cpp": ("solution.cpp", "test_solution.cpp"),
    "csharp": ("Solution.cs", "SolutionTests.cs"),
    "php": ("solution.php", "test_solution.php"),
    "lua": ("solution.lua", "test_solution.lua"),
}
#: The most of a test report quoted back to the model in a repair prompt.
MAX_REPORT_CHARS = 2000


@dataclass(frozen=True)
class TestPlan:
    """What to run against each candidate, and under which limits."""

    __test__ = False  # not a pytest test class

    tests: Tests
    language: str
    limits: Limits
    command: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls,
        tests: Tests | None,
        language: str,
        limits: Limits | None,
        command: Sequence[str] | None,
    ) -> TestPlan | None:
        """Validate the template's test arguments (``None`` when there are no tests)."""
        if tests is None:
            if command is not None:
                raise TemplateError("test_command needs tests=... (the test file's source)")
            return None
        if not (isinstance(tests, str | Path) or callable(tests)):
            raise TemplateError(
                "tests must be test source (str), a test file (Path) or a callable that gets "
                f"the code and raises on failure, not {type(tests).__name__}"
            )
        if language != "python" and command is None and not callable(tests):
            raise TemplateError(
                f"tests for {language} code need test_command=[...] (e.g. ['node', '--test']); "
                "without one only Python tests can run"
            )
        return cls(tests, language, limits or Limits(), tuple(command) if command else None)

    def run(self, code: str) -> TestReport:
        """Run the tests against ``code``."""
        if callable(self.tests):
            return _run_callable(self.tests, code)
        if self.command is None:
            return run_python_tests(code, self.tests, limits=self.limits)
        return self._run_command(code, self.tests)

    def _run_command(self, code: str, tests: str | Path) -> TestReport:
        source = tests.read_text(encoding="utf-8") if isinstance(tests, Path) else tests
        code_file, test_file = _FILES.get(self.language, ("solution.txt", "test_solution.txt"))
        assert self.command is not None
        run = run_command(self.command, {code_file: code, test_file: source}, limits=self.limits)
        counted = 1 if run.outcome in ("passed", "failed") else 0
        return TestReport(
            **run.model_dump(),
            tests_run=counted,
            tests_passed=int(run.outcome == "passed"),
        )


def _run_callable(check: Callable[[str], object], code: str) -> TestReport:
    name = getattr(check, "__name__", type(check).__name__)
    try:
        check(code)
    except Exception as exc:
        lines = traceback.format_exception_only(exc)
        failure = TestFailure(name=name, message="".join(lines).strip()[:MAX_REPORT_CHARS])
        return TestReport(outcome="failed", tests_run=1, failures=(failure,), message=str(exc))
    return TestReport(outcome="passed", tests_run=1, tests_passed=1)


def judge(result: CodeResult, plan: TestPlan | None) -> CodeResult:
    """``result`` with its tests run, unless it is truncated or does not parse (no point)."""
    if plan is None:
        return result
    if result.truncated or result.syntax_error is not None:
        return result.model_copy(update={"tests_passed": False})
    report = plan.run(result.code)
    return result.model_copy(
        update={"tests_passed": report.passed, "test_report": report, "runs": result.runs + 1}
    )


def report_for_prompt(report: TestReport) -> str:
    """The test report as quoted in a repair prompt, trimmed to :data:`MAX_REPORT_CHARS`."""
    text = report.summary()
    if len(text) <= MAX_REPORT_CHARS:
        return text
    half = MAX_REPORT_CHARS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def _score(result: CodeResult) -> tuple[int, int, int]:
    """Higher is better: passing, then tests passed, then code that at least parses."""
    report = result.test_report
    passed = report.tests_passed if report is not None else 0
    return int(result.ok), passed, int(result.syntax_error is None and not result.truncated)


def best_of(results: Sequence[CodeResult]) -> CodeResult:
    """The first passing result, else the one with the most passing tests (first on ties)."""
    best = max(range(len(results)), key=lambda i: (_score(results[i]), -i))
    return results[best]
