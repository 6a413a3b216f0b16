"""``CodeGenerationTemplate``: a structured code request, and checked code back.

The zh prompt reproduces the seed article's (需求 + 代码应该包括以下内容); the en prompt is its
translation. ``run`` renders, generates, extracts (see ``_extract``) and checks; with
``repair_attempts`` it re-asks with the syntax error while the Python code does not parse.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from muse_sdk.core.types import Usage
from muse_sdk.errors import InvalidParameterError, TemplateError, did_you_mean
from muse_sdk.templates._extract import LANGUAGE_ALIASES, extract_code, normalize_language
from muse_sdk.templates._prompt import PromptTemplate
from muse_sdk.templates._result import CodeResult, plus_cost
from muse_sdk.templates._tested import TestPlan, Tests, best_of, judge, report_for_prompt
from muse_sdk.templates._values import escape_braces

if TYPE_CHECKING:
    from muse_sdk.core.generator import Generator
    from muse_sdk.core.types import GenerationResult
    from muse_sdk.sandbox import Limits

__all__ = ["DISPLAY_NAMES", "CodeGenerationTemplate", "check_language"]

Locale = Literal["en", "zh"]
#: ``on_attempt(candidate, result)``: called after each check of a candidate.
OnAttempt = Callable[[int, CodeResult], None]
LOCALES: tuple[str, ...] = ("en", "zh")

#: The languages muse knows (the ``muse code`` choices, with LANGUAGE_ALIASES), and how each
#: is written in prose. The template takes other tags too, written as given.
DISPLAY_NAMES = {
    "python": "Python",
    "javascript": "JavaScript",
    "typescript": "TypeScript",
    "bash": "Bash",
    "java": "Java",
    "go": "Go",
    "rust": "Rust",
    "sql": "SQL",
    "html": "HTML",
    "css": "CSS",
    "cpp": "C++",
    "c": "C",
    "csharp": "C#",
    "kotlin": "Kotlin",
    "swift": "Swift",
    "ruby": "Ruby",
    "php": "PHP",
    "r": "R",
    "lua": "Lua",
    "perl": "Perl",
    "scala": "Scala",
}

#: Locale -> the prompt's wording; ``{lang}`` is the language's display name.
PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "intro": "Write {lang} code for the following requirement:",
        "requirement": "Requirement: ",
        "sections": "The code should include:",
        "constraints": "Constraints:",
        "broken": "The {lang} code below does not parse:",
        "error": "SyntaxError: ",
        "fix": "Fix the error and reply with the complete corrected code.",
        "failing": "The {lang} code below fails its tests:",
        "report": "Test report:",
        "fix_tests": "Fix the code so that the tests pass, and reply with the complete code.",
    },
    "zh": {
        "intro": "请根据以下需求生成一段{lang}代码:",
        "requirement": "需求:",
        "sections": "代码应该包括以下内容:",
        "constraints": "代码还应满足以下约束:",
        "broken": "下面的{lang}代码无法解析:",
        "error": "语法错误:",
        "fix": "请修正错误并给出完整的代码。",
        "failing": "下面的{lang}代码没有通过测试:",
        "report": "测试报告:",
        "fix_tests": "请修改代码使测试通过,并给出完整的代码。",
    },
}

_TAG = re.compile(r"[^\s`~]+")


def _language(language: object) -> str:
    tag = normalize_language(language) if isinstance(language, str) else None
    if tag is None or not _TAG.fullmatch(tag):
        raise TemplateError(
            f"language must be one word such as 'python' or 'bash', got {language!r}"
        )
    return tag


def check_language(language: str) -> str:
    """``language`` normalised (``py`` -> ``python``) when muse knows it, else a TemplateError.

    The ``muse code`` check; :class:`CodeGenerationTemplate` itself takes any one-word tag.
    """
    tag = normalize_language(language)
    if tag in DISPLAY_NAMES:
        return tag
    names = [*DISPLAY_NAMES, *LANGUAGE_ALIASES]
    raise TemplateError(
        f"unknown language {language!r}{did_you_mean(tag or language, names)}; "
        f"muse knows {', '.join(sorted(DISPLAY_NAMES))} "
        f"(and the aliases {', '.join(sorted(LANGUAGE_ALIASES))})"
    )


def _items(items: object, what: str) -> tuple[str, ...]:
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise TemplateError(f"{what} must be a list of strings, e.g. [{'...'!r}], got {items!r}")
    if not all(isinstance(item, str) and item.strip() for item in items):
        raise TemplateError(f"every item of {what} must be a non-empty str, got {list(items)!r}")
    return tuple(item.strip() for item in items)


def _fence(code: str, language: str) -> str:
    """Fence ``code`` with a backtick run longer than any run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{code}\n{ticks}"


def _requirement(requirement: object) -> str:
    if not isinstance(requirement, str) or not requirement.strip():
        raise TemplateError(
            f"requirement must be a non-empty str describing the code, got {requirement!r}"
        )
    return requirement.strip()


def _repairs(repair_attempts: object) -> int:
    if isinstance(repair_attempts, bool) or not isinstance(repair_attempts, int):
        raise InvalidParameterError("repair_attempts", f"must be an int, got {repair_attempts!r}")
    if repair_attempts < 0:
        raise InvalidParameterError("repair_attempts", f"must be >= 0, got {repair_attempts}")
    return repair_attempts


class CodeGenerationTemplate:
    """A code request from a ``requirement``, in English or Chinese; returns a :class:`CodeResult`.

    ``sections`` are what the code should include (numbered), ``constraints`` extra rules
    (bulleted). ``primed=True`` ends the prompt inside an opened fence (useful with completion
    models) and extracts the reply accordingly.
    """

    __slots__ = ("_template", "constraints", "language", "locale", "primed", "sections")

    def __init__(
        self,
        language: str = "python",
        *,
        sections: Sequence[str] = (),
        locale: Locale = "en",
        constraints: Sequence[str] = (),
        primed: bool = False,
    ) -> None:
        if locale not in LOCALES:
            raise TemplateError(
                f"locale must be one of {', '.join(LOCALES)}, got {locale!r}"
                f"{did_you_mean(str(locale), LOCALES)}"
            )
        self.language = _language(language)
        self.sections = _items(sections, "sections")
        self.constraints = _items(constraints, "constraints")
        self.locale: Locale = locale
        self.primed = bool(primed)
        self._template = PromptTemplate(self._body_source() + self._primer())

    @property
    def template(self) -> PromptTemplate:
        """The prompt as a :class:`PromptTemplate` with one variable, ``requirement``."""
        return self._template

    @property
    def variables(self) -> tuple[str, ...]:
        """``("requirement",)``."""
        return self._template.variables

    def _phrase(self, key: str) -> str:
        display = DISPLAY_NAMES.get(self.language, self.language)
        return PHRASES[self.locale][key].format(lang=display)

    def _primer(self) -> str:
        return f"\n\n```{self.language}\n" if self.primed else ""

    def _body_source(self) -> str:
        parts = [self._phrase("intro"), self._phrase("requirement") + "{requirement}"]
        if self.sections:
            numbered = (f"{i}. {escape_braces(s)}" for i, s in enumerate(self.sections, 1))
            parts.append("\n".join([self._phrase("sections"), *numbered]))
        if self.constraints:
            bullets = (f"- {escape_braces(c)}" for c in self.constraints)
            parts.append("\n".join([self._phrase("constraints"), *bullets]))
        return "\n\n".join(parts)

    def render(self, requirement: str) -> str:
        """The prompt for ``requirement``."""
        return self._template.render(requirement=_requirement(requirement))

    def render_repair(self, requirement: str, broken: CodeResult) -> str:
        """The prompt that asks again for ``requirement``, quoting the code and what was wrong.

        What was wrong is the syntax error, else the (trimmed) test report.
        """
        body = PromptTemplate(self._body_source()).render(requirement=_requirement(requirement))
        if broken.syntax_error is None and broken.test_report is not None:
            what = [self._phrase("failing"), _fence(broken.code, self.language)]
            what += [self._phrase("report") + "\n" + report_for_prompt(broken.test_report)]
            fix = self._phrase("fix_tests")
        else:
            what = [self._phrase("broken"), _fence(broken.code, self.language)]
            what += [self._phrase("error") + str(broken.syntax_error)]
            fix = self._phrase("fix")
        return "\n\n".join([body, *what, fix]) + self._primer()

    def parse(self, reply: str | GenerationResult) -> CodeResult:
        """Extract and check the code of a reply to this template's prompt."""
        return extract_code(reply, self.language, primed=self.primed)

    def run(
        self,
        generator: Generator,
        requirement: str,
        *,
        repair_attempts: int = 0,
        tests: Tests | None = None,
        test_command: Sequence[str] | None = None,
        limits: Limits | None = None,
        candidates: int = 1,
        on_attempt: OnAttempt | None = None,
        **params: Any,
    ) -> CodeResult:
        """Render, generate, extract and check: the code that passed, or the best attempt.

        Without ``tests`` a candidate passes when it is complete and parses; with them it must
        also pass the tests, run in a sandbox (see :mod:`muse_sdk.sandbox`). A failing candidate
        is sent back with what failed, up to ``repair_attempts`` times. ``candidates=n`` asks for
        n replies at once (``n``) and works on them in parallel: the first to pass wins, else the
        one with the most passing tests, with every candidate in ``.candidates``.
        ``on_attempt(candidate, result)`` is called after each check (from worker threads
        when ``candidates > 1``), to show progress.
        """
        loop = _Loop.of(self, requirement, repair_attempts, tests, test_command, limits, on_attempt)
        count = _count(candidates)
        first = generator.generate(self.render(requirement), **_with_n(params, count))
        starts = loop.starts(first, count)
        if count == 1:
            return loop.finish(loop.improve(generator, 0, starts[0], params), [])
        with ThreadPoolExecutor(max_workers=count) as pool:
            work = [
                pool.submit(loop.improve, generator, i, r, params) for i, r in enumerate(starts)
            ]
            done = [future.result() for future in work]
        return loop.finish(best_of(done), done)

    async def arun(
        self,
        generator: Generator,
        requirement: str,
        *,
        repair_attempts: int = 0,
        tests: Tests | None = None,
        test_command: Sequence[str] | None = None,
        limits: Limits | None = None,
        candidates: int = 1,
        on_attempt: OnAttempt | None = None,
        **params: Any,
    ) -> CodeResult:
        """Async twin of :meth:`run` (tests run in worker threads)."""
        loop = _Loop.of(self, requirement, repair_attempts, tests, test_command, limits, on_attempt)
        count = _count(candidates)
        first = await generator.agenerate(self.render(requirement), **_with_n(params, count))
        starts = loop.starts(first, count)
        done = await asyncio.gather(
            *(loop.aimprove(generator, i, r, params) for i, r in enumerate(starts))
        )
        return loop.finish(best_of(done) if count > 1 else done[0], done if count > 1 else [])

    def __repr__(self) -> str:
        return (
            f"CodeGenerationTemplate(language={self.language!r}, locale={self.locale!r}, "
            f"sections={list(self.sections)!r}, primed={self.primed})"
        )


def _count(candidates: object) -> int:
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise InvalidParameterError("candidates", f"must be an int >= 1, got {candidates!r}")
    return candidates


def _with_n(params: dict[str, Any], count: int) -> dict[str, Any]:
    if count > 1 and "n" in params:
        raise InvalidParameterError("n", "candidates=... sets n; pass one or the other")
    return {**params, "n": count} if count > 1 else params


@dataclass(frozen=True)
class _Loop:
    """One ``run``: judge a candidate, repair it while it fails, and add up the usage."""

    template: CodeGenerationTemplate
    requirement: str
    limit: int
    plan: TestPlan | None
    on_attempt: OnAttempt | None = None
    #: Set when a candidate passes: the others stop repairing (their replies would be wasted).
    won: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def of(
        cls,
        template: CodeGenerationTemplate,
        requirement: str,
        repair_attempts: int,
        tests: Tests | None,
        command: Sequence[str] | None,
        limits: Limits | None,
        on_attempt: OnAttempt | None,
    ) -> _Loop:
        plan = TestPlan.of(tests, template.language, limits, command)
        limit = _repairs(repair_attempts)
        return cls(template, _requirement(requirement), limit, plan, on_attempt)

    def _judged(self, candidate: int, result: CodeResult) -> CodeResult:
        result = judge(result, self.plan)
        if self.on_attempt is not None:
            self.on_attempt(candidate, result)
        return result

    def starts(self, reply: GenerationResult, count: int) -> list[CodeResult]:
        """One parsed candidate per choice; the reply's usage is counted once, on the first."""
        texts = reply.texts[:count] if count > 1 else [reply]
        parsed = [self.template.parse(text) for text in texts]
        if count > 1:  # each candidate keeps the whole reply as raw, for its finish reason
            parsed = [p.model_copy(update={"raw": reply}) for p in parsed]
        parsed[0] = parsed[0].model_copy(update={"usage": reply.total_usage, "cost": reply.cost})
        return parsed

    def _again(self, result: CodeResult) -> bool:
        if result.ok:
            self.won.set()
        return not result.ok and result.repairs < self.limit and not self.won.is_set()

    def _next(self, before: CodeResult, reply: GenerationResult) -> CodeResult:
        parsed = self.template.parse(reply)
        return parsed.model_copy(
            update={
                "repairs": before.repairs + 1,
                "runs": before.runs,
                "usage": before.usage + reply.total_usage,
                "cost": plus_cost(before.cost, reply.cost),
            }
        )

    def improve(
        self, generator: Generator, candidate: int, result: CodeResult, params: dict[str, Any]
    ) -> CodeResult:
        """Judge ``result``; while it fails and repairs are left, ask again with what failed."""
        result = self._judged(candidate, result)
        while self._again(result):
            prompt = self.template.render_repair(self.requirement, result)
            reply = generator.generate(prompt, **params)
            result = self._judged(candidate, self._next(result, reply))
        return result

    async def aimprove(
        self, generator: Generator, candidate: int, result: CodeResult, params: dict[str, Any]
    ) -> CodeResult:
        """Async twin of :meth:`improve`."""
        result = await asyncio.to_thread(self._judged, candidate, result)
        while self._again(result):
            prompt = self.template.render_repair(self.requirement, result)
            reply = await generator.agenerate(prompt, **params)
            result = await asyncio.to_thread(self._judged, candidate, self._next(result, reply))
        return result

    @staticmethod
    def finish(chosen: CodeResult, every: Sequence[CodeResult]) -> CodeResult:
        """The chosen candidate, holding all of them and the usage of all of them."""
        if not every:
            return chosen
        total = sum((c.usage for c in every), Usage())
        cost = functools.reduce(plus_cost, (c.cost for c in every))
        return chosen.model_copy(update={"candidates": tuple(every), "usage": total, "cost": cost})
