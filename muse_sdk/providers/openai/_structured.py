"""A call's schema, regex, choices and tools, in the OpenAI API's terms.

A JSON schema is asked for at the best level the server takes, stepping down when it refuses:

1. ``json_schema``: ``response_format={"type": "json_schema", ...}``, strict when the schema
   fits OpenAI's strict subset (:mod:`._strict`); the prompt is left as it is;
2. ``json_object``: JSON mode, with the schema as an instruction in the prompt;
3. ``instruction``: the instruction alone.

The level that worked is remembered per server (``base_url``) and model for the whole process
(:data:`LEVELS`), so later calls start there. The model is part of the key because on OpenAI's
own API support varies by model (``gpt-3.5-turbo`` has no ``json_schema``; ``gpt-4o`` has),
and one old model must not send every other one down the ladder. Whatever the level, the core
validates every reply against the schema.

``regex`` and ``choices`` always use the instruction: OpenAI has no such ``response_format``
(``choices`` could be a one-property ``enum`` schema, but then the reply would be JSON rather
than the choice itself, and ``result.text`` would differ from every other provider's). A schema
whose root is not an object uses it too: ``response_format`` only produces objects.

Tools are sent natively on the chat API. The legacy completions API takes neither tools nor
``response_format``, so there everything, tools included, becomes the instruction, and the core
reads tool calls from the reply's JSON as it does for local models.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from muse_sdk.errors import BadRequestError, MuseError
from muse_sdk.providers.openai._strict import (
    StrictSchema,
    drop_nulls,
    is_object_root,
    strict_schema,
    unfenced_json,
)
from muse_sdk.structured import OutputSpec, Structure, with_instruction

if TYPE_CHECKING:
    from muse_sdk.core.generator import Request
    from muse_sdk.core.types import Prompt
    from muse_sdk.providers.openai._settings import Api

__all__ = ["LEVELS", "Ladder", "Level", "LevelMemory", "for_openai", "shape"]

Level = Literal["json_schema", "json_object", "instruction"]
_ORDER: tuple[Level, ...] = ("json_schema", "json_object", "instruction")
#: Words of a server's 400 that say it refused the response format (not something else).
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "strict", "schema")


class LevelMemory:
    """The response-format level that worked, per ``base_url`` and model; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._levels: dict[tuple[str, str], Level] = {}

    def get(self, base_url: str, model: str) -> Level | None:
        """The level that last worked for the server and model; ``None`` if none has."""
        with self._lock:
            return self._levels.get((base_url, model))

    def set(self, base_url: str, model: str, level: Level) -> None:
        """Remember ``level`` for the server and model."""
        with self._lock:
            self._levels[base_url, model] = level

    def clear(self) -> None:
        """Forget every server (tests; a server that was upgraded)."""
        with self._lock:
            self._levels.clear()


#: The process-wide memory: every generator of a server shares what was learnt about it.
LEVELS = LevelMemory()


class Ladder:
    """One call's way down the levels: where it starts, when it steps down, what it learns."""

    def __init__(
        self, server: tuple[str, str], levels: tuple[Level, ...], *, learns: bool = False
    ) -> None:
        self.server = server  # (base_url, model)
        self._levels = levels
        self._at = 0
        self._learns = learns  # whether the outcome says something about the server
        self._known = learns and LEVELS.get(*server) is not None
        self._schema_specific = False

    @classmethod
    def plan(cls, request: Request, api: Api, base_url: str, model: str) -> Ladder:
        """The levels ``request`` may use (none when it asks for no output format)."""
        structure = request.structure
        output = structure.output if structure is not None else None
        server = (base_url, model)
        if structure is None or output is None or structure.must_call:
            return cls(server, ())
        if api == "completions" or output.kind != "json" or not _object_root(output):
            return cls(server, ("instruction",))
        start = LEVELS.get(base_url, model) or "json_schema"
        return cls(server, _ORDER[_ORDER.index(start) :], learns=True)

    @property
    def level(self) -> Level | None:
        """The level to send now; ``None`` when the call asks for no output format."""
        return self._levels[self._at] if self._levels else None

    def step_down(self, exc: MuseError) -> bool:
        """Move to the next level if ``exc`` is the server refusing this one; else ``False``.

        Once a level has worked for this server, only a 400 that names the response format
        steps down; before that, any 400 or 422 does (servers word it every way).
        """
        if not isinstance(exc, BadRequestError) or self._at + 1 >= len(self._levels):
            return False
        message = str(exc).lower()
        if self._known and not any(word in message for word in _FORMAT_WORDS):
            return False
        # OpenAI's "Invalid schema for response_format ...": this schema, not the server.
        self._schema_specific |= "invalid schema" in message
        self._at += 1
        return True

    def worked(self) -> None:
        """The current level got a reply: remember it for the server (unless it says nothing)."""
        level = self.level
        if self._learns and level is not None and not self._schema_specific:
            LEVELS.set(*self.server, level)


def shape(request: Request, api: Api, level: Level | None) -> tuple[Prompt, dict[str, Any]]:
    """The prompt to send and the request fields (``response_format``, ``tools``) at ``level``."""
    structure = request.structure
    if structure is None:
        return request.prompt, {}
    if api == "completions":
        return with_instruction(request.prompt, structure), {}
    fields: dict[str, Any] = {}
    if structure.tools:
        fields["tools"] = [tool.openai_dict() for tool in structure.tools]
        fields["tool_choice"] = _tool_choice(structure.tool_choice)
    output = structure.output
    if level is None or output is None:
        return request.prompt, fields
    if level == "json_schema":
        fields["response_format"] = json_schema_format(output)
        return request.prompt, fields
    if level == "json_object":
        fields["response_format"] = {"type": "json_object"}
    # The tools go natively, so the instruction speaks of the output only.
    return with_instruction(request.prompt, Structure(output)), fields


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def json_schema_format(spec: OutputSpec) -> dict[str, Any]:
    """The ``response_format`` of the ``json_schema`` level."""
    strict = _strict(spec)
    return {
        "type": "json_schema",
        "json_schema": {"name": spec.name, "strict": strict.strict, "schema": strict.schema},
    }


def _object_root(spec: OutputSpec) -> bool:
    return spec.json_schema is not None and is_object_root(spec.json_schema)


# --- strict schemas, and replies without their introduced nulls ------------------------------

_CACHE: dict[str, StrictSchema] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 256


def _strict(spec: OutputSpec) -> StrictSchema:
    """``spec``'s strict schema, computed once per schema (``spec.key``)."""
    with _CACHE_LOCK:
        cached = _CACHE.get(spec.key)
    if cached is not None:
        return cached
    assert spec.json_schema is not None
    strict = strict_schema(spec.json_schema)
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[spec.key] = strict
    return strict


class _DropNulls:
    """An :class:`OutputSpec` validator that first removes the nulls strict mode introduced.

    It runs whatever level answered: such a null is one the original schema would reject
    anyway (the property is optional and does not allow null), so it can only mean "absent".
    """

    def __init__(self, strict: StrictSchema, validate: Callable[[Any], Any]) -> None:
        self.strict = strict
        self.validate = validate

    def __call__(self, text: str) -> Any:
        try:
            value = unfenced_json(text)
        except ValueError:
            return self.validate(text)  # not JSON: the validator says so in its own words
        return self.validate(json.dumps(drop_nulls(value, self.strict)))


def for_openai(structure: Structure | None) -> Structure | None:
    """``structure`` with a JSON output whose validation drops strict mode's nulls first.

    The reply's text stays what the model sent (streamed chunks and ``result.text`` agree);
    only the value that is validated and parsed goes without those nulls.
    """
    output = structure.output if structure is not None else None
    if structure is None or output is None or output.kind != "json":
        return structure
    validate = output._validate
    if validate is None or isinstance(validate, _DropNulls) or output.json_schema is None:
        return structure
    strict = _strict(output)
    if not strict.nullable:
        return structure
    spec = dataclasses.replace(output, _validate=_DropNulls(strict, validate))
    return dataclasses.replace(structure, output=spec)
