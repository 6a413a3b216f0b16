"""Checks shared by every template: values in, text out, and ``run()`` / ``arun()``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from muse_sdk.errors import MissingVariableError, TemplateError, did_you_mean

if TYPE_CHECKING:
    from muse_sdk.core.generator import Generator
    from muse_sdk.core.types import GenerationResult, PromptInput

__all__ = [
    "RunnableTemplate",
    "as_text",
    "as_values",
    "check_values",
    "escape_braces",
    "extra_error",
    "normalize_newlines",
]


def normalize_newlines(text: str) -> str:
    """Turn CRLF and lone CR line endings into LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def escape_braces(text: str) -> str:
    """Escape ``{`` and ``}`` so that ``text`` reads as literal text in a template."""
    return text.replace("{", "{{").replace("}", "}}")


def as_text(name: str, value: object) -> str:
    """The text a value is inserted as; only strings and numbers are accepted."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise TemplateError(
        f"the value for template variable {name!r} is a {type(value).__name__}; pass a str or "
        "a number (convert or join it first, e.g. str(value) or ', '.join(items))"
    )


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names) or "(none)"


def check_values(
    variables: tuple[str, ...], values: Mapping[str, object], *, strict: bool, source: str
) -> None:
    """Raise for missing values (all named at once) and, when ``strict``, for extra ones."""
    missing = [name for name in variables if name not in values]
    extra = sorted(set(values) - set(variables))
    if missing:
        error = MissingVariableError(missing, source)
        if extra:
            hint = did_you_mean(extra[0], missing)
            error.add_note(f"unexpected value(s) given: {_names(extra)}{hint}")
        raise error
    if strict and extra:
        raise extra_error(extra, variables, source)


def extra_error(extra: list[str], variables: tuple[str, ...], source: str) -> TemplateError:
    """The error for values that a strict template has no variable for."""
    return TemplateError(
        f"unexpected template value(s) {_names(extra)}{did_you_mean(extra[0], variables)} "
        f"for template {source[:60]!r}; its variables are {_names(variables)}. Remove them, "
        "or create the template with strict=False to ignore extra values."
    )


def as_values(values: object) -> dict[str, object]:
    """Validate the ``values`` mapping given to ``run()``."""
    if values is None:
        return {}
    if not isinstance(values, Mapping) or not all(isinstance(key, str) for key in values):
        raise TemplateError(
            "template values must be a mapping of variable names to values, e.g. "
            f"template.run(gen, {{'topic': 'autumn'}}); got {type(values).__name__}"
        )
    return dict(values)


class RunnableTemplate:
    """Base of the templates whose ``render(**values)`` gives a prompt: adds ``run``/``arun``.

    Template values go in one mapping and generation parameters as keyword arguments, exactly as
    for ``Generator.generate``: ``template.run(gen, {"topic": "autumn"}, max_tokens=50)``.
    """

    __slots__ = ()

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable names, in order of first appearance."""
        raise NotImplementedError

    def _render_mapping(self, values: dict[str, object]) -> PromptInput:
        raise NotImplementedError

    def _prompt_for(self, values: object, params: Mapping[str, Any]) -> PromptInput:
        clash = [name for name in self.variables if name in params]
        if clash:
            raise TemplateError(
                f"{_names(clash)} is a template variable, not a generation parameter: pass "
                f"template values as a mapping, e.g. template.run(gen, {{{clash[0]!r}: ...}}, "
                "max_tokens=...)"
            )
        return self._render_mapping(as_values(values))

    def run(
        self, generator: Generator, values: Mapping[str, object] | None = None, /, **params: Any
    ) -> GenerationResult:
        """Render with ``values`` and generate with ``params`` (``max_tokens=...``, ...)."""
        return generator.generate(self._prompt_for(values, params), **params)

    async def arun(
        self, generator: Generator, values: Mapping[str, object] | None = None, /, **params: Any
    ) -> GenerationResult:
        """Async twin of :meth:`run`."""
        return await generator.agenerate(self._prompt_for(values, params), **params)
