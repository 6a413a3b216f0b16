"""What a call asks the reply to be: an :class:`OutputSpec` and a call's :class:`Structure`.

``schema=`` takes a pydantic model, any type pydantic's ``TypeAdapter`` accepts, or a JSON
Schema dict; ``regex=`` a pattern the whole reply must match; ``choices=`` the replies allowed.
Providers read :meth:`Structure.constraint` to constrain decoding; the core validates every
reply against the spec, whatever produced it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from muse_sdk.errors import InvalidParameterError, StructuredOutputError

__all__ = ["OutputSpec", "fingerprint", "json_errors"]

Kind = Literal["json", "regex", "choices"]
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


def fingerprint(*parts: object) -> str:
    """A stable hash of JSON-able parts (sorted keys): the same spec, the same key."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, eq=False)
class OutputSpec:
    """One constraint on a reply's text, and how to turn valid text into a value."""

    kind: Kind
    #: The JSON Schema (``kind == "json"``), ``$defs`` and all.
    json_schema: dict[str, Any] | None = None
    #: The pattern the whole reply matches (``kind == "regex"``), Python ``re`` syntax.
    pattern: str | None = None
    #: The replies allowed (``kind == "choices"``).
    options: tuple[str, ...] = ()
    #: A stable hash of the constraint: the key compiled grammars are cached under.
    key: str = ""
    #: A name for the schema (OpenAI's ``json_schema.name``).
    name: str = "response"
    _validate: Callable[[Any], Any] | None = field(default=None, repr=False)

    @classmethod
    def coerce(
        cls, schema: object = None, regex: str | None = None, choices: object = None
    ) -> OutputSpec | None:
        """The spec for a call's ``schema``, ``regex`` or ``choices`` (at most one of them)."""
        values = (("schema", schema), ("regex", regex), ("choices", choices))
        given = [name for name, value in values if value is not None]
        if len(given) > 1:
            raise InvalidParameterError(
                given[1], f"pass one of schema, regex or choices, not {' and '.join(given)}"
            )
        if schema is not None:
            return cls.for_schema(schema)
        if regex is not None:
            return cls.for_regex(regex)
        if choices is not None:
            return cls.for_choices(choices)
        return None

    @classmethod
    def for_schema(cls, schema: object) -> OutputSpec:
        """A JSON spec from a JSON Schema dict, a pydantic model or a ``TypeAdapter`` type."""
        if isinstance(schema, OutputSpec):
            return schema
        if isinstance(schema, Mapping):
            return _dict_spec(json.loads(json.dumps(schema)))
        try:
            return _type_spec(schema)
        except TypeError as exc:  # unhashable: not a type
            raise InvalidParameterError(
                "schema", f"expected a pydantic model, a type or a JSON Schema dict: {exc}"
            ) from exc

    @classmethod
    def for_regex(cls, pattern: str) -> OutputSpec:
        """A spec the whole reply must match."""
        if not isinstance(pattern, str) or not pattern:
            raise InvalidParameterError("regex", "must be a non-empty pattern string")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise InvalidParameterError("regex", f"not a valid regular expression: {exc}") from exc
        return cls(
            "regex",
            pattern=pattern,
            key=fingerprint("regex", pattern),
            _validate=functools.partial(_full_match, compiled),
        )

    @classmethod
    def for_choices(cls, choices: object) -> OutputSpec:
        """A spec whose reply is exactly one of ``choices``."""
        if isinstance(choices, str) or not isinstance(choices, Sequence):
            raise InvalidParameterError("choices", "must be a list of strings, e.g. ['yes', 'no']")
        options = tuple(choices)
        if not options or not all(isinstance(o, str) and o for o in options):
            raise InvalidParameterError("choices", "must be a non-empty list of non-empty strings")
        if len(set(options)) != len(options):
            raise InvalidParameterError("choices", "lists the same choice twice")
        return cls(
            "choices",
            options=options,
            key=fingerprint("choices", options),
            _validate=functools.partial(_one_of, options),
        )

    def parse(self, text: str, finish_reason: str | None = None) -> Any:
        """The validated value of ``text``; :class:`StructuredOutputError` when it is not one."""
        if finish_reason == "length":
            raise StructuredOutputError(
                f"the reply was cut by max_tokens before it was complete ({len(text)} "
                "characters); raise max_tokens. The partial reply is in .text",
                text=text,
                errors=["cut by max_tokens"],
                finish_reason=finish_reason,
            )
        assert self._validate is not None
        try:
            return self._validate(text)
        except _InvalidError as exc:
            raise StructuredOutputError(
                f"the reply does not match the {self.describe()}: {'; '.join(exc.errors[:3])}",
                text=text,
                errors=exc.errors,
                finish_reason=finish_reason,
            ) from None

    def describe(self) -> str:
        """A few words for messages: what this spec asks for."""
        return {"json": "schema", "regex": "regex", "choices": "choices"}[self.kind]


class _InvalidError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _full_match(pattern: re.Pattern[str], text: str) -> str:
    if pattern.fullmatch(text) is None:
        raise _InvalidError([f"{text[:80]!r} does not match {pattern.pattern!r}"])
    return text


def _one_of(options: tuple[str, ...], text: str) -> str:
    if text in options:
        return text
    if text.strip() in options:  # a server's reply with a trailing newline
        return text.strip()
    raise _InvalidError([f"{text[:80]!r} is not one of {list(options)!r}"])


def _json_text(text: str) -> str:
    fenced = _FENCE.match(text)  # a server that ignored the format may fence its JSON
    return fenced.group(1) if fenced else text


def _load_json(text: str) -> Any:
    try:
        return json.loads(_json_text(text))
    except ValueError as exc:
        raise _InvalidError([f"not valid JSON: {exc}"]) from None


def json_errors(exc: ValidationError) -> list[str]:
    """Pydantic's errors as short readable lines: ``"age: Input should be a valid integer"``."""
    lines = []
    for err in exc.errors(include_url=False):
        if err["type"] == "json_invalid":
            lines.append(f"not valid JSON: {err['ctx'].get('error', err['msg'])}")
            continue
        loc = ".".join(str(part) for part in err["loc"]) or "(root)"
        lines.append(f"{loc}: {err['msg']}")
    return lines


def _dict_spec(schema: dict[str, Any]) -> OutputSpec:
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidParameterError("schema", f"not a valid JSON Schema: {exc.message}") from None
    except RecursionError:
        raise InvalidParameterError(
            "schema", "nests too deeply to check; flatten it with $defs and $ref"
        ) from None
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def validate(text: str) -> Any:
        value = _load_json(text)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            raise _InvalidError(
                [f"{e.json_path.removeprefix('$.') or '(root)'}: {e.message}" for e in errors]
            )
        return value

    name = str(schema.get("title") or "response")
    return OutputSpec(
        "json",
        json_schema=schema,
        key=fingerprint("json", schema),
        name=_safe_name(name),
        _validate=validate,
    )


@functools.lru_cache(maxsize=256)
def _type_spec(schema: Any) -> OutputSpec:
    from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

    try:
        adapter: TypeAdapter[Any] = TypeAdapter(schema)
        json_schema = adapter.json_schema()
    except (PydanticSchemaGenerationError, PydanticUserError) as exc:
        raise InvalidParameterError(
            "schema", f"pydantic cannot build a schema from {schema!r}: {exc}"
        ) from None

    def validate(text: str) -> Any:
        try:
            return adapter.validate_json(_json_text(text))
        except ValidationError as exc:
            raise _InvalidError(json_errors(exc)) from None

    name = str(json_schema.get("title") or getattr(schema, "__name__", "response"))
    return OutputSpec(
        "json",
        json_schema=json_schema,
        key=fingerprint("json", json_schema),
        name=_safe_name(name),
        _validate=validate,
    )


def _safe_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "response"
