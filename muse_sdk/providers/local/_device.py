"""Importing the backend and choosing a device and dtype, with errors that say what to do.

Nothing here imports torch at module level: the config layer imports this package to read
``LocalSettings``, and that must work without the ``local`` extra.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

from muse_sdk.errors import BackendUnavailableError

__all__ = ["DEVICE_PATTERN", "INSTALL_HINT", "import_backend", "resolve_device", "resolve_dtype"]

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
INSTALL_HINT = "pip install 'muse-sdk[local]'"


def import_backend() -> tuple[ModuleType, ModuleType]:
    """Import torch and transformers, or explain how to install them."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the local provider needs torch and transformers ({exc.name or exc} is missing): "
            f"install them with {INSTALL_HINT}"
        ) from exc
    return torch, transformers


def _cuda_count(torch: ModuleType) -> int:
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def resolve_device(torch: ModuleType, device: str) -> Any:
    """Turn ``auto | cpu | cuda | cuda:N`` into a ``torch.device`` that exists here."""
    if device == "cpu":
        return torch.device("cpu")
    count = _cuda_count(torch)
    if device == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if count else torch.device("cpu")
    index = int(device.partition(":")[2] or 0)
    if count == 0:
        built = getattr(torch.version, "cuda", None)
        why = (
            "this torch build has no CUDA support (a CPU-only wheel)"
            if built is None
            else f"torch was built for CUDA {built} but no GPU or driver is visible"
        )
        raise BackendUnavailableError(
            f"device={device!r} was asked for, but {why}. Use device='cpu', or device='auto' "
            "to take a GPU when there is one; for a GPU, install a CUDA build of torch "
            "(https://pytorch.org/get-started/locally/)."
        )
    if index >= count:
        raise BackendUnavailableError(
            f"device={device!r} was asked for, but only {count} CUDA device(s) are visible "
            f"(cuda:0 to cuda:{count - 1}); check CUDA_VISIBLE_DEVICES or use device='auto'."
        )
    return torch.device("cuda", index)


def resolve_dtype(torch: ModuleType, dtype: str, device: Any) -> Any:
    """Turn ``auto | float32 | float16 | bfloat16`` into a ``torch.dtype`` for ``device``.

    ``auto`` is float16 on CUDA (half the memory, tensor cores) and float32 on CPU, where
    float16 matmuls are slow or missing.
    """
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    chosen = getattr(torch, dtype)
    if chosen is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise BackendUnavailableError(
            f"dtype='bfloat16' was asked for, but {device} does not support it (bfloat16 needs "
            "an Ampere or newer GPU); use dtype='float16' or 'auto'."
        )
    return chosen
