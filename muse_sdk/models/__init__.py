"""Model checkpoints shipped inside the package (``muse-tiny``), and the names muse knows.

Everything here is stdlib only: ``muse models``, the config layer's hints and the local
provider's did-you-mean read it without importing torch, transformers or huggingface_hub.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "HUB_MODELS",
    "SHIPPED_MODELS",
    "cached_hub_models",
    "cached_snapshot",
    "hf_hub_cache",
    "hf_offline",
    "known_model_names",
    "shipped_model_dir",
]

#: Names that ``local:NAME`` resolves to a directory next to this file.
SHIPPED_MODELS = ("muse-tiny",)
#: Public GPT-2 checkpoints on the Hugging Face hub that the local provider runs.
HUB_MODELS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2")

_TRUE = {"1", "ON", "YES", "TRUE"}


def shipped_model_dir(name: str) -> Path | None:
    """The directory of a shipped checkpoint, or ``None`` when ``name`` is not one."""
    if name not in SHIPPED_MODELS:
        return None
    return Path(__file__).resolve().parent / name


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache directory, read from the environment now.

    The same rules as ``huggingface_hub.constants.HF_HUB_CACHE``, which are frozen when that
    package is imported; reading them here avoids the import and follows later changes.
    """
    home = os.getenv("HF_HOME") or os.path.join(
        os.getenv("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "huggingface",
    )
    home = os.path.expandvars(os.path.expanduser(home))
    legacy = os.getenv("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(os.getenv("HF_HUB_CACHE") or legacy)))


def hf_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) forbids using the network."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE


def _repo_dir(repo_id: str) -> Path:
    return hf_hub_cache() / "--".join(["models", *repo_id.split("/")])


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot of a hub model that holds a ``config.json``, or ``None``.

    ``revision`` is a branch or tag (resolved through the cache's ``refs``) or a commit hash;
    ``None`` means ``main``, as for ``from_pretrained``. Never touches the network.
    """
    repo = _repo_dir(repo_id)
    revision = revision or "main"
    try:
        commit = (repo / "refs" / revision).read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        commit = revision  # a commit hash has no ref file
    snapshot = repo / "snapshots" / commit
    return snapshot if (snapshot / "config.json").is_file() else None


def cached_hub_models() -> list[str]:
    """Hub model ids with a ``config.json`` in the local cache, sorted; ``[]`` without a cache.

    Lists directories only (no hashing, no network), so it stays fast on a large cache.
    """
    try:
        entries = list(hf_hub_cache().iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        kind, _, rest = entry.name.partition("--")
        if kind != "models" or not rest:
            continue
        if any((snapshot / "config.json").is_file() for snapshot in _snapshots(entry)):
            found.append(rest.replace("--", "/"))
    return sorted(found)


def _snapshots(repo: Path) -> list[Path]:
    try:
        return list((repo / "snapshots").iterdir())
    except OSError:
        return []


def known_model_names() -> list[str]:
    """The ``local:`` model names muse knows: shipped, GPT-2 hub ids, then the HF cache's."""
    builtin = [*SHIPPED_MODELS, *HUB_MODELS]
    return [*builtin, *(name for name in cached_hub_models() if name not in builtin)]
