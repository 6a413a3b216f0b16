"""Model checkpoints shipped inside the package (``muse-tiny``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED_MODELS", "shipped_model_dir"]

#: Names that ``local:NAME`` resolves to a directory next to this file.
SHIPPED_MODELS = ("muse-tiny",)


def shipped_model_dir(name: str) -> Path | None:
    """The directory of a shipped checkpoint, or ``None`` when ``name`` is not one."""
    if name not in SHIPPED_MODELS:
        return None
    return Path(__file__).resolve().parent / name
