"""The structured-output corpus itself: valid schemas, unique ids, short valid examples."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import jsonschema
import pytest

from tests.structured.corpus import EXAMPLES, LARGE, PATHOLOGICAL, SCHEMAS

Validator = jsonschema.Draft202012Validator
IDS = [sid for sid, _ in SCHEMAS]

# RFC 3339 shapes; jsonschema checks "date-time" and "time" only with optional extras installed.
DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
TIME = re.compile(r"\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _format_checker() -> jsonschema.FormatChecker:
    """The draft's own format checker, plus "date-time" and "time" where it lacks them."""
    checker = jsonschema.FormatChecker(formats=())
    checker.checkers = dict(Validator.FORMAT_CHECKER.checkers)
    if "date-time" not in checker.checkers:

        @checker.checks("date-time", raises=ValueError)
        def _date_time(value: object) -> bool:
            if not isinstance(value, str):
                return True
            return bool(DATE_TIME.fullmatch(value)) and bool(dt.datetime.fromisoformat(value))

    if "time" not in checker.checkers:

        @checker.checks("time", raises=ValueError)
        def _time(value: object) -> bool:
            if not isinstance(value, str):
                return True
            return bool(TIME.fullmatch(value)) and bool(dt.time.fromisoformat(value))

    return checker


FORMAT_CHECKER = _format_checker()


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def test_ids_unique_and_enough() -> None:
    assert len(SCHEMAS) >= 50
    assert len(IDS) == len(set(IDS))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]{1,31}", sid) for sid in IDS)


def test_one_example_per_schema() -> None:
    assert set(EXAMPLES) == set(IDS)


@pytest.mark.parametrize(("sid", "schema"), SCHEMAS, ids=IDS)
def test_schema_is_valid(sid: str, schema: dict[str, Any]) -> None:
    Validator.check_schema(schema)


@pytest.mark.parametrize(("sid", "schema"), SCHEMAS, ids=IDS)
def test_example_validates_and_is_short(sid: str, schema: dict[str, Any]) -> None:
    example = EXAMPLES[sid]
    Validator(schema, format_checker=Validator.FORMAT_CHECKER).validate(example)
    Validator(schema, format_checker=FORMAT_CHECKER).validate(example)
    assert len(compact(example)) < 150, compact(example)


def _strings(schema: object) -> list[dict[str, Any]]:
    """Every subschema of type string, anywhere in ``schema``."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "string":
            found.append(schema)
        for value in schema.values():
            found.extend(_strings(value))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(_strings(value))
    return found


def _arrays(schema: object) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "array":
            found.append(schema)
        for value in schema.values():
            found.extend(_arrays(value))
    elif isinstance(schema, list):
        for value in schema:
            found.extend(_arrays(value))
    return found


@pytest.mark.parametrize(("sid", "schema"), SCHEMAS, ids=IDS)
def test_strings_and_arrays_are_bounded(sid: str, schema: dict[str, Any]) -> None:
    for string in _strings(schema):
        bounded = {"enum", "const", "format", "pattern"} & set(string)
        assert bounded or string.get("maxLength", 99) <= 20, string
    for array in _arrays(schema):
        assert array.get("maxItems", 99) <= 3, array


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("date", "2024-02-29", "2023-02-29"),
        ("date-time", "2024-01-31T12:30:00Z", "2024-01-31 noon"),
        ("time", "09:30:00Z", "25:00:00Z"),
        ("email", "a@b.co", "not-an-email"),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
        ("ipv4", "10.0.0.1", "10.0.0.256"),
    ],
)
def test_format_checking_is_live(fmt: str, good: str, bad: str) -> None:
    validator = Validator({"type": "string", "format": fmt}, format_checker=FORMAT_CHECKER)
    assert validator.is_valid(good)
    assert not validator.is_valid(bad)


def test_large_schemas() -> None:
    assert len(LARGE) == 5
    by_id = dict(SCHEMAS)
    for sid, schema in LARGE:
        Validator.check_schema(schema)
        assert 20 <= len(schema["properties"]) <= 30, sid
        assert by_id[sid] is schema


def test_pathological_schema_is_valid() -> None:
    start = time.monotonic()
    Validator.check_schema(PATHOLOGICAL)
    Validator(PATHOLOGICAL).validate({"s": "a" * 25 + "c" * 1000})
    assert time.monotonic() - start < 5
