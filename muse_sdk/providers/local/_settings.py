"""The local provider's profile settings; plain pydantic, importable without torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from muse_sdk.core.settings import ProviderSettings
from muse_sdk.providers.local._device import DEVICE_PATTERN

__all__ = ["DEFAULT_MAX_TOKENS", "LocalSettings"]

#: New tokens generated when a call sets no ``max_tokens``.
DEFAULT_MAX_TOKENS = 50


class LocalSettings(ProviderSettings):
    """Settings of the local provider (``[profiles.x]`` keys or ``muse.load`` keywords).

    - ``device``: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    - ``dtype``: ``auto`` is float16 on CUDA and float32 on CPU.
    - ``truncate``: ``error`` raises when prompt + ``max_tokens`` exceeds the context;
      ``left`` drops the prompt's oldest tokens instead.
    - ``batch_size``: prompts per unit of work in ``batch()`` (on the transformers backend,
      per forward pass).
    - ``max_batch``: rows (choices) the engine decodes together; more calls wait their turn,
      first come first served. ``None`` sizes it from the KV cache memory (at most 16).
    - ``backend``: ``auto`` runs GPT-2 checkpoints on the lean engine (continuous batching)
      and anything else with transformers; ``lean`` or ``transformers`` forces one.
    - ``revision`` / ``trust_remote_code``: passed to ``from_pretrained`` for hub models.
    """

    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    truncate: Literal["error", "left"] = "error"
    batch_size: int = Field(default=8, ge=1, le=1024)
    max_batch: int | None = Field(default=None, ge=1, le=1024)
    backend: Literal["auto", "lean", "transformers"] = "auto"
    revision: str | None = None
    trust_remote_code: bool = False

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        value = value.strip().lower()
        if not DEVICE_PATTERN.fullmatch(value):
            raise ValueError(f"must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")
        return value
