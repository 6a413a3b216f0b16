"""A JSON Schema in OpenAI's strict subset, and the nulls it introduced taken back out.

Strict mode (``response_format.json_schema.strict = true``) wants every object closed
(``additionalProperties: false``) with every property listed in ``required``. An optional
property therefore becomes nullable (``anyOf: [X, {"type": "null"}]``), and the model answers
``null`` where it would have left the key out. :func:`strict_schema` makes that transformation
and records which properties it made nullable; :func:`drop_nulls` removes those nulls from a
reply, so it validates against the original schema (and pydantic fills in its defaults).

A schema strict mode cannot express (free-form objects, ``oneOf``, ``minLength``, ...) is sent
as it is with ``strict: false``: servers may still follow it, and the client validates anyway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StrictSchema", "drop_nulls", "is_object_root", "strict_schema"]

Path = tuple[str | int, ...]

#: Keywords strict mode accepts (OpenAI's "supported schemas").
_STRICT_KEYS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "anyOf",
        "$ref",
        "$defs",
        "enum",
        "const",
        "description",
        "title",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    }
)
#: Annotations strict mode rejects but validation does not need: left out of what is sent.
_DROPPED = frozenset({"default", "examples", "$schema", "$comment"})
_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_TYPED = frozenset({"type", "anyOf", "$ref", "enum", "const"})
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


@dataclass(frozen=True)
class StrictSchema:
    """What ``json_schema.schema`` gets, whether it is strict, and what was made nullable."""

    schema: dict[str, Any]
    strict: bool
    #: An object's path in ``schema`` -> the optional properties made nullable there.
    nullable: Mapping[Path, frozenset[str]] = field(default_factory=dict)


class _NotStrictError(Exception):
    """The schema uses something strict mode cannot express."""


def strict_schema(schema: dict[str, Any]) -> StrictSchema:
    """``schema`` in OpenAI's strict subset, or unchanged with ``strict=False`` when impossible."""
    converter = _Converter(schema)
    try:
        converted = converter.root()
    except (_NotStrictError, RecursionError):
        return StrictSchema(schema, strict=False)
    return StrictSchema(converted, strict=True, nullable=converter.nullable)


def is_object_root(schema: Mapping[str, Any]) -> bool:
    """Whether the reply is a JSON object: ``response_format`` cannot ask for anything else."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(schema, ref)
        return target is not None and is_object_root({**target, "$defs": schema.get("$defs")})
    return schema.get("type") == "object" or (
        "type" not in schema and isinstance(schema.get("properties"), dict)
    )


class _Converter:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.nullable: dict[Path, frozenset[str]] = {}

    def root(self) -> dict[str, Any]:
        node = dict(self.schema)
        defs = node.pop("$defs", None) or {}
        if not isinstance(defs, dict):
            raise _NotStrictError
        if "$ref" in node:  # strict mode wants an object at the root, not a reference
            node = self._inlined(node)
        if node.get("type") != "object":
            raise _NotStrictError
        out = self._node(node, ())
        if defs:
            out["$defs"] = {name: self._node(d, ("$defs", name)) for name, d in defs.items()}
        return out

    def _inlined(self, node: dict[str, Any]) -> dict[str, Any]:
        """A ``$ref`` with keywords beside it, merged into what it references (one level)."""
        target = _resolve(self.schema, node["$ref"])
        if target is None:
            raise _NotStrictError
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}

    def _node(self, node: Any, path: Path) -> dict[str, Any]:
        if not isinstance(node, dict):
            raise _NotStrictError
        if "allOf" in node:  # pydantic v1's way to annotate a reference: merge it
            parts = node["allOf"]
            if not isinstance(parts, list) or len(parts) != 1 or not isinstance(parts[0], dict):
                raise _NotStrictError
            node = {**parts[0], **{k: v for k, v in node.items() if k != "allOf"}}
        if "$ref" in node and node.keys() - {"$ref"} - _DROPPED:
            node = self._inlined(node)  # strict mode allows no keywords beside $ref
        if node.keys() - _STRICT_KEYS - _DROPPED or "$defs" in node or not node.keys() & _TYPED:
            raise _NotStrictError
        if "format" in node and node["format"] not in _FORMATS:
            raise _NotStrictError
        out = {k: v for k, v in node.items() if k not in _DROPPED}
        if "$ref" in out:
            if _resolve(self.schema, out["$ref"]) is None:
                raise _NotStrictError
            return out
        if node.get("type") == "object" or "properties" in node:
            self._object(node, out, path)
        elif "items" in node:
            out["items"] = self._node(node["items"], (*path, "items"))
        elif node.get("type") == "array":
            raise _NotStrictError  # an array of anything
        if "anyOf" in node:
            branches = node["anyOf"]
            if not isinstance(branches, list):
                raise _NotStrictError
            out["anyOf"] = [self._node(b, (*path, "anyOf", i)) for i, b in enumerate(branches)]
        return out

    def _object(self, node: dict[str, Any], out: dict[str, Any], path: Path) -> None:
        properties = node.get("properties")
        if not isinstance(properties, dict) or not properties:
            raise _NotStrictError  # a free-form object: strict mode has no way to say it
        if node.get("additionalProperties", False) is not False:
            raise _NotStrictError
        required = set(node.get("required") or ())
        made: list[str] = []
        converted: dict[str, Any] = {}
        for name, sub in properties.items():
            wrap = name not in required and not _allows_null(self.schema, sub)
            sub_path: Path = (*path, "properties", name, *(("anyOf", 0) if wrap else ()))
            value = self._node(sub, sub_path)
            if wrap:
                value = {"anyOf": [value, {"type": "null"}]}
                made.append(name)
            converted[name] = value
        out.update(properties=converted, required=list(properties), additionalProperties=False)
        if made:
            self.nullable[path] = frozenset(made)


def _resolve(root: Mapping[str, Any], ref: object) -> dict[str, Any] | None:
    """The ``$defs`` entry ``ref`` points to; ``None`` for any other kind of reference."""
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return None
    target = (root.get("$defs") or {}).get(ref.removeprefix("#/$defs/"))
    return target if isinstance(target, dict) else None


def _allows_null(root: Mapping[str, Any], node: Any, depth: int = 0) -> bool:
    if not isinstance(node, dict) or depth > 32:
        return True
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if ("const" in node and node["const"] is None) or None in (node.get("enum") or ()):
        return True
    for key in ("anyOf", "oneOf"):
        if any(_allows_null(root, branch, depth + 1) for branch in node.get(key) or ()):
            return True
    if "$ref" in node:
        target = _resolve(root, node["$ref"])
        return target is None or _allows_null(root, target, depth + 1)
    # A schema with no type at all (``{}``) allows anything, null included.
    return not node.keys() & (_TYPED | {"oneOf", "allOf", "not"})


# --- replies ---------------------------------------------------------------------------------


def drop_nulls(value: Any, strict: StrictSchema) -> Any:
    """``value`` without the nulls of properties that :func:`strict_schema` made nullable."""
    if not strict.nullable:
        return value
    return _Dropper(strict).walk(value, strict.schema, ())


class _Dropper:
    def __init__(self, strict: StrictSchema) -> None:
        self.root = strict.schema
        self.nullable = strict.nullable

    def walk(self, value: Any, node: Any, path: Path, depth: int = 0) -> Any:
        if not isinstance(node, dict) or depth > 64:
            return value
        if "$ref" in node:
            name = str(node["$ref"]).removeprefix("#/$defs/")
            return self.walk(value, _resolve(self.root, node["$ref"]), ("$defs", name), depth + 1)
        if "anyOf" in node:
            for i, branch in enumerate(node["anyOf"]):
                if self._fits(value, branch):
                    return self.walk(value, branch, (*path, "anyOf", i), depth + 1)
            return value
        if isinstance(value, dict) and isinstance(node.get("properties"), dict):
            props = node["properties"]
            drop = self.nullable.get(path, frozenset())
            return {
                key: self.walk(item, props[key], (*path, "properties", key), depth + 1)
                if key in props
                else item
                for key, item in value.items()
                if not (item is None and key in drop)
            }
        if isinstance(value, list) and "items" in node:
            items = node["items"]
            return [self.walk(v, items, (*path, "items"), depth + 1) for v in value]
        return value

    def _fits(self, value: Any, branch: Any) -> bool:
        """Whether ``branch`` of an ``anyOf`` is the one to walk ``value`` with."""
        if isinstance(branch, dict) and "$ref" in branch:
            branch = _resolve(self.root, branch["$ref"])
        if not isinstance(branch, dict):
            return False
        if isinstance(value, dict):
            props = branch.get("properties")
            return isinstance(props, dict) and value.keys() <= props.keys()
        if isinstance(value, list):
            return "items" in branch
        return False


def unfenced_json(text: str) -> Any:
    """The JSON value of a reply (inside a Markdown fence or not); ``ValueError`` if none."""
    fenced = _FENCE.match(text)
    return json.loads(fenced.group(1) if fenced else text)
