"""Finding, loading and sharing model weights.

A model is loaded once per (source, revision, device, dtype, backend) per process and shared by
every generator that asks for it; ``release`` frees it when the last one closes. A GPT-2
checkpoint that the lean path can run exactly (``_gpt2.check_checkpoint``) loads as
:class:`~muse_sdk.providers.local._gpt2.LeanGPT2` with its own tokenizer and gets an
:class:`~muse_sdk.providers.local._engine.Engine`, without importing transformers; anything
else loads with transformers. Hub failures become
:class:`~muse_sdk.errors.BackendUnavailableError` that says how to get the weights, or
:class:`~muse_sdk.errors.UnknownModelError` when the hub has no model of that name.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from muse_sdk.errors import BackendUnavailableError, MuseError
from muse_sdk.models import (
    SHIPPED_MODELS,
    cached_snapshot,
    hf_hub_cache,
    hf_offline,
    shipped_model_dir,
)
from muse_sdk.providers.local._decode import TokenText
from muse_sdk.providers.local._device import INSTALL_HINT, import_backend
from muse_sdk.providers.local._hub import download_command, hub_reachable, not_on_hub_error

__all__ = [
    "CacheKey",
    "LoadedModel",
    "acquire",
    "cached_keys",
    "import_torch",
    "lean_directory",
    "release",
    "resolve_source",
]

#: (source, revision, device, dtype, trust_remote_code, backend setting)
CacheKey = tuple[str, str | None, str, str, bool, str]
#: The KV cache an automatically sized engine may preallocate (``max_batch=None``).
_AUTO_CACHE_BYTES = 4 * 2**30
_AUTO_MAX_BATCH = 16
_cache: dict[CacheKey, LoadedModel] = {}
_cache_lock = threading.Lock()
_reference_lock = threading.Lock()  # loading a reference takes seconds: not under _cache_lock


@dataclass(eq=False)
class LoadedModel:
    """A model with its tokenizer, shared by generators; ``lock`` serialises its use.

    On the lean path the engine holds ``lock`` for each step, so a holder pauses the engine.
    """

    model: Any
    tokenizer: Any
    token_text: TokenText
    context_length: int
    eos_ids: frozenset[int]
    pad_id: int
    #: The checkpoint's own anti-repetition defaults, used when a call leaves them unset.
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    refs: int = 0
    #: The decode loop (lean path); ``None`` on the transformers path.
    engine: Any = None
    #: Where the weights are, for :meth:`reference` (lean path).
    directory: Path | None = None
    _reference: Any = None

    def reference(self, device: Any, dtype: Any) -> Any:
        """The transformers model of the same weights (lean path: loaded on first use).

        Generation never uses it; it is there for callers that want ``GPT2LMHeadModel``
        itself, and for the tests that check the lean path against it.
        """
        if self.engine is None:
            return self.model
        with _reference_lock:
            if self._reference is None:
                _, transformers = import_backend()
                auto = transformers.AutoModelForCausalLM
                model = auto.from_pretrained(str(self.directory), dtype=dtype)
                self._reference = model.to(device).eval()
            return self._reference


def resolve_source(model: str) -> tuple[str, bool]:
    """``muse-tiny`` → the shipped directory; a directory stays one; else a hub id.

    Returns the source and whether it is a local directory.
    """
    shipped = shipped_model_dir(model)
    if shipped is not None:
        if not (shipped / "config.json").is_file():
            raise BackendUnavailableError(
                f"the shipped model {model!r} is missing from {shipped}: reinstall muse-sdk, "
                "or retrain it with scripts/train_muse_tiny.py"
            )
        return str(shipped), True
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    # A hub id is "name" or "org/name"; anything else was meant as a directory.
    if model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model:
        raise BackendUnavailableError(
            f"model directory {model!r} does not exist; give a directory holding config.json "
            f"and weights, a Hugging Face hub id such as 'gpt2', or one of {SHIPPED_MODELS}"
        )
    return model, False


def _hub_error(source: str, exc: BaseException) -> MuseError:
    """One line for a hub model that failed to load although the hub looked reachable."""
    if _caused_by(exc, "RepositoryNotFoundError") and not _caused_by(exc, "GatedRepoError"):
        return not_on_hub_error(source)
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return BackendUnavailableError(
        f"could not load {source!r} from the Hugging Face hub ({first_line}): download it "
        f"with `{download_command(source)}`, or save_pretrained() it to a directory and use "
        "'local:/path/to/dir'; 'local:muse-tiny' ships with muse-sdk and needs no download"
    )


def _caused_by(exc: BaseException, name: str) -> bool:
    """Whether an exception of class ``name`` is in ``exc``'s cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if any(cls.__name__ == name for cls in type(current).__mro__):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _from_pretrained(
    loader: Any, source: str, is_dir: bool, **kwargs: Any
) -> Any:  # the transformers Auto* class and the object it returns are untyped
    """Load from the cache first (no network round trip), then from the hub if it answers."""
    if is_dir:
        return loader.from_pretrained(source, **kwargs)
    try:
        return loader.from_pretrained(source, local_files_only=True, **kwargs)
    except OSError:
        if hf_offline() or not hub_reachable():
            raise
    return loader.from_pretrained(source, **kwargs)


@contextmanager
def _quiet_hub() -> Iterator[None]:
    """Silence huggingface_hub's retry warnings: a failure ends in one error line instead."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def _no_progress_bars(transformers: ModuleType) -> Iterator[None]:
    """Hide transformers' "Loading weights" bar for the load, then restore the user's choice."""
    bars = transformers.utils.logging
    enabled = bars.is_progress_bar_enabled()
    if enabled:
        bars.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            bars.enable_progress_bar()


def import_torch() -> ModuleType:
    """Import torch (not transformers), or explain how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the local provider needs torch ({exc.name or exc} is missing): install it with "
            f"{INSTALL_HINT}"
        ) from exc
    return torch


def lean_directory(source: str, revision: str | None, backend: str) -> Path | None:
    """The checkpoint directory when the lean path runs it, else ``None`` (transformers).

    Reads config.json and lists files only. ``backend="lean"`` raises instead of falling back.
    """
    if backend == "transformers":
        return None
    from muse_sdk.providers.local._gpt2 import UnsupportedCheckpointError, check_checkpoint

    path = Path(source)
    directory = path if path.is_dir() else cached_snapshot(source, revision)
    try:
        if directory is None:
            raise UnsupportedCheckpointError(f"{source!r} is not downloaded yet")
        check_checkpoint(directory)
    except UnsupportedCheckpointError as exc:
        if backend == "lean":
            raise BackendUnavailableError(
                f"backend='lean' cannot run {source!r} ({exc}); use backend='auto'"
            ) from exc
        return None
    return directory


def _load_lean(
    directory: Path, key: CacheKey, device: Any, dtype: Any, max_batch: int | None
) -> LoadedModel:
    from muse_sdk.providers.local._engine import Engine
    from muse_sdk.providers.local._gpt2 import LeanGPT2
    from muse_sdk.providers.local._lean_tokenizer import LeanTokenizer

    tokenizer = LeanTokenizer(directory)
    model = LeanGPT2.from_pretrained(directory, device=device, dtype=dtype)
    loaded = _wrap(model, tokenizer)
    loaded.directory = directory
    if max_batch is None:  # as many rows as a bounded cache holds, at most 16
        shape = model.shape
        per_slot = shape.n_layer * 2 * shape.n_embd * shape.n_positions * dtype.itemsize
        max_batch = max(1, min(_AUTO_MAX_BATCH, _AUTO_CACHE_BYTES // per_slot))
    loaded.engine = Engine(
        model,
        loaded.token_text,
        loaded.eos_ids,
        max_batch=max_batch,
        lock=loaded.lock,
        name=Path(key[0]).name or key[0],
    )
    return loaded


def _load(key: CacheKey, device: Any, dtype: Any, max_batch: int | None) -> LoadedModel:
    source, revision, _, _, trust, backend = key
    directory = lean_directory(source, revision, backend)
    if directory is not None:
        return _load_lean(directory, key, device, dtype, max_batch)
    _, transformers = import_backend()
    is_dir = Path(source).is_dir()
    options: dict[str, Any] = {"revision": revision, "trust_remote_code": trust}
    if not is_dir:  # the cache that check_hub_model read, even if HF_* changed after import
        options["cache_dir"] = str(hf_hub_cache())
    try:
        with _no_progress_bars(transformers), _quiet_hub():
            tokenizer = _from_pretrained(transformers.AutoTokenizer, source, is_dir, **options)
            model = _from_pretrained(
                transformers.AutoModelForCausalLM, source, is_dir, dtype=dtype, **options
            )
    except (OSError, ValueError) as exc:
        if is_dir:
            raise BackendUnavailableError(
                f"{source!r} does not hold a loadable causal language model "
                f"(config.json, weights, tokenizer files): {exc}"
            ) from exc
        raise _hub_error(source, exc) from exc
    model.to(device).eval()
    return _wrap(model, tokenizer)


def _wrap(model: Any, tokenizer: Any) -> LoadedModel:
    config, defaults = model.config, model.generation_config
    eos = defaults.eos_token_id
    eos = config.eos_token_id if eos is None else eos
    eos = tokenizer.eos_token_id if eos is None else eos
    eos_ids = frozenset(eos if isinstance(eos, list) else [] if eos is None else [eos])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)
    context = getattr(config, "n_positions", None) or getattr(
        config, "max_position_embeddings", None
    )
    context_length = int(context or tokenizer.model_max_length)
    # The provider checks prompt length itself (ContextLengthExceededError or truncate="left"),
    # so the tokenizer's own "sequence is longer than ..." warning would only be noise.
    tokenizer.model_max_length = sys.maxsize
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        token_text=TokenText(tokenizer),
        context_length=context_length,
        eos_ids=eos_ids,
        pad_id=int(pad),
        repetition_penalty=float(getattr(defaults, "repetition_penalty", None) or 1.0),
        no_repeat_ngram_size=int(getattr(defaults, "no_repeat_ngram_size", None) or 0),
    )


def acquire(key: CacheKey, device: Any, dtype: Any, max_batch: int | None = None) -> LoadedModel:
    """The shared model for ``key``, loading it on first use; pair with :func:`release`.

    ``max_batch`` sizes the engine of a model loaded now (the first generator's setting).
    """
    with _cache_lock:
        loaded = _cache.get(key)
        if loaded is None:
            loaded = _cache[key] = _load(key, device, dtype, max_batch)
        loaded.refs += 1
        return loaded


def release(torch: ModuleType, key: CacheKey) -> None:
    """Drop one reference; the last one frees the model (and cached CUDA memory)."""
    with _cache_lock:
        loaded = _cache.get(key)
        if loaded is None:
            return
        loaded.refs -= 1
        if loaded.refs > 0:
            return
        del _cache[key]
        on_cuda = str(key[2]).startswith("cuda")
    if loaded.engine is not None:
        loaded.engine.close()  # its thread ends, and with it the last hold on the weights
    del loaded
    if on_cuda and torch.cuda.is_available():
        torch.cuda.empty_cache()


def cached_keys() -> list[CacheKey]:
    """The keys of the models loaded now (for tests and diagnostics)."""
    with _cache_lock:
        return list(_cache)
