"""Tools a model may call: from a typed Python function, a pydantic model or an OpenAI dict."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError, create_model

from muse_sdk.core.types import ToolCall
from muse_sdk.errors import InvalidParameterError, StructuredOutputError
from muse_sdk.structured._spec import json_errors

__all__ = ["Tool", "as_tool", "as_tools"]

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ARG_LINE = re.compile(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


@dataclass(frozen=True, eq=False)
class Tool:
    """A tool: its name, description, JSON Schema of arguments, and the function to call."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any] | None = None
    _check: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None, repr=False)
    _python: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None, repr=False)

    def openai_dict(self) -> dict[str, Any]:
        """OpenAI's ``tools`` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, call: ToolCall) -> ToolCall:
        """``call`` with its arguments validated; :class:`StructuredOutputError` when invalid."""
        arguments: Any = call.arguments
        if isinstance(arguments, str):  # a provider's raw JSON text
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise self._invalid(call, str(arguments), [f"not valid JSON: {exc}"]) from None
        if not isinstance(arguments, dict):
            raise self._invalid(call, json.dumps(arguments), ["arguments must be a JSON object"])
        if self._check is not None:
            try:
                arguments = self._check(arguments)
            except _BadArgumentsError as exc:
                raise self._invalid(call, json.dumps(arguments), exc.errors) from None
        return ToolCall(id=call.id, name=call.name, arguments=arguments)

    def _invalid(self, call: ToolCall, text: str, errors: list[str]) -> StructuredOutputError:
        return StructuredOutputError(
            f"the model called {self.name!r} with invalid arguments: {'; '.join(errors[:3])}",
            text=text,
            errors=errors,
            finish_reason="tool_calls",
        )

    def __call__(self, call: ToolCall) -> Any:
        """Run the tool's function with ``call``'s (validated) arguments."""
        if self.function is None:
            raise InvalidParameterError(
                "tools", f"tool {self.name!r} is a schema only; give a Python function to run it"
            )
        arguments = self._python(call.arguments) if self._python else call.arguments
        return self.function(**arguments)


class _BadArgumentsError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def as_tools(tools: object) -> tuple[Tool, ...]:
    """Every entry of a ``tools=`` list as a :class:`Tool`; names must be unique."""
    if isinstance(tools, str | Mapping) or not hasattr(tools, "__iter__"):
        raise InvalidParameterError("tools", "must be a list of functions, models or tool dicts")
    built = tuple(as_tool(tool) for tool in tools)
    names = [tool.name for tool in built]
    if len(set(names)) != len(names):
        raise InvalidParameterError("tools", f"two tools share a name: {sorted(names)}")
    return built


def as_tool(tool: object) -> Tool:
    """A :class:`Tool` from a typed function, a pydantic model class or an OpenAI tool dict."""
    if isinstance(tool, Tool):
        return tool
    if isinstance(tool, type) and issubclass(tool, BaseModel):
        return _from_model(tool, tool.__name__, inspect.getdoc(tool) or "", None)
    if isinstance(tool, Mapping):
        return _from_dict(tool)
    if callable(tool):
        return _from_function(tool)
    raise InvalidParameterError(
        "tools",
        f"cannot make a tool of {type(tool).__name__}: pass a typed function, "
        "a pydantic model class or an OpenAI tool dict",
    )


def _checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidParameterError(
            "tools", f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'"
        )
    return name


def _from_model(
    model: type[BaseModel], name: str, description: str, function: Callable[..., Any] | None
) -> Tool:
    def check(arguments: dict[str, Any]) -> dict[str, Any]:
        # JSON data, defaults filled in: what the model sent, validated, and safe to send back.
        try:
            return model.model_validate(arguments).model_dump(mode="json")
        except ValidationError as exc:
            raise _BadArgumentsError(json_errors(exc)) from None

    def python(arguments: dict[str, Any]) -> dict[str, Any]:
        validated = model.model_validate(arguments)  # nested models come back as instances
        return {key: getattr(validated, key) for key in type(validated).model_fields}

    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    return Tool(_checked_name(name), description, schema, function, check, python)


def _from_function(function: Callable[..., Any]) -> Tool:
    name = getattr(function, "__name__", type(function).__name__)
    doc = inspect.getdoc(function) or ""
    summary, arg_docs = _split_doc(doc)
    try:
        hints = get_type_hints(function)
    except Exception as exc:
        raise InvalidParameterError("tools", f"cannot read {name}'s type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name not in hints:
            raise InvalidParameterError(
                "tools", f"{name}'s parameter {param.name!r} needs a type hint"
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], _field(default, arg_docs.get(param.name)))
    model = create_model(f"{name}_arguments", **fields)
    return _from_model(model, name, summary, function)


def _field(default: Any, description: str | None) -> Any:
    from pydantic import Field

    return Field(default, description=description) if description else default


def _split_doc(doc: str) -> tuple[str, dict[str, str]]:
    """The summary of a docstring, and its ``Args:`` lines (Google style) by name."""
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        if line.strip().lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
        elif in_args and (match := _ARG_LINE.match(line)):
            args[match.group(1)] = match.group(2).strip()
        elif in_args and line and not line[0].isspace():
            in_args = False
        elif not in_args:
            summary_lines.append(line)
    return "\n".join(summary_lines).strip(), args


def _from_dict(tool: Mapping[str, Any]) -> Tool:
    function = tool.get("function", tool)
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise InvalidParameterError(
            "tools", "a tool dict needs a 'name' (or {'type': 'function', 'function': {...}})"
        )
    parameters = dict(function.get("parameters") or {"type": "object", "properties": {}})
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as exc:
        raise InvalidParameterError(
            "tools", f"tool {function['name']!r}: parameters are not a JSON Schema: {exc.message}"
        ) from None
    validator = Draft202012Validator(parameters)

    def check(arguments: dict[str, Any]) -> dict[str, Any]:
        errors = [
            f"{e.json_path.removeprefix('$.') or '(root)'}: {e.message}"
            for e in validator.iter_errors(arguments)
        ]
        if errors:
            raise _BadArgumentsError(errors)
        return arguments

    description = str(function.get("description") or "")
    return Tool(_checked_name(function["name"]), description, parameters, None, check)
