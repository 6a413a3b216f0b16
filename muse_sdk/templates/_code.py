"""``CodeGenerationTemplate``: a structured code request, and checked code back.

The zh prompt reproduces the seed article's (需求 + 代码应该包括以下内容); the en prompt is its
translation. ``run`` renders, generates, extracts (see ``_extract``) and checks; with
``repair_attempts`` it re-asks with the syntax error while the Python code does not parse.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from muse_sdk.errors import InvalidParameterError, TemplateError, did_you_mean
from muse_sdk.templates._extract import LANGUAGE_ALIASES, extract_code, normalize_language
from muse_sdk.templates._prompt import PromptTemplate
from muse_sdk.templates._result import CodeResult
from muse_sdk.templates._values import escape_braces

if TYPE_CHECKING:
    from muse_sdk.core.generator import Generator
    from muse_sdk.core.types import GenerationResult

__all__ = ["DISPLAY_NAMES", "CodeGenerationTemplate", "check_language"]

Locale = Literal["en", "zh"]
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
    },
    "zh": {
        "intro": "请根据以下需求生成一段{lang}代码:",
        "requirement": "需求:",
        "sections": "代码应该包括以下内容:",
        "constraints": "代码还应满足以下约束:",
        "broken": "下面的{lang}代码无法解析:",
        "error": "语法错误:",
        "fix": "请修正错误并给出完整的代码。",
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
        """The prompt that asks again for ``requirement``, quoting the broken code and its error."""
        body = PromptTemplate(self._body_source()).render(requirement=_requirement(requirement))
        repair = [
            body,
            self._phrase("broken"),
            _fence(broken.code, self.language),
            self._phrase("error") + str(broken.syntax_error),
            self._phrase("fix"),
        ]
        return "\n\n".join(repair) + self._primer()

    def parse(self, reply: str | GenerationResult) -> CodeResult:
        """Extract and check the code of a reply to this template's prompt."""
        return extract_code(reply, self.language, primed=self.primed)

    def _again(self, result: CodeResult, limit: int) -> bool:
        return result.syntax_error is not None and result.repairs < limit

    def run(
        self, generator: Generator, requirement: str, *, repair_attempts: int = 0, **params: Any
    ) -> CodeResult:
        """Render, generate with ``params``, extract and check; repair up to ``repair_attempts``."""
        limit = _repairs(repair_attempts)
        result = self.parse(generator.generate(self.render(requirement), **params))
        while self._again(result, limit):
            reply = generator.generate(self.render_repair(requirement, result), **params)
            result = self.parse(reply).model_copy(update={"repairs": result.repairs + 1})
        return result

    async def arun(
        self, generator: Generator, requirement: str, *, repair_attempts: int = 0, **params: Any
    ) -> CodeResult:
        """Async twin of :meth:`run`."""
        limit = _repairs(repair_attempts)
        result = self.parse(await generator.agenerate(self.render(requirement), **params))
        while self._again(result, limit):
            reply = await generator.agenerate(self.render_repair(requirement, result), **params)
            result = self.parse(reply).model_copy(update={"repairs": result.repairs + 1})
        return result

    def __repr__(self) -> str:
        return (
            f"CodeGenerationTemplate(language={self.language!r}, locale={self.locale!r}, "
            f"sections={list(self.sections)!r}, primed={self.primed})"
        )
