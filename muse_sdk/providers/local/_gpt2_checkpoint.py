"""Reading a Hugging Face GPT-2 directory for the lean path, and refusing what it cannot run.

Nothing here imports torch or transformers at module level: :func:`check_checkpoint` reads
config.json and lists files, so a caller can choose between the lean path and transformers
before paying for either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from muse_sdk.errors import BackendUnavailableError

__all__ = [
    "GPT2Shape",
    "UnsupportedCheckpointError",
    "check_checkpoint",
    "read_json",
    "read_shape",
    "weight_files",
]

# Activations whose maths the lean path reproduces, as F.gelu's ``approximate`` argument:
# the tanh family are one formula computed by different kernels.
_ACTIVATIONS = {
    "gelu_new": "tanh",
    "gelu_pytorch_tanh": "tanh",
    "gelu_fast": "tanh",
    "gelu": "none",
}


class UnsupportedCheckpointError(BackendUnavailableError):
    """The lean GPT-2 path cannot run this checkpoint exactly; load it with transformers."""


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or ``{}`` when the file does not exist."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise UnsupportedCheckpointError(f"{path} does not hold a JSON object")
    return data


@dataclass(frozen=True)
class GPT2Shape:
    """The hyper-parameters of one GPT-2 checkpoint."""

    n_layer: int
    n_head: int
    n_embd: int
    n_inner: int
    n_positions: int
    vocab_size: int
    eps: float
    approximate: str  # F.gelu's ``approximate``: "tanh" (gelu_new) or "none" (gelu)
    scales: tuple[float, ...]  # the attention scale of each layer

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.n_embd // self.n_head


def read_shape(config: dict[str, Any], where: Path) -> GPT2Shape:
    """Validate a GPT-2 config.json; anything the lean path would run differently is refused."""
    if config.get("model_type") != "gpt2":
        raise UnsupportedCheckpointError(
            f"{where} holds a {config.get('model_type')!r} model; the lean path runs gpt2 only"
        )
    if config.get("add_cross_attention"):
        raise UnsupportedCheckpointError(f"{where}: add_cross_attention=True is not supported")
    activation = config.get("activation_function", "gelu_new")
    if activation not in _ACTIVATIONS:
        raise UnsupportedCheckpointError(
            f"{where}: activation_function={activation!r} is not supported by the lean path"
        )
    n_embd, n_head = int(config.get("n_embd", 768)), int(config.get("n_head", 12))
    if n_embd % n_head:
        raise UnsupportedCheckpointError(f"{where}: n_embd {n_embd} is not a multiple of n_head")
    n_layer = int(config.get("n_layer", 12))
    base = (n_embd // n_head) ** -0.5 if config.get("scale_attn_weights", True) else 1.0
    by_layer = bool(config.get("scale_attn_by_inverse_layer_idx", False))
    # reorder_and_upcast_attn only reorders the scaling and runs the softmax in float32, as SDPA
    # does anyway; transformers' own SDPA path ignores the flag too, so it is accepted.
    return GPT2Shape(
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        n_inner=int(config.get("n_inner") or 4 * n_embd),
        n_positions=int(config.get("n_positions") or config.get("n_ctx") or 1024),
        vocab_size=int(config.get("vocab_size", 50257)),
        eps=float(config.get("layer_norm_epsilon", 1e-5)),
        approximate=_ACTIVATIONS[activation],
        scales=tuple(base / (i + 1) if by_layer else base for i in range(n_layer)),
    )


def weight_files(root: Path) -> list[Path]:
    """The safetensors files of a checkpoint: one file, or the shards its index names."""
    index = root / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        return [root / shard for shard in shards]
    single = root / "model.safetensors"
    if single.is_file():
        return [single]
    raise UnsupportedCheckpointError(
        f"{root} has no model.safetensors (nor a sharded index); the lean path reads "
        "safetensors only"
    )


def check_checkpoint(directory: str | Path) -> None:
    """Raise :class:`UnsupportedCheckpointError` unless the lean path can load ``directory``.

    Reads config.json and lists files only (no weights), so it is cheap to call before
    choosing between the lean path and transformers.
    """
    root = Path(directory)
    read_shape(read_json(root / "config.json"), root)
    weight_files(root)
    if not (root / "tokenizer.json").is_file():
        raise UnsupportedCheckpointError(f"{root} has no tokenizer.json")
