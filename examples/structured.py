"""Typed output and tool calls (runs offline on the fake provider; swap in any model).

python examples/structured.py
"""

import json

from pydantic import BaseModel, Field

import muse_sdk as muse


class Recipe(BaseModel):
    """A short recipe."""

    title: str
    minutes: int = Field(gt=0)
    ingredients: list[str] = Field(min_length=1)


def convert(amount: float, unit: str) -> str:
    """Convert an amount to metric.

    Args:
        amount: How much.
        unit: "cup" or "oz".
    """
    grams = {"cup": 240.0, "oz": 28.35}[unit] * amount
    return f"{grams:.0f} g"


replies = [
    '{"title": "Pancakes", "minutes": "soon", "ingredients": []}',  # invalid: repaired below
    '{"title": "Pancakes", "minutes": 20, "ingredients": ["flour", "milk", "eggs"]}',
    json.dumps({"name": "convert", "arguments": {"amount": 1.5, "unit": "cup"}}),
    "Use 360 g of flour.",
]
gen = muse.load("fake:script", responses=replies)

recipe = gen.generate("A pancake recipe as JSON.", schema=Recipe, repair_attempts=1).parsed
print(f"{recipe.title}: {recipe.minutes} min, {', '.join(recipe.ingredients)}")

run = muse.run_tools(
    gen, [{"role": "user", "content": "How much is 1.5 cups of flour?"}], tools=[convert]
)
print(run.text, f"({run.turns} turns)")
