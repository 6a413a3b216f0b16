"""``ChatTemplate`` (a template per message) and ``FewShotTemplate`` (examples, prefix, suffix)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, get_args

from muse_sdk.core.types import Message
from muse_sdk.errors import TemplateError, did_you_mean
from muse_sdk.templates._prompt import PromptTemplate
from muse_sdk.templates._values import RunnableTemplate, check_values, extra_error

__all__ = ["ChatTemplate", "FewShotTemplate"]

ROLES: tuple[str, ...] = get_args(Message.model_fields["role"].annotation)

#: A message given to ``ChatTemplate``: ``(role, template)``, ``{"role", "content"}`` or Message.
MessageSpec = tuple[str, str | PromptTemplate] | Mapping[str, Any] | Message


def _as_template(value: object, what: str, strict: bool) -> PromptTemplate:
    if isinstance(value, PromptTemplate):
        return value
    if isinstance(value, str):
        return PromptTemplate(value, strict=strict)
    raise TemplateError(f"{what} must be a str or a PromptTemplate, got {type(value).__name__}")


def _message(spec: object, index: int) -> tuple[str, PromptTemplate]:
    if isinstance(spec, Message):
        role, content = spec.role, spec.content
    elif isinstance(spec, Mapping) and set(spec) == {"role", "content"}:
        role, content = spec["role"], spec["content"]
    elif isinstance(spec, tuple) and len(spec) == 2:
        role, content = spec
    else:
        raise TemplateError(
            f"message {index} must be a (role, template) pair, a {{'role', 'content'}} mapping "
            f"or a Message, got {spec!r}"
        )
    if role not in ROLES:
        raise TemplateError(
            f"message {index} has role {role!r}{did_you_mean(str(role), ROLES)}; "
            f"use one of {', '.join(ROLES)}"
        )
    return str(role), _as_template(content, f"message {index}'s content", strict=True)


def _union(templates: Sequence[PromptTemplate]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for t in templates for name in t.variables))


def _subset(template: PromptTemplate, values: Mapping[str, object]) -> dict[str, object]:
    return {name: values[name] for name in template.variables if name in values}


class ChatTemplate(RunnableTemplate):
    """Chat messages whose contents are templates sharing one set of values.

    >>> chat = ChatTemplate([("system", "You are a {style} poet."), ("user", "A poem on {topic}.")])
    >>> [m.content for m in chat.render(style="terse", topic="rain")]
    ['You are a terse poet.', 'A poem on rain.']
    """

    __slots__ = ("_messages", "_variables", "strict")

    def __init__(self, messages: Sequence[MessageSpec], *, strict: bool = True) -> None:
        if isinstance(messages, str | Mapping) or not isinstance(messages, Sequence):
            raise TemplateError(
                "ChatTemplate takes a list of messages, e.g. [('user', 'Write about {topic}.')]"
            )
        if not messages:
            raise TemplateError("ChatTemplate needs at least one message")
        self._messages = tuple(_message(spec, i) for i, spec in enumerate(messages))
        self._variables = _union([template for _, template in self._messages])
        self.strict = strict

    @property
    def messages(self) -> tuple[tuple[str, PromptTemplate], ...]:
        """The ``(role, template)`` pairs."""
        return self._messages

    @property
    def variables(self) -> tuple[str, ...]:
        """Every message's variables, in order of first appearance."""
        return self._variables

    def render(self, /, **values: object) -> list[Message]:
        """Render every message with the shared ``values``."""
        check_values(self._variables, values, strict=self.strict, source=self._source())
        return [
            Message.model_validate(
                {"role": role, "content": template.render(**_subset(template, values))}
            )
            for role, template in self._messages
        ]

    def partial(self, /, **values: object) -> ChatTemplate:
        """Return a chat template with some variables filled in."""
        extra = sorted(set(values) - set(self._variables))
        if self.strict and extra:
            raise extra_error(extra, self._variables, self._source())
        filled = [(role, t.partial(**_subset(t, values))) for role, t in self._messages]
        return ChatTemplate(filled, strict=self.strict)

    def _render_mapping(self, values: dict[str, object]) -> list[Message]:
        return self.render(**values)

    def _source(self) -> str:
        return " | ".join(f"{role}: {template.template}" for role, template in self._messages)

    def __repr__(self) -> str:
        roles = ", ".join(role for role, _ in self._messages)
        return f"ChatTemplate([{roles}], variables={self._variables!r})"


def _check_max(max_examples: object) -> int | None:
    if max_examples is None:
        return None
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 0:
        raise TemplateError(f"max_examples must be None or an int >= 0, got {max_examples!r}")
    return max_examples


def _render_example(template: PromptTemplate, example: object, index: int) -> str:
    if not isinstance(example, Mapping):
        raise TemplateError(f"example {index} must be a mapping, got {type(example).__name__}")
    missing = [name for name in template.variables if name not in example]
    if missing:
        raise TemplateError(
            f"example {index} lacks {', '.join(map(repr, missing))}, used by the example "
            f"template {template.template[:60]!r}: add them to the example"
        )
    return template.render(**{name: example[name] for name in template.variables})


class FewShotTemplate(RunnableTemplate):
    """A prompt made of a prefix, rendered examples and a suffix, joined by ``separator``.

    The examples are rendered once, at construction, with ``example_template``; the prefix and
    suffix are templates whose variables are given when rendering. ``max_examples`` keeps only the
    first examples.
    """

    __slots__ = (
        "_examples",
        "_variables",
        "example_template",
        "prefix",
        "separator",
        "strict",
        "suffix",
    )

    def __init__(
        self,
        examples: Sequence[Mapping[str, object]],
        example_template: str | PromptTemplate,
        *,
        prefix: str | PromptTemplate = "",
        suffix: str | PromptTemplate = "",
        separator: str = "\n\n",
        max_examples: int | None = None,
        strict: bool = True,
    ) -> None:
        if isinstance(examples, str | Mapping) or not isinstance(examples, Sequence):
            raise TemplateError("examples must be a list of mappings, e.g. [{'q': ..., 'a': ...}]")
        if not isinstance(separator, str):
            raise TemplateError(f"separator must be a str, got {type(separator).__name__}")
        self.example_template = _as_template(example_template, "example_template", strict)
        self.prefix = _as_template(prefix, "prefix", strict)
        self.suffix = _as_template(suffix, "suffix", strict)
        self.separator = separator
        kept = list(examples)[: _check_max(max_examples)]
        self._examples = tuple(
            _render_example(self.example_template, example, i) for i, example in enumerate(kept)
        )
        self._variables = _union([self.prefix, self.suffix])
        self.strict = strict

    @property
    def variables(self) -> tuple[str, ...]:
        """The prefix's and suffix's variables (the examples are already rendered)."""
        return self._variables

    @property
    def examples(self) -> tuple[str, ...]:
        """The rendered examples that the prompt includes."""
        return self._examples

    def render(self, /, **values: object) -> str:
        """Render prefix and suffix with ``values`` and join them with the examples."""
        check_values(self._variables, values, strict=self.strict, source=self._source())
        parts = [
            self.prefix.render(**_subset(self.prefix, values)),
            *self._examples,
            self.suffix.render(**_subset(self.suffix, values)),
        ]
        return self.separator.join(part for part in parts if part)

    def _render_mapping(self, values: dict[str, object]) -> str:
        return self.render(**values)

    def _source(self) -> str:
        return f"{self.prefix.template} ... {self.suffix.template}"

    def __repr__(self) -> str:
        return f"FewShotTemplate({len(self._examples)} examples, variables={self._variables!r})"
