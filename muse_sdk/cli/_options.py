"""Options shared by ``generate``, ``code`` and ``batch``, and how they become SDK calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from muse_sdk.cli._errors import UsageError

if TYPE_CHECKING:
    from muse_sdk.config import Config
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
    "Truncate",
    "Verbose",
    "check_prompt",
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
Truncate = Annotated[
    Literal["left", "error"] | None,
    typer.Option(
        "--truncate",
        help="A prompt too long for the context: 'left' drops its oldest tokens, 'error' fails "
        "(default: the profile's, else error). Local models only.",
        show_default=False,
    ),
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

    def checked(self) -> dict[str, Any]:
        """:meth:`params`, validated by the SDK's own rules; no model is needed for that."""
        from muse_sdk.core.types import GenerationParams

        params = self.params()
        GenerationParams.build(**params)  # raises InvalidParameterError (exit code 2)
        return params


def check_prompt(prompt: str) -> str:
    """Validate a prompt as every generator would (empty, lone surrogates) before loading one."""
    from muse_sdk.core.types import normalize_prompt

    normalize_prompt(prompt)
    return prompt


def load_generator(
    ctx: typer.Context, model: str | None, profile: str | None, truncate: str | None = None
) -> Generator:
    """``muse.load()`` with the command line's model, profile, ``--config`` and ``--truncate``."""
    import muse_sdk as muse
    from muse_sdk.config import Config

    config = Config.coerce((ctx.obj or {}).get("config"))
    if truncate is None:
        return muse.load(model, profile=profile, config=config)
    _check_truncate(config, model, profile)
    return muse.load(model, profile=profile, config=config, truncate=truncate)


def _check_truncate(config: Config, model: str | None, profile: str | None) -> None:
    """``--truncate`` sets a provider setting: say so plainly when the provider has none."""
    from muse_sdk.registry import get_provider

    _, table = config.table_for(model, profile)
    provider = table.get("provider")
    if isinstance(provider, str) and "truncate" not in get_provider(provider).Settings.model_fields:
        raise UsageError(
            f"--truncate applies to models that run locally (provider 'local'); provider "
            f"{provider!r} has no 'truncate' setting: leave --truncate out"
        )
