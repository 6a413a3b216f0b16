"""A corpus of JSON Schemas (Draft 2020-12) for testing structured output.

Every schema in ``SCHEMAS`` is satisfiable by a short JSON value (its example in ``EXAMPLES`` is
under 150 characters written compactly), so that even a tiny random model constrained by a
grammar can finish it within about 200 tokens: free strings carry ``maxLength <= 20``, arrays
carry ``maxItems <= 3`` and nesting stays shallow. Schemas with many properties make most of them
small (booleans, short integer ranges, short enums) and leave most of them optional.

``LARGE`` holds five schemas with 20-30 properties each, for compile-time benchmarks (they are in
``SCHEMAS`` too). ``PATHOLOGICAL`` is one schema that is adversarial for grammar compilers: a
backend should either compile it or fail quickly with a typed error, never hang.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """A closed object schema; ``required`` defaults to every property."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def text(max_length: int = 20, min_length: int | None = None) -> Schema:
    """A free string, bounded."""
    schema: Schema = {"type": "string", "maxLength": max_length}
    if min_length is not None:
        schema["minLength"] = min_length
    return schema


def irange(minimum: int, maximum: int) -> Schema:
    """An integer in ``[minimum, maximum]``."""
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def enum(*values: Any) -> Schema:
    """A string enum (or a mixed one, if the values are not all strings)."""
    if all(isinstance(v, str) for v in values):
        return {"type": "string", "enum": list(values)}
    return {"enum": list(values)}


BOOL: Schema = {"type": "boolean"}
NULL: Schema = {"type": "null"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or null, written the way pydantic writes ``X | None``."""
    return {"anyOf": [schema, NULL]}


def array(items: Schema, min_items: int = 1, max_items: int = 3) -> Schema:
    """A small bounded array."""
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


# ---------------------------------------------------------------------------------------------
# The corpus: (id, schema, example). Kept together so that each example sits beside its schema.
# ---------------------------------------------------------------------------------------------

_ENTRIES: list[tuple[str, Schema, object]] = [
    # --- enums -----------------------------------------------------------------------------
    ("enum_str", obj({"color": enum("red", "green", "blue")}), {"color": "green"}),
    (
        "enum_int",
        obj({"level": {"type": "integer", "enum": [1, 2, 3, 5, 8]}}),
        {"level": 5},
    ),
    (
        "enum_mixed",
        obj({"value": enum("low", "high", 0, None)}),
        {"value": None},
    ),
    (
        "enum_two_fields",
        obj(
            {
                "size": enum("S", "M", "L", "XL"),
                "priority": {"type": "integer", "enum": [0, 1, 2]},
            }
        ),
        {"size": "XL", "priority": 2},
    ),
    (
        "enum_in_array",
        obj({"days": array(enum("mon", "tue", "wed", "thu", "fri"))}),
        {"days": ["mon", "fri"]},
    ),
    ("top_enum", {"enum": ["yes", "no", "maybe"]}, "maybe"),
    ("top_enum_int", {"type": "integer", "enum": [10, 20, 30]}, 20),
    # --- nesting ---------------------------------------------------------------------------
    (
        "nest_2",
        obj({"name": text(), "address": obj({"city": text(), "zip": text(10)})}),
        {"name": "Ann", "address": {"city": "Oslo", "zip": "0150"}},
    ),
    (
        "nest_3",
        obj(
            {
                "company": obj(
                    {
                        "name": text(),
                        "ceo": obj({"name": text(), "contact": obj({"phone": text(15)})}),
                    }
                )
            }
        ),
        {"company": {"name": "Acme", "ceo": {"name": "Bo", "contact": {"phone": "555-0100"}}}},
    ),
    (
        "nest_3_bools",
        obj({"a": obj({"b": obj({"c": BOOL, "d": irange(0, 9)})})}),
        {"a": {"b": {"c": True, "d": 3}}},
    ),
    (
        "nest_array_objects",
        obj(
            {
                "order_id": irange(1, 9999),
                "lines": array(
                    obj(
                        {
                            "sku": text(8),
                            "qty": irange(1, 9),
                            "price": obj({"cents": irange(0, 9999)}),
                        }
                    ),
                    1,
                    2,
                ),
            }
        ),
        {"order_id": 42, "lines": [{"sku": "AB12", "qty": 2, "price": {"cents": 499}}]},
    ),
    # --- optional fields -------------------------------------------------------------------
    (
        "opt_all",
        obj({"nickname": text(), "age": irange(0, 120), "vip": BOOL}, required=[]),
        {},
    ),
    (
        "opt_some",
        obj(
            {"title": text(), "subtitle": text(), "pages": irange(1, 999), "draft": BOOL},
            required=["title", "pages"],
        ),
        {"title": "Dune", "pages": 412, "draft": False},
    ),
    (
        "opt_nested",
        obj(
            {
                "id": irange(1, 100),
                "meta": obj({"note": text(), "pinned": BOOL}, required=["pinned"]),
            },
            required=["id"],
        ),
        {"id": 7, "meta": {"pinned": True}},
    ),
    # --- arrays ----------------------------------------------------------------------------
    ("arr_tags", obj({"tags": array(text(10), 1, 3)}), {"tags": ["a", "b"]}),
    (
        "arr_ints",
        obj({"scores": array(irange(0, 100), 2, 3)}),
        {"scores": [90, 75]},
    ),
    (
        "arr_objects",
        obj({"people": array(obj({"name": text(12), "age": irange(0, 99)}), 1, 2)}),
        {"people": [{"name": "Li", "age": 30}, {"name": "Sam", "age": 8}]},
    ),
    (
        "arr_exact",
        obj({"pair": array({"type": "number"}, 2, 2)}),
        {"pair": [1.5, -2]},
    ),
    (
        "arr_optional_empty",
        obj({"items": array(BOOL, 0, 3), "count": irange(0, 3)}),
        {"items": [], "count": 0},
    ),
    # --- anyOf -----------------------------------------------------------------------------
    ("nullable_str", obj({"middle_name": nullable(text())}), {"middle_name": None}),
    (
        "nullable_int",
        obj({"parent_id": nullable(irange(1, 1000)), "name": text()}),
        {"parent_id": 12, "name": "leaf"},
    ),
    (
        "anyof_str_int",
        obj({"key": {"anyOf": [text(10), {"type": "integer"}]}}),
        {"key": "abc"},
    ),
    (
        "anyof_objects",
        obj(
            {
                "shape": {
                    "anyOf": [
                        obj({"kind": {"const": "circle"}, "r": irange(1, 100)}),
                        obj({"kind": {"const": "rect"}, "w": irange(1, 100), "h": irange(1, 100)}),
                    ]
                }
            }
        ),
        {"shape": {"kind": "rect", "w": 3, "h": 4}},
    ),
    ("top_anyof", {"anyOf": [{"type": "integer"}, BOOL]}, True),
    (
        "anyof_array_or_null",
        obj({"tags": nullable(array(text(8), 1, 3))}),
        {"tags": ["x"]},
    ),
    # --- $ref / $defs ----------------------------------------------------------------------
    (
        "ref_point_twice",
        {
            "$defs": {"Point": obj({"x": irange(-100, 100), "y": irange(-100, 100)})},
            **obj({"start": {"$ref": "#/$defs/Point"}, "end": {"$ref": "#/$defs/Point"}}),
        },
        {"start": {"x": 0, "y": 0}, "end": {"x": 3, "y": -4}},
    ),
    (
        "ref_address_twice",
        {
            "$defs": {"Address": obj({"street": text(), "city": text(12)})},
            **obj(
                {
                    "billing": {"$ref": "#/$defs/Address"},
                    "shipping": {"$ref": "#/$defs/Address"},
                },
                required=["billing"],
            ),
        },
        {"billing": {"street": "1 Main St", "city": "Rome"}},
    ),
    (
        "ref_enum",
        {
            "$defs": {"Status": enum("open", "closed", "blocked")},
            **obj(
                {
                    "status": {"$ref": "#/$defs/Status"},
                    "history": array({"$ref": "#/$defs/Status"}, 1, 3),
                }
            ),
        },
        {"status": "closed", "history": ["open", "closed"]},
    ),
    (
        "ref_chain",
        {
            "$defs": {
                "Currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "Money": obj(
                    {"amount": irange(0, 10000), "currency": {"$ref": "#/$defs/Currency"}}
                ),
            },
            **obj({"price": {"$ref": "#/$defs/Money"}, "tax": {"$ref": "#/$defs/Money"}}),
        },
        {"price": {"amount": 100, "currency": "EUR"}, "tax": {"amount": 20, "currency": "EUR"}},
    ),
    (
        "ref_nullable",
        {
            "$defs": {"User": obj({"name": text(12), "admin": BOOL})},
            **obj(
                {"owner": {"$ref": "#/$defs/User"}, "reviewer": nullable({"$ref": "#/$defs/User"})}
            ),
        },
        {"owner": {"name": "ada", "admin": True}, "reviewer": None},
    ),
    (
        "ref_array_items",
        {
            "$defs": {"Tag": obj({"k": text(8), "v": text(8)})},
            "type": "array",
            "items": {"$ref": "#/$defs/Tag"},
            "minItems": 1,
            "maxItems": 2,
        },
        [{"k": "env", "v": "prod"}],
    ),
    # --- string formats --------------------------------------------------------------------
    (
        "fmt_date",
        obj({"birthday": {"type": "string", "format": "date"}}),
        {"birthday": "1990-07-15"},
    ),
    (
        "fmt_datetime",
        obj({"created_at": {"type": "string", "format": "date-time"}}),
        {"created_at": "2024-01-31T12:30:00Z"},
    ),
    (
        "fmt_email",
        obj({"email": {"type": "string", "format": "email"}}),
        {"email": "ann@example.com"},
    ),
    (
        "fmt_uuid",
        obj({"id": {"type": "string", "format": "uuid"}}),
        {"id": "123e4567-e89b-12d3-a456-426614174000"},
    ),
    ("fmt_ipv4", obj({"ip": {"type": "string", "format": "ipv4"}}), {"ip": "192.168.0.1"}),
    ("fmt_time", obj({"opens": {"type": "string", "format": "time"}}), {"opens": "09:30:00Z"}),
    (
        "fmt_mixed",
        obj(
            {
                "day": {"type": "string", "format": "date"},
                "at": {"type": "string", "format": "time"},
                "host": {"type": "string", "format": "ipv4"},
                "contact": {"type": "string", "format": "email"},
            },
            required=["day", "host"],
        ),
        {"day": "2025-02-28", "host": "10.0.0.7"},
    ),
    # --- numbers ---------------------------------------------------------------------------
    (
        "num_unit_interval",
        obj({"confidence": {"type": "number", "minimum": 0, "maximum": 1}}),
        {"confidence": 0.87},
    ),
    (
        "num_exclusive",
        obj({"percent": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100}}),
        {"percent": 42.5},
    ),
    ("int_range", obj({"rating": irange(1, 10)}), {"rating": 7}),
    ("int_negative", obj({"offset": irange(-50, -1)}), {"offset": -12}),
    (
        "int_exclusive",
        obj({"n": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 1000}}),
        {"n": 999},
    ),
    (
        "num_mixed_bounds",
        obj(
            {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
                "alt": {"type": "integer", "minimum": 0},
            },
            required=["lat", "lon"],
        ),
        {"lat": 59.91, "lon": 10.75, "alt": 23},
    ),
    # --- strings ---------------------------------------------------------------------------
    ("str_lengths", obj({"username": text(12, 3)}), {"username": "ada_l"}),
    ("str_exact_len", obj({"pin": text(4, 4)}), {"pin": "0042"}),
    (
        "str_several",
        obj({"first": text(15, 1), "last": text(15, 1), "bio": text(20)}, required=["first"]),
        {"first": "Grace", "last": "Hopper"},
    ),
    # --- patterns --------------------------------------------------------------------------
    (
        "pat_currency",
        obj({"code": {"type": "string", "pattern": "^[A-Z]{3}$"}}),
        {"code": "NOK"},
    ),
    (
        "pat_zip",
        obj({"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}),
        {"zip": "90210"},
    ),
    (
        "pat_sku",
        obj({"sku": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"}, "qty": irange(1, 9)}),
        {"sku": "AB-123", "qty": 1},
    ),
    (
        "pat_hex_color",
        obj({"color": {"type": "string", "pattern": "^#[0-9a-f]{6}$"}}),
        {"color": "#1a2b3c"},
    ),
    # --- const -----------------------------------------------------------------------------
    ("const_str", obj({"version": {"const": "v1"}, "ok": BOOL}), {"version": "v1", "ok": True}),
    ("const_int", obj({"schema": {"const": 2}, "name": text(10)}), {"schema": 2, "name": "x"}),
    (
        "const_typed",
        obj({"type": {"type": "string", "const": "event"}, "seq": irange(0, 99)}),
        {"type": "event", "seq": 1},
    ),
    # --- booleans --------------------------------------------------------------------------
    ("bool_single", obj({"done": BOOL}), {"done": False}),
    (
        "bool_flags",
        obj({"read": BOOL, "write": BOOL, "exec": BOOL}),
        {"read": True, "write": False, "exec": False},
    ),
    (
        "bool_optional",
        obj({"enabled": BOOL, "beta": BOOL, "debug": BOOL}, required=["enabled"]),
        {"enabled": True},
    ),
    # --- additionalProperties: false (every obj() sets it; these make it the point) ---------
    (
        "closed_nested",
        obj({"outer": obj({"inner": obj({"v": irange(0, 9)})}), "tag": enum("a", "b")}),
        {"outer": {"inner": {"v": 1}}, "tag": "a"},
    ),
    (
        "closed_optional",
        obj({"name": text(10), "n": irange(0, 9)}, required=["name"]),
        {"name": "only"},
    ),
    # --- top-level primitives and arrays ---------------------------------------------------
    ("top_integer", {"type": "integer"}, 17),
    ("top_number", {"type": "number", "minimum": 0, "maximum": 10}, 3.25),
    ("top_boolean", BOOL, True),
    ("top_string", text(10, 1), "hello"),
    ("top_null_or_int", nullable({"type": "integer"}), None),
    ("top_array_ints", array(irange(0, 9), 1, 3), [1, 2, 3]),
    (
        "top_array_objects",
        array(obj({"id": irange(1, 99), "ok": BOOL}), 1, 2),
        [{"id": 1, "ok": True}, {"id": 2, "ok": False}],
    ),
    # --- realistic tool-call arguments -----------------------------------------------------
    (
        "tool_weather",
        obj(
            {"city": text(), "unit": enum("celsius", "fahrenheit"), "days": irange(1, 7)},
            required=["city"],
        ),
        {"city": "Paris", "unit": "celsius"},
    ),
    (
        "tool_search",
        obj(
            {
                "query": text(20, 1),
                "limit": irange(1, 10),
                "sort": enum("relevance", "date"),
                "filters": obj(
                    {"lang": enum("en", "de", "fr"), "since": {"type": "string", "format": "date"}},
                    required=[],
                ),
            },
            required=["query"],
        ),
        {"query": "rust async", "limit": 5, "filters": {"lang": "en"}},
    ),
    (
        "classify",
        obj(
            {
                "label": enum("positive", "negative", "neutral"),
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "reason": nullable(text()),
            },
            required=["label", "score"],
        ),
        {"label": "positive", "score": 0.9},
    ),
]


# --- medium and large objects ----------------------------------------------------------------

_MEDIUM_DEVICE = obj(
    {
        "name": text(12),
        "kind": enum("phone", "tablet", "laptop"),
        "os": enum("ios", "android", "linux", "windows"),
        "ram_gb": irange(1, 64),
        "cores": irange(1, 32),
        "wifi": BOOL,
        "bt": BOOL,
        "nfc": BOOL,
        "year": irange(2000, 2030),
        "ip": {"type": "string", "format": "ipv4"},
    },
    required=["name", "kind"],
)

_MEDIUM_RECORD = obj(
    {
        "id": irange(1, 99999),
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "active": BOOL,
        "tier": {"type": "integer", "enum": [1, 2, 3]},
        "region": enum("eu", "us", "apac"),
        "owner": nullable(text(12)),
        "created": {"type": "string", "format": "date"},
        "score": {"type": "number", "minimum": 0, "maximum": 100},
        "tags": array(text(6), 0, 3),
        "flags": obj({"a": BOOL, "b": BOOL}, required=[]),
        "note": text(20),
        "rank": irange(0, 9),
    },
    required=["id", "code", "active"],
)

_LARGE_FLAGS = obj(
    {
        name: BOOL
        for name in [
            "email_alerts",
            "sms_alerts",
            "push_alerts",
            "dark_mode",
            "compact_view",
            "autoplay",
            "captions",
            "two_factor",
            "beta",
            "public_profile",
            "show_email",
            "show_phone",
            "newsletter",
            "tracking",
            "analytics",
            "crash_reports",
            "sync",
            "offline_mode",
            "auto_update",
            "sounds",
            "vibration",
            "location",
            "contacts",
            "calendar",
        ]
    },
    required=["dark_mode", "beta"],
)

_LARGE_SETTINGS = obj(
    {
        "theme": enum("light", "dark", "auto"),
        "font_size": irange(8, 32),
        "lang": enum("en", "de", "fr", "es", "ja"),
        "tz_offset": irange(-12, 14),
        "autosave": BOOL,
        "autosave_min": irange(1, 60),
        "tab_width": {"type": "integer", "enum": [2, 4, 8]},
        "wrap": BOOL,
        "line_numbers": BOOL,
        "minimap": BOOL,
        "spell": BOOL,
        "cursor": enum("line", "block", "underline"),
        "blink": BOOL,
        "zoom": {"type": "number", "minimum": 0.5, "maximum": 3},
        "ruler": irange(0, 200),
        "eol": enum("lf", "crlf"),
        "trim": BOOL,
        "final_newline": BOOL,
        "format_on_save": BOOL,
        "telemetry": BOOL,
        "history": irange(0, 1000),
        "profile": nullable(text(12)),
    },
    required=["theme", "font_size", "autosave"],
)

_LARGE_PROFILE = obj(
    {
        "user_id": irange(1, 999999),
        "handle": {"type": "string", "pattern": "^[a-z]{3,10}$"},
        "display": text(16),
        "email": {"type": "string", "format": "email"},
        "born": {"type": "string", "format": "date"},
        "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
        "verified": BOOL,
        "premium": BOOL,
        "age": irange(13, 120),
        "gender": enum("f", "m", "x"),
        "followers": irange(0, 100000),
        "following": irange(0, 10000),
        "posts": irange(0, 10000),
        "status": enum("online", "away", "offline"),
        "bio": nullable(text(20)),
        "website": text(20),
        "pronouns": enum("she", "he", "they"),
        "locale": enum("en-US", "en-GB", "de-DE"),
        "private": BOOL,
        "bot": BOOL,
        "level": irange(1, 100),
        "badges": array(enum("early", "mod", "staff"), 0, 3),
        "last_ip": {"type": "string", "format": "ipv4"},
        "session": {"type": "string", "format": "uuid"},
        "joined": {"type": "string", "format": "date-time"},
        "karma": irange(-1000, 1000),
    },
    required=["user_id", "handle", "verified"],
)

_LARGE_METRICS = obj(
    {f"m{i:02d}": irange(0, 9) for i in range(20)},
    required=["m00", "m01", "m02", "m03", "m04"],
)

_LARGE_FORM = {
    "$defs": {"YesNo": enum("yes", "no")},
    **obj(
        {
            "q01": {"$ref": "#/$defs/YesNo"},
            "q02": {"$ref": "#/$defs/YesNo"},
            "q03": {"$ref": "#/$defs/YesNo"},
            "q04": {"$ref": "#/$defs/YesNo"},
            "q05": {"$ref": "#/$defs/YesNo"},
            "q06": irange(1, 5),
            "q07": irange(1, 5),
            "q08": irange(1, 5),
            "q09": irange(1, 5),
            "q10": irange(1, 5),
            "q11": BOOL,
            "q12": BOOL,
            "q13": BOOL,
            "q14": BOOL,
            "q15": BOOL,
            "q16": nullable(text(10)),
            "q17": nullable(irange(0, 10)),
            "q18": enum("a", "b", "c", "d"),
            "q19": enum("a", "b", "c", "d"),
            "q20": enum("a", "b", "c", "d"),
            "q21": {"const": "done"},
            "q22": {"type": "string", "format": "date"},
            "q23": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "q24": array(irange(0, 9), 1, 3),
            "q25": {"type": "string", "pattern": "^[0-9]{4}$"},
            "q26": text(8),
            "q27": obj({"ok": BOOL}),
            "q28": {"anyOf": [irange(0, 9), enum("none")]},
            "q29": BOOL,
            "q30": irange(0, 1),
        },
        required=["q01", "q06", "q11", "q21"],
    ),
}

_ENTRIES += [
    ("med_device", _MEDIUM_DEVICE, {"name": "pixel", "kind": "phone", "ram_gb": 8, "wifi": True}),
    (
        "med_record",
        _MEDIUM_RECORD,
        {"id": 3, "code": "ABC", "active": True, "tier": 2, "owner": None, "tags": ["x"]},
    ),
    ("large_flags", _LARGE_FLAGS, {"dark_mode": True, "beta": False, "sync": True}),
    ("large_settings", _LARGE_SETTINGS, {"theme": "dark", "font_size": 14, "autosave": True}),
    ("large_profile", _LARGE_PROFILE, {"user_id": 1, "handle": "ada", "verified": True}),
    ("large_metrics", _LARGE_METRICS, {"m00": 1, "m01": 2, "m02": 3, "m03": 4, "m04": 5}),
    ("large_form", _LARGE_FORM, {"q01": "yes", "q06": 4, "q11": False, "q21": "done"}),
]

SCHEMAS: list[tuple[str, dict[str, Any]]] = [(sid, schema) for sid, schema, _ in _ENTRIES]
"""``(id, schema)`` pairs; ids are short and unique."""

EXAMPLES: dict[str, object] = {sid: example for sid, _, example in _ENTRIES}
"""One hand-written valid example per id in ``SCHEMAS``, each under 150 characters compactly."""

LARGE: list[tuple[str, dict[str, Any]]] = [
    ("large_flags", _LARGE_FLAGS),
    ("large_settings", _LARGE_SETTINGS),
    ("large_profile", _LARGE_PROFILE),
    ("large_metrics", _LARGE_METRICS),
    ("large_form", _LARGE_FORM),
]
"""Five schemas with 20-30 properties each, for compile-time benchmarks (also in ``SCHEMAS``)."""

PATHOLOGICAL: dict[str, Any] = obj(
    {
        # Ambiguous alternations under stars, then "a" followed by exactly 24 more symbols from
        # {a, b}: a deterministic automaton for the tail needs 2**24 states, and the final
        # bounded repeat {1000} multiplies a naive expansion further.
        "s": {
            "type": "string",
            "pattern": "^(a|aa)*(b|bb)*[ab]*a[ab]{24}(c|cc){1000}$",
        },
    }
)
"""One schema adversarial for grammar compilers: expect it to compile or fail fast, typed."""
