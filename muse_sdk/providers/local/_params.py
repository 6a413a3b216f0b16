"""The transformers path's parameters: ``model.generate`` keywords, padding, torch's errors.

The engine reads the same keywords (``_sampling.SamplingParams.from_kwargs``), so a parameter
means the same on both paths.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from muse_sdk.core.types import GenerationParams
from muse_sdk.errors import BackendUnavailableError, ProviderError
from muse_sdk.providers.local._loading import LoadedModel
from muse_sdk.providers.local._settings import DEFAULT_MAX_TOKENS

__all__ = ["SAMPLING_LOCK", "backend_errors", "generation_kwargs", "left_pad"]

# torch samples from one global generator per device, so a seeded call must not interleave with
# any other sampling call, whichever model that one runs.
SAMPLING_LOCK = threading.Lock()


def _samples(params: GenerationParams) -> bool:
    """Sample when temperature > 0, or when it is unset but top_p/top_k ask for sampling."""
    if params.temperature is not None:
        return params.temperature > 0
    return params.top_p is not None or params.top_k is not None


def generation_kwargs(params: GenerationParams, loaded: LoadedModel) -> dict[str, Any]:
    """Map the common parameters onto ``model.generate`` keywords.

    Every knob is set explicitly, so a checkpoint's ``generation_config.json`` (sampling
    defaults, ``max_length``) never changes what a call means; only its anti-repetition
    settings fill in for ``repetition_penalty`` and ``no_repeat_ngram_size`` left unset.
    """
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_tokens or DEFAULT_MAX_TOKENS,
        "do_sample": _samples(params),
        "num_beams": 1,
        "num_return_sequences": 1,  # rows are repeated n times by the caller instead
        "repetition_penalty": params.repetition_penalty or loaded.repetition_penalty,
        "no_repeat_ngram_size": params.no_repeat_ngram_size or loaded.no_repeat_ngram_size,
        "eos_token_id": sorted(loaded.eos_ids) or None,
        "pad_token_id": loaded.pad_id,
    }
    if kwargs["do_sample"]:
        kwargs["temperature"] = params.temperature or 1.0
        kwargs["top_k"] = params.top_k or 0  # 0 turns top-k off
        kwargs["top_p"] = params.top_p or 1.0
    return kwargs


@contextmanager
def backend_errors(torch: ModuleType) -> Iterator[None]:
    """The one place where torch's failures become MuseErrors."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        raise BackendUnavailableError(
            f"the GPU ran out of memory ({exc}); lower max_batch, batch_size, max_tokens or n, "
            "or use dtype='float16'"
        ) from exc
    except RuntimeError as exc:
        raise ProviderError(f"the local model failed: {exc}", provider="local") from exc


def left_pad(torch: ModuleType, rows: Sequence[list[int]], pad_id: int, device: Any) -> Any:
    """Left-pad rows into ids and attention mask: GPT-2 continues from the right end."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)
