"""``PromptTemplate``: ``str.format``-style templates that only ever substitute plain names.

The template is parsed once, at construction. Anything beyond ``{name}`` (attribute access,
indexing, ``!r`` conversions, format specs, positional fields) is refused there, so rendering can
never reach into the values' objects. Rendering joins literal text and the values' text: a value
is never formatted again, so a value holding ``{name}`` stays literal.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from muse_sdk.errors import TemplateError, UnsafeTemplateError
from muse_sdk.templates._values import (
    RunnableTemplate,
    as_text,
    check_values,
    escape_braces,
    extra_error,
)

if TYPE_CHECKING:
    import os

__all__ = ["PromptTemplate"]

#: (literal text, variable name or None)
Segment = tuple[str, str | None]

_FORMATTER = string.Formatter()
_HINT = "use a plain {name} and prepare the value before rendering"


def _check_field(field: str, spec: str | None, conversion: str | None) -> None:
    """Refuse every field but a plain ``{name}``; say why and what to write instead."""
    if "." in field or "[" in field:
        raise UnsafeTemplateError(
            f"template field {{{field}}} uses attribute access or indexing, which could reach "
            f"into the value's object: {_HINT}"
        )
    if conversion is not None:
        raise UnsafeTemplateError(
            f"template field {{{field}!{conversion}}} uses a conversion: {_HINT}"
        )
    if spec:
        raise UnsafeTemplateError(
            f"template field {{{field}:{spec}}} uses a format spec: {_HINT}, e.g. f'{{x:>10}}'"
        )
    if field == "" or field.isdigit():
        raise TemplateError(
            f"template field {{{field}}} is positional: name it, e.g. {{topic}}, and pass "
            "topic=... when rendering"
        )
    if not field.isidentifier():
        raise TemplateError(
            f"template field {{{field}}} is not a valid name: use letters, digits and "
            "underscores (e.g. {topic} or {主题}); write a literal brace as {{ or }}"
        )


def parse_template(text: str) -> tuple[Segment, ...]:
    """Split a template into (literal, name) segments; raise for anything but plain names."""
    if not isinstance(text, str):
        raise TemplateError(f"a template must be a str, got {type(text).__name__}")
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise TemplateError(
            f"malformed template {text[:60]!r}: {exc}. Write a literal brace as {{{{ or }}}}"
        ) from exc
    segments: list[Segment] = []
    for literal, field, spec, conversion in parsed:
        if field is not None:
            _check_field(field, spec, conversion)
        segments.append((literal, field))
    return tuple(segments)


class PromptTemplate(RunnableTemplate):
    """A text template with named ``{variables}``; ``{{`` and ``}}`` are literal braces.

    >>> PromptTemplate("Write a {genre} about {topic}.").render(genre="poem", topic="autumn")
    'Write a poem about autumn.'

    ``strict=False`` ignores extra values instead of raising. ``name``, ``description`` and
    ``metadata`` describe the template (they are filled when loading from TOML).
    """

    __slots__ = (
        "_metadata",
        "_segments",
        "_template",
        "_variables",
        "description",
        "name",
        "strict",
    )

    def __init__(
        self,
        template: str,
        *,
        strict: bool = True,
        name: str | None = None,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._segments = parse_template(template)
        self._template = template
        self._variables = tuple(dict.fromkeys(n for _, n in self._segments if n is not None))
        self.strict = strict
        self.name = name
        self.description = description
        self._metadata = dict(metadata or {})

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, strict: bool = True, name: str | None = None
    ) -> PromptTemplate:
        """Read a template from a UTF-8 text file (BOM dropped, CRLF and CR read as LF)."""
        from muse_sdk.templates._files import read_text

        return cls(read_text(path), strict=strict, name=name)

    @property
    def template(self) -> str:
        """The template's source text."""
        return self._template

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable names, in order of first appearance."""
        return self._variables

    @property
    def metadata(self) -> Mapping[str, Any]:
        """Free-form metadata (read-only)."""
        return MappingProxyType(self._metadata)

    def render(self, /, **values: object) -> str:
        """Substitute ``values`` as plain text; raise for missing (and, if strict, extra) ones."""
        check_values(self._variables, values, strict=self.strict, source=self._template)
        return "".join(
            literal + (as_text(name, values[name]) if name is not None else "")
            for literal, name in self._segments
        )

    def partial(self, /, **values: object) -> PromptTemplate:
        """Return a template with some variables filled in; the rest stay variables."""
        extra = sorted(set(values) - set(self._variables))
        if self.strict and extra:
            raise extra_error(extra, self._variables, self._template)
        parts = []
        for literal, name in self._segments:
            parts.append(escape_braces(literal))
            if name is not None:
                filled = name in values
                parts.append(
                    escape_braces(as_text(name, values[name])) if filled else f"{{{name}}}"
                )
        return PromptTemplate(
            "".join(parts),
            strict=self.strict,
            name=self.name,
            description=self.description,
            metadata=self._metadata,
        )

    def _render_mapping(self, values: dict[str, object]) -> str:
        return self.render(**values)

    def __repr__(self) -> str:
        shown = self._template if len(self._template) <= 60 else self._template[:57] + "..."
        label = f"name={self.name!r}, " if self.name else ""
        return f"PromptTemplate({label}{shown!r}, variables={self._variables!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PromptTemplate):
            return NotImplemented
        return (self._template, self.strict) == (other._template, other.strict)

    def __hash__(self) -> int:
        return hash((self._template, self.strict))
