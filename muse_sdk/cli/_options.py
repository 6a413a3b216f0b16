"""Options shared by ``generate``, ``code`` and ``batch``, and how they become SDK calls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from muse_sdk.core.generator import Generator

__all__ = [
    "GenerationOptions",
    "MaxTokens",
    "Model",
    "N",
    "ProfileName",
    "Seed",
    "Stop",
    "Temperature",
    "TopK",
    "TopP",
    "Verbose",
    "load_generator",
]

_GEN = "Generation"

Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="'provider:model' (e.g. fake:echo, local:muse-tiny, openai:gpt-4o-mini) or a "
        "profile name. Default: the configured default.",
        show_default=False,
    ),
]
ProfileName = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="A profile from muse.toml.", show_default=False),
]
MaxTokens = Annotated[
    int | None,
    typer.Option("--max-tokens", min=1, help="New tokens to generate.", rich_help_panel=_GEN),
]
Temperature = Annotated[
    float | None,
    typer.Option("--temperature", "-t", min=0, max=2, help="0 = greedy.", rich_help_panel=_GEN),
]
TopK = Annotated[
    int | None,
    typer.Option(
        "--top-k", min=1, help="Sample from the k likeliest tokens.", rich_help_panel=_GEN
    ),
]
TopP = Annotated[
    float | None,
    typer.Option("--top-p", min=0, max=1, help="Nucleus sampling mass.", rich_help_panel=_GEN),
]
N = Annotated[
    int | None,
    typer.Option("--n", "-n", min=1, help="How many continuations.", rich_help_panel=_GEN),
]
Seed = Annotated[
    int | None, typer.Option("--seed", help="Random seed, where supported.", rich_help_panel=_GEN)
]
Stop = Annotated[
    list[str] | None,
    typer.Option("--stop", help="Stop sequence (repeatable, up to 4).", rich_help_panel=_GEN),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Print model, usage and latency on stderr."),
]


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """The generation options of one command line; ``None`` means "the profile's default"."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    n: int | None = None
    seed: int | None = None
    stop: list[str] | None = None

    def params(self) -> dict[str, Any]:
        """Only the options given, so that a profile's defaults still apply to the rest."""
        values = {name: getattr(self, name) for name in self.__slots__}
        return {name: value for name, value in values.items() if value not in (None, [])}


def load_generator(ctx: typer.Context, model: str | None, profile: str | None) -> Generator:
    """``muse.load()`` with the command line's model, profile and ``--config`` file."""
    import muse_sdk as muse

    config: Path | None = (ctx.obj or {}).get("config")
    return muse.load(model, profile=profile, config=config)
