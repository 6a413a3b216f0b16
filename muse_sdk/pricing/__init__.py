"""What a call costs: a dated table of list prices, overridable in config or code.

Prices are USD per million tokens. The shipped table (``prices.json``) carries the date it was
checked (:data:`PRICES_DATE`); a price that has changed since can be overridden with
:func:`set_price` or a ``[prices."provider:model"]`` table in muse.toml.

A model that is in neither has no price, and its cost is ``None``: never a guess. The one
exception is the ``local`` provider, which runs on your own hardware and so has no per-token bill:
its price is zero (electricity and hardware are not counted).

A dated snapshot such as ``gpt-4o-2024-08-06`` or ``gpt-4-0613`` costs what its base name costs,
unless the table lists the snapshot itself; any other unknown suffix is unknown.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from muse_sdk.errors import InvalidConfigError, InvalidParameterError

if TYPE_CHECKING:
    from muse_sdk.core.types import Usage

    #: The date the shipped table was checked (YYYY-MM-DD); read from ``prices.json`` on use.
    PRICES_DATE: str

__all__ = [
    "PRICES_DATE",
    "Price",
    "clear_prices",
    "cost_of",
    "price_for",
    "prices_from_config",
    "set_price",
    "total_cost",
]

#: Runs on the user's hardware: no per-token bill.
FREE_PROVIDERS = frozenset({"local"})
_TOKENS_PER_UNIT = 1_000_000
# "gpt-4o-2024-08-06" (newer snapshots) or "gpt-4-0613" (older ones): base name, then the date.
_SNAPSHOT = re.compile(r"^(?P<base>.+?)-(?:(?P<iso>\d{4}-\d{2}-\d{2})|(?P<mm>\d{2})(?P<dd>\d{2}))$")


@dataclass(frozen=True)
class Price:
    """A model's price in USD per million tokens, for prompt (input) and reply (output)."""

    input: float
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """The cost in USD of that many prompt and completion tokens."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / _TOKENS_PER_UNIT


@dataclass(frozen=True)
class _Table:
    date: str
    prices: dict[str, Price]


_lock = threading.Lock()
_table: _Table | None = None
_overrides: dict[str, Price] = {}


def _shipped() -> _Table:
    """The shipped table, read on first use: importing this module stays cheap."""
    global _table
    with _lock:
        if _table is None:
            text = resources.files(__package__).joinpath("prices.json").read_text("utf-8")
            raw = json.loads(text)
            prices = {
                spec: Price(float(entry["input"]), float(entry["output"]))
                for spec, entry in raw["models"].items()
            }
            _table = _Table(date=str(raw["date"]), prices=prices)
        return _table


def __getattr__(name: str) -> Any:
    if name == "PRICES_DATE":
        return _shipped().date
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _key(spec: str) -> str:
    """``provider:model``; a bare model name means OpenAI."""
    provider, sep, model = spec.partition(":")
    if not sep:
        provider, model = "openai", spec
    return f"{provider.strip().lower()}:{model.strip()}"


def _is_date(match: re.Match[str]) -> bool:
    try:
        if match["iso"]:
            datetime.date.fromisoformat(match["iso"])
        else:
            datetime.date(2000, int(match["mm"]), int(match["dd"]))  # a leap year: 0229 is valid
    except ValueError:
        return False
    return True


def price_for(provider: str, model: str) -> Price | None:
    """The price of ``provider:model``, or ``None`` when it is unknown.

    Looks in the overrides (:func:`set_price`, config), then the shipped table; a dated snapshot
    falls back to its base name. The ``local`` provider is free unless overridden.
    """
    key = _key(f"{provider}:{model}")
    candidates = [key]
    match = _SNAPSHOT.match(key)
    if match and _is_date(match):
        candidates.append(match["base"])  # the specific entry first: snapshots can differ
    table = _shipped().prices
    for candidate in candidates:
        price = _overrides.get(candidate)
        if price is None:
            price = table.get(candidate)
        if price is not None:
            return price
    if key.partition(":")[0] in FREE_PROVIDERS:
        return Price(0.0, 0.0)
    return None


def _check(value: object) -> float | None:
    """``value`` as a float if it is a finite, non-negative number, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _check_spec(spec: object) -> str | None:
    if not isinstance(spec, str):
        return None
    key = _key(spec)
    provider, _, model = key.partition(":")
    return key if provider and model else None


def set_price(spec: str, *, input: float, output: float) -> None:
    """Set the price of ``spec`` ("provider:model"; a bare model means openai) for this process.

    ``input`` and ``output`` are USD per million tokens; an override wins over the shipped table.
    """
    key = _check_spec(spec)
    if key is None:
        raise InvalidParameterError("spec", f"expected 'provider:model', got {spec!r}")
    checked = {}
    for field, value in (("input", input), ("output", output)):
        number = _check(value)
        if number is None:
            raise InvalidParameterError(
                field, f"a price is a finite number of USD per 1M tokens, >= 0; got {value!r}"
            )
        checked[field] = number
    _overrides[key] = Price(checked["input"], checked["output"])


def clear_prices() -> None:
    """Forget every override (:func:`set_price` and config); the shipped table stays."""
    _overrides.clear()


def prices_from_config(table: Mapping[str, Mapping[str, Any]]) -> None:
    """Register a config's ``[prices."provider:model"]`` tables (``input`` and ``output``).

    Every entry is checked before any is registered: a bad one raises
    :class:`~muse_sdk.errors.InvalidConfigError` and registers none.
    """
    if not isinstance(table, Mapping):
        raise InvalidConfigError(
            'expected tables such as [prices."openai:my-model"], each with input and output',
            field="prices",
        )
    parsed: dict[str, Price] = {}
    for spec, entry in table.items():
        field = f"prices.{spec}"
        key = _check_spec(spec)
        if key is None:
            raise InvalidConfigError("the name must be 'provider:model'", field=field)
        if not isinstance(entry, Mapping):
            raise InvalidConfigError(
                "expected a table with input and output (USD per 1M tokens)", field=field
            )
        extra = sorted(set(entry) - {"input", "output"})
        if extra:
            raise InvalidConfigError(
                f"unknown key(s) {', '.join(map(repr, extra))}: a price has input and output",
                field=field,
            )
        numbers = {}
        for part in ("input", "output"):
            # Both are required: half a price would make every cost a guess.
            number = _check(entry.get(part))
            if number is None:
                raise InvalidConfigError(
                    f"{part} must be a finite number of USD per 1M tokens, >= 0; "
                    f"got {entry.get(part)!r}",
                    field=field,
                )
            numbers[part] = number
        parsed[key] = Price(numbers["input"], numbers["output"])
    _overrides.update(parsed)


def cost_of(provider: str, model: str, usage: Usage) -> float | None:
    """The USD cost of ``usage`` on ``provider:model``, or ``None`` when its price is unknown."""
    price = price_for(provider, model)
    if price is None:
        return None
    return price.cost(usage.prompt_tokens, usage.completion_tokens)


def total_cost(pieces: Iterable[tuple[str, str, Usage]]) -> float | None:
    """The summed cost of ``(provider, model, usage)`` pieces (0.0 for none).

    ``None`` when any piece that used tokens has no price: a partial sum would understate the
    bill. A piece with no tokens costs nothing, priced or not.
    """
    total = 0.0
    for provider, model, usage in pieces:
        if usage.prompt_tokens == 0 and usage.completion_tokens == 0:
            continue
        cost = cost_of(provider, model, usage)
        if cost is None:
            return None
        total += cost
    return total
