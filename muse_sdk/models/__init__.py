"""Model checkpoints shipped inside the package (``muse-tiny``), and the names muse knows."""

from __future__ import annotations

from pathlib import Path

__all__ = ["HUB_MODELS", "SHIPPED_MODELS", "known_model_names", "shipped_model_dir"]

#: Names that ``local:NAME`` resolves to a directory next to this file.
SHIPPED_MODELS = ("muse-tiny",)
#: Public GPT-2 checkpoints on the Hugging Face hub that the local provider runs.
HUB_MODELS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2")


def shipped_model_dir(name: str) -> Path | None:
    """The directory of a shipped checkpoint, or ``None`` when ``name`` is not one."""
    if name not in SHIPPED_MODELS:
        return None
    return Path(__file__).resolve().parent / name


def known_model_names() -> list[str]:
    """The ``local:`` model names muse knows: shipped ones, then GPT-2 hub ids."""
    return [*SHIPPED_MODELS, *HUB_MODELS]
