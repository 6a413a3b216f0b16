"""``CodeResult``: code extracted from a reply, with the checks made on it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from muse_sdk.core.types import Usage
from muse_sdk.sandbox._report import TestReport
from muse_sdk.templates._syntax import SyntaxCheck, check_code

__all__ = ["CodeResult", "check_syntax"]


class CodeResult(BaseModel):
    """Code extracted from a model's reply.

    ``code`` is the selected code, ``blocks`` every fenced block as ``(language, code)`` (language
    ``None`` when untagged), and ``truncated`` whether the reply ended inside an open fence.
    ``syntax`` is the :class:`SyntaxCheck` of ``code`` (status, checker, and the problem with its
    line and column), and ``syntax_error`` its problem as text, ``"message (line N)"``, or
    ``None`` when the code parses or was not checked; :func:`extract_code` sets both.
    ``raw`` is what was parsed: the reply text or the :class:`GenerationResult`.

    With tests (``CodeGenerationTemplate.run(..., tests=...)``): ``tests_passed``, the last
    ``test_report`` and ``runs`` (test runs made); with ``candidates=n``, the chosen result holds
    every candidate's final result in ``candidates``. ``usage`` (also ``total_usage``) adds up
    every reply behind the result, its candidates and repairs, and ``cost`` their price (``None``
    when a model's price is unknown).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    code: str
    language: str | None = None
    blocks: tuple[tuple[str | None, str], ...] = ()
    truncated: bool = False
    syntax_error: str | None = None
    syntax: SyntaxCheck | None = None
    #: How many repair prompts ``CodeGenerationTemplate.run`` sent before this result.
    repairs: int = Field(default=0, ge=0)
    #: Whether the tests passed (``None``: no tests were given).
    tests_passed: bool | None = None
    test_report: TestReport | None = Field(default=None, repr=False)
    runs: int = Field(default=0, ge=0)
    candidates: tuple[CodeResult, ...] = Field(default=(), repr=False)
    usage: Usage = Usage()
    cost: float | None = None
    raw: Any = Field(default=None, repr=False)

    @property
    def total_usage(self) -> Usage:
        """Every billed reply behind the result (the same as ``usage``)."""
        return self.usage

    @property
    def syntax_checked(self) -> bool:
        """Whether a checker looked at the code (False for languages without one)."""
        return self.syntax is not None and self.syntax.checked

    @property
    def ok(self) -> bool:
        """Complete, no syntax error where checked, and the tests passed (if there were any)."""
        return not self.truncated and self.syntax_error is None and self.tests_passed is not False

    def __str__(self) -> str:
        return self.code


def check_syntax(code: str, language: str | None) -> str | None:
    """The syntax problem of ``code`` as ``"message (line N)"``, else ``None`` (see check_code)."""
    problem = check_code(code, language).problem
    return None if problem is None else str(problem)


def plus_cost(a: float | None, b: float | None) -> float | None:
    """The sum of two costs; unknown (``None``) if either is."""
    return None if a is None or b is None else a + b
