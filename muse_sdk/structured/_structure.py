"""A call's :class:`Structure`: its output spec, its tools, and how many repairs it allows."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from muse_sdk.errors import InvalidParameterError
from muse_sdk.structured._names import PARAMS
from muse_sdk.structured._spec import OutputSpec, fingerprint
from muse_sdk.structured._tools import Tool, as_tools

__all__ = ["PARAMS", "Structure", "per_row"]

_MODES = ("auto", "required", "none")


@dataclass(frozen=True, eq=False)
class Structure:
    """What a call asks of its reply beside text.

    ``output`` is the value's spec; ``tools`` the tools the model may call and ``tool_choice``
    whether it must (``"required"`` or a tool's name), may (``"auto"``) or must not (``"none"``).
    """

    output: OutputSpec | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: str = "auto"
    repair_attempts: int = 0

    @classmethod
    def build(cls, params: Mapping[str, Any]) -> Structure | None:
        """The structure for a call's ``schema``/``regex``/``choices``/``tools``/... parameters."""
        output = OutputSpec.coerce(params.get("schema"), params.get("regex"), params.get("choices"))
        tools = as_tools(params["tools"]) if params.get("tools") is not None else ()
        choice = _tool_choice(params.get("tool_choice"), tools)
        repairs = params.get("repair_attempts") or 0
        if isinstance(repairs, bool) or not isinstance(repairs, int) or not 0 <= repairs <= 10:
            raise InvalidParameterError(
                "repair_attempts", f"must be an integer from 0 to 10, got {repairs!r}"
            )
        if output is None and not tools:
            if repairs:
                raise InvalidParameterError(
                    "repair_attempts", "needs a schema, regex, choices or tools to check replies"
                )
            return None
        return cls(output, tools, choice, repairs)

    @property
    def calls_tools(self) -> bool:
        """Whether the model may call a tool in this call."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def must_call(self) -> bool:
        """Whether the reply must be a tool call (``"required"`` or a tool's name)."""
        return self.calls_tools and self.tool_choice != "auto"

    def tool(self, name: str) -> Tool | None:
        """The tool called ``name``, if the call offers it."""
        return next((tool for tool in self.tools if tool.name == name), None)

    def constraint(self) -> OutputSpec | None:
        """What a constrained decoder must follow: the tool-call spec when a call is a must."""
        return self.tool_call_spec if self.must_call else self.output

    @functools.cached_property
    def tool_call_spec(self) -> OutputSpec:
        """A JSON spec for one call, ``{"name": ..., "arguments": {...}}``, of an offered tool."""
        offered = [t for t in self.tools if self.tool_choice in (*_MODES, t.name)]
        defs: dict[str, Any] = {}
        options = []
        for number, tool in enumerate(offered):
            parameters = _hoisted(tool.parameters, f"t{number}_", defs)
            options.append(
                {
                    "type": "object",
                    "properties": {"name": {"const": tool.name}, "arguments": parameters},
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                }
            )
        schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
        if defs:
            schema = {**schema, "$defs": defs}
        return OutputSpec.for_schema(schema)

    @functools.cached_property
    def key(self) -> str:
        """A stable hash of everything that shapes the reply."""
        return fingerprint(
            self.output.key if self.output else None,
            [tool.openai_dict() for tool in self.tools],
            self.tool_choice,
            self.repair_attempts,
        )


def _tool_choice(choice: object, tools: tuple[Tool, ...]) -> str:
    if choice is None:
        return "auto"
    if isinstance(choice, Mapping):  # OpenAI's {"type": "function", "function": {"name": ...}}
        function = choice.get("function")
        choice = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(choice, str):
        raise InvalidParameterError(
            "tool_choice", "must be 'auto', 'required', 'none' or the name of a tool"
        )
    if not tools:
        raise InvalidParameterError("tool_choice", "needs tools=[...] to choose from")
    names = [tool.name for tool in tools]
    if choice not in _MODES and choice not in names:
        raise InvalidParameterError(
            "tool_choice", f"{choice!r} is not 'auto', 'required', 'none' or a tool: {names}"
        )
    return choice


def _hoisted(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without its ``$defs``, moved into ``defs`` under ``prefix`` (refs renamed)."""
    own = schema.get("$defs") or {}
    if not own:
        return schema
    renamed = _renamed_refs({k: v for k, v in schema.items() if k != "$defs"}, prefix)
    for name, definition in own.items():
        defs[prefix + name] = _renamed_refs(definition, prefix)
    assert isinstance(renamed, dict)
    return renamed


def _renamed_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {
            key: f"#/$defs/{prefix}{value.removeprefix('#/$defs/')}"
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
            else _renamed_refs(value, prefix)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_renamed_refs(item, prefix) for item in node]
    return node


def per_row(params: Mapping[str, Any], rows: int) -> list[dict[str, Any]]:
    """A batch's structure parameters for each row.

    ``schema=[A, B, ...]`` and ``regex=[...]`` (a list) or ``choices=[[...], [...]]`` (a list of
    lists) give each row its own; anything else applies to every row.
    """
    shared = dict(params)
    varying: dict[str, Sequence[Any]] = {}
    for name in ("schema", "regex"):
        if isinstance(shared.get(name), list):
            varying[name] = shared.pop(name)
    choices = shared.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], list | tuple):
        varying["choices"] = shared.pop("choices")
    for name, values in varying.items():
        if len(values) != rows:
            raise InvalidParameterError(
                name, f"a list gives one {name} per prompt: {len(values)} for {rows} prompts"
            )
    return [{**shared, **{k: v[row] for k, v in varying.items()}} for row in range(rows)]
