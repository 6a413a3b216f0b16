"""The price table: dated, overridable, and ``None`` (never a guess) for an unknown model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources

import pytest

from muse_sdk import pricing
from muse_sdk.core.types import Usage
from muse_sdk.errors import InvalidConfigError, InvalidParameterError
from muse_sdk.pricing import Price, cost_of, price_for, set_price, total_cost


@pytest.fixture(autouse=True)
def _no_overrides() -> Iterator[None]:
    pricing.clear_prices()
    yield
    pricing.clear_prices()


def test_the_table_ships_with_a_date_and_the_main_models() -> None:
    raw = json.loads(resources.files("muse_sdk.pricing").joinpath("prices.json").read_text())
    assert raw["unit"] == "USD per 1M tokens"
    assert raw["date"] == pricing.PRICES_DATE
    assert len(pricing.PRICES_DATE) == 10 and pricing.PRICES_DATE[4] == "-"
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini"):
        assert price_for("openai", model) is not None, model
    for spec, entry in raw["models"].items():
        assert spec.startswith("openai:")
        assert set(entry) == {"input", "output"}
        assert all(math.isfinite(v) and v >= 0 for v in entry.values())


def test_cost_is_tokens_times_price_per_million() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=500)
    assert price_for("openai", "gpt-4o") == Price(2.5, 10.0)
    assert cost_of("openai", "gpt-4o", usage) == pytest.approx((1000 * 2.5 + 500 * 10.0) / 1e6)
    assert cost_of("openai", "gpt-4o", Usage()) == 0.0


def test_unknown_models_have_no_price() -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=10)
    for model in ("gpt-4o-extra", "my-finetune", "gpt-4o-2024-13-45", "gpt-4o-1399", "gpt4o"):
        assert price_for("openai", model) is None, model
        assert cost_of("openai", model, usage) is None
    assert price_for("azure", "gpt-4o") is None  # another provider: another bill
    assert price_for("fake", "echo") is None


def test_dated_snapshots_cost_their_base_model() -> None:
    assert price_for("openai", "gpt-4o-2024-08-06") == price_for("openai", "gpt-4o")
    assert price_for("openai", "gpt-4o-mini-2024-07-18") == price_for("openai", "gpt-4o-mini")
    assert price_for("openai", "gpt-3.5-turbo-0125") == price_for("openai", "gpt-3.5-turbo")
    # A snapshot the table lists itself keeps its own price.
    assert price_for("openai", "gpt-4o-2024-05-13") == Price(5.0, 15.0)


def test_local_models_are_free() -> None:
    assert price_for("local", "muse-tiny") == Price(0.0, 0.0)
    assert cost_of("local", "gpt2", Usage(prompt_tokens=100, completion_tokens=100)) == 0.0


def test_overrides_win_and_extend() -> None:
    set_price("openai:gpt-4o", input=1.0, output=2.0)
    set_price("my-finetune", input=3.0, output=4.0)  # a bare model means openai
    set_price("local:big", input=0.5, output=0.5)
    assert price_for("openai", "gpt-4o") == Price(1.0, 2.0)
    assert price_for("openai", "gpt-4o-2024-08-06") == Price(1.0, 2.0)
    assert price_for("openai", "my-finetune") == Price(3.0, 4.0)
    assert price_for("local", "big") == Price(0.5, 0.5)
    pricing.clear_prices()
    assert price_for("openai", "gpt-4o") == Price(2.5, 10.0)
    assert price_for("openai", "my-finetune") is None


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan, "1", True, None])
def test_set_price_rejects_bad_numbers(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="input"):
        set_price("openai:x", input=bad, output=1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="spec"):
        set_price(":x", input=1.0, output=1.0)


def test_prices_from_config() -> None:
    pricing.prices_from_config({"openai:my-finetune": {"input": 1, "output": 2.5}})
    assert price_for("openai", "my-finetune") == Price(1.0, 2.5)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"openai:a": {"input": 1.0}}, "output must be"),
        ({"openai:a": {"input": -1.0, "output": 1.0}}, "input must be"),
        ({"openai:a": {"input": 1.0, "output": 1.0, "cached": 0.5}}, "unknown key"),
        ({"openai:a": 3.0}, "expected a table"),
        ({"openai:": {"input": 1.0, "output": 1.0}}, "provider:model"),
    ],
)
def test_prices_from_config_rejects_bad_tables(table: dict[str, object], message: str) -> None:
    good = {"openai:good": {"input": 1.0, "output": 1.0}}
    with pytest.raises(InvalidConfigError, match=message) as info:
        pricing.prices_from_config({**good, **table})  # type: ignore[dict-item]
    assert info.value.field is not None and info.value.field.startswith("prices.")
    assert price_for("openai", "good") is None  # all or nothing


def test_total_cost() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=0)
    pieces = [("openai", "gpt-4o", usage), ("local", "gpt2", usage)]
    assert total_cost(pieces) == pytest.approx(2.5)
    assert total_cost([]) == 0.0
    assert total_cost([*pieces, ("openai", "mystery", Usage())]) == pytest.approx(2.5)
    assert total_cost([*pieces, ("openai", "mystery", usage)]) is None


def test_import_does_not_read_the_table() -> None:
    code = (
        "import muse_sdk\n"
        "import muse_sdk.pricing as p\n"
        "assert p._table is None\n"
        "assert p.price_for('openai', 'gpt-4o') is not None and p._table is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
