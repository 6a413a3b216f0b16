"""Batch execution: bounded concurrency, input order kept, nothing lost when an item fails."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, overload

from muse_sdk.core.settings import CallOptions
from muse_sdk.core.types import GenerationParams, GenerationResult, PromptInput, normalize_prompt
from muse_sdk.errors import (
    BatchError,
    InvalidParameterError,
    MuseError,
    RefusalError,
    StructuredOutputError,
)

if TYPE_CHECKING:
    from muse_sdk.core.generator import Generator, Request

__all__ = ["BatchItem", "BatchResult", "OnResult", "run_batch", "run_batch_async"]

BatchItem = GenerationResult | Exception
_Outcomes = list[tuple[int, BatchItem]]
_Unit = list[tuple[int, "Request"]]
#: Called in the caller's thread (or event loop) as each item finishes: ``(index, item)``.
OnResult = Callable[[int, BatchItem], None]


class BatchResult(Sequence[BatchItem]):
    """The outcome of ``batch()``: a result or an exception per prompt, in input order."""

    def __init__(self, items: Sequence[BatchItem]) -> None:
        self._items = list(items)

    @overload
    def __getitem__(self, index: int) -> BatchItem: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[BatchItem]: ...
    def __getitem__(self, index: int | slice) -> BatchItem | Sequence[BatchItem]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def results(self) -> list[GenerationResult | None]:
        """Per item: the result, or ``None`` where the item failed."""
        return [item if isinstance(item, GenerationResult) else None for item in self._items]

    @property
    def errors(self) -> dict[int, Exception]:
        """The failed items' exceptions, by index."""
        return {i: item for i, item in enumerate(self._items) if isinstance(item, Exception)}

    @property
    def texts(self) -> list[str | None]:
        """Per item: the first choice's text, or ``None`` where the item failed."""
        return [r.text if r is not None else None for r in self.results]

    @property
    def succeeded(self) -> int:
        """How many items have a result."""
        return len(self) - self.failed

    @property
    def failed(self) -> int:
        """How many items failed."""
        return len(self.errors)

    @property
    def retried(self) -> int:
        """How many successful items needed more than one attempt."""
        return sum(1 for r in self.results if r is not None and r.attempts > 1)

    @property
    def ok(self) -> bool:
        """True when every item succeeded."""
        return not self.errors

    def raise_for_errors(self) -> list[GenerationResult]:
        """Return every result, or raise :class:`BatchError` carrying the finished ones."""
        if self.errors:
            raise BatchError(self.results, self.errors)
        return [item for item in self._items if isinstance(item, GenerationResult)]

    def summary(self) -> str:
        """One line: how many succeeded, were retried, failed."""
        return (
            f"{len(self)} items: {self.succeeded} succeeded ({self.retried} retried), "
            f"{self.failed} failed"
        )

    def __repr__(self) -> str:
        return f"BatchResult({self.summary()})"


#: A batch's validated parameters, its provider options, and its ``schema``/``tools``/...
Params = tuple[GenerationParams, CallOptions, dict[str, Any]]


def _plan(
    gen: Generator, prompts: Sequence[PromptInput], params: Params, max_concurrency: int
) -> tuple[list[BatchItem | None], list[_Unit]]:
    """Validate every prompt (bad ones fail alone) and group the rest into units of work."""
    if (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or max_concurrency < 1
    ):
        raise InvalidParameterError(
            "max_concurrency", f"must be an integer >= 1, got {max_concurrency!r}"
        )
    if isinstance(prompts, str | bytes):
        raise InvalidParameterError("prompts", "batch() takes a list of prompts, not one string")
    common, options, shaping = params
    if shaping:
        from muse_sdk.structured import Structure, per_row

        rows = per_row(shaping, len(prompts))
    else:
        rows = [{}] * len(prompts)
    items: list[BatchItem | None] = [None] * len(prompts)
    requests: _Unit = []
    for index, (prompt, row) in enumerate(zip(prompts, rows, strict=True)):
        try:
            structure = Structure.build(row) if row else None  # row: only with shaping
            request = gen._request_for(normalize_prompt(prompt), common, options, structure)
            requests.append((index, request))
        except MuseError as exc:
            items[index] = exc
    size = gen.batch_size if gen.native_batch else 1
    units = [requests[i : i + size] for i in range(0, len(requests), size)]
    return items, units


def _run_unit(gen: Generator, unit: _Unit) -> _Outcomes:
    """Run one unit; a failed native batch falls back to one call per item."""
    if len(unit) > 1:
        start = time.perf_counter()
        try:
            results, attempts = gen.retry.call(lambda: gen._generate_batch([r for _, r in unit]))
        except Exception:
            pass
        else:
            latency = time.perf_counter() - start
            update = {"latency_s": latency, "attempts": attempts}
            return [
                _settled(gen, request, i, result.model_copy(update=update))
                for (i, request), result in zip(unit, results, strict=True)
            ]
    outcomes: _Outcomes = []
    for index, request in unit:
        try:
            outcomes.append((index, gen.run(request)))
        except Exception as exc:
            outcomes.append((index, exc))
    return outcomes


def _settled(gen: Generator, request: Request, index: int, result: GenerationResult) -> Any:
    """A native batch row checked against its structure (and repaired alone if it fails)."""
    if request.structure is None:
        return index, result
    from muse_sdk.structured import finish

    try:
        return index, finish(result, request.structure)
    except StructuredOutputError as exc:
        if not request.structure.repair_attempts or isinstance(exc, RefusalError):
            return index, exc
    try:
        return index, gen.run(request)
    except Exception as exc:
        return index, exc


async def _arun_unit(gen: Generator, unit: _Unit) -> _Outcomes:
    if len(unit) > 1:
        return await asyncio.to_thread(_run_unit, gen, unit)
    index, request = unit[0]
    try:
        return [(index, await gen.arun(request))]
    except Exception as exc:
        return [(index, exc)]


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, file=sys.stderr, unit="prompt", dynamic_ncols=True) as bar:
        yield bar


def _finish(
    items: list[BatchItem | None], outcomes: _Outcomes, bar: Any, on_result: OnResult | None
) -> None:
    for index, outcome in outcomes:
        items[index] = outcome
        if on_result is not None:
            on_result(index, outcome)
    if bar is not None:
        bar.update(len(outcomes))


def _done(items: list[BatchItem | None]) -> BatchResult:
    assert all(item is not None for item in items)
    return BatchResult([item for item in items if item is not None])


def run_batch(
    gen: Generator,
    prompts: Sequence[PromptInput],
    params: Params,
    max_concurrency: int,
    progress: bool,
    on_result: OnResult | None = None,
) -> BatchResult:
    """Run a batch on a thread pool of at most ``max_concurrency`` workers."""
    items, units = _plan(gen, prompts, params, max_concurrency)
    with _progress(len(items), progress) as bar:
        _finish(items, [(i, e) for i, e in enumerate(items) if e is not None], bar, on_result)
        if units:
            workers = min(max_concurrency, len(units))
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="muse-batch")
            try:
                futures = [pool.submit(_run_unit, gen, unit) for unit in units]
                for future in as_completed(futures):
                    _finish(items, future.result(), bar, on_result)
            finally:
                # On Ctrl-C (or a failing callback) drop the queued units instead of running them.
                pool.shutdown(wait=True, cancel_futures=True)
    return _done(items)


async def run_batch_async(
    gen: Generator,
    prompts: Sequence[PromptInput],
    params: Params,
    max_concurrency: int,
    progress: bool,
    on_result: OnResult | None = None,
) -> BatchResult:
    """Run a batch on the event loop with at most ``max_concurrency`` units in flight."""
    items, units = _plan(gen, prompts, params, max_concurrency)
    semaphore = asyncio.Semaphore(max_concurrency)

    async def bounded(unit: _Unit) -> _Outcomes:
        async with semaphore:
            return await _arun_unit(gen, unit)

    with _progress(len(items), progress) as bar:
        _finish(items, [(i, e) for i, e in enumerate(items) if e is not None], bar, on_result)
        # Tasks are created in input order so that the FIFO semaphore starts them in that order.
        tasks = [asyncio.ensure_future(bounded(unit)) for unit in units]
        try:
            for next_done in asyncio.as_completed(tasks):
                _finish(items, await next_done, bar, on_result)
        finally:
            for task in tasks:  # on cancellation, leave nothing running behind the caller
                task.cancel()
    return _done(items)
