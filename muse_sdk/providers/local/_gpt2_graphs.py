"""Decode steps replayed from CUDA graphs: one graph per (batch bucket, span bucket).

A CUDA graph replays fixed kernels on fixed memory, so every input lives in a static buffer
and every shape is fixed per graph. A step of B rows attending over ``span`` positions runs
the graph for the smallest buckets that hold it: B is padded to a power of two with rows that
write to the cache's scratch slot (and attend only to it), and ``span`` is rounded up to a
power of two (at least 64), the extra positions masked out. Graphs are captured lazily, the
first time a bucket is used, and share one memory pool (they never run concurrently).

With ``capture=False`` (CPU) the runner does the same bucketing and padding but runs the step
eagerly, so that logic is tested on machines without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from muse_sdk.providers.local._gpt2 import LeanGPT2

__all__ = ["MIN_SPAN", "CaptureError", "GraphRunner", "bucket"]

#: The smallest attention span a graph covers: shorter ones would only multiply graphs.
MIN_SPAN = 64


class CaptureError(RuntimeError):
    """A decode step could not be captured as a CUDA graph; run it eagerly instead."""


def _powers(limit: int) -> list[int]:
    """1, 2, 4, ... up to and including the power of two that reaches ``limit``."""
    sizes = [1]
    while sizes[-1] < limit:
        sizes.append(sizes[-1] * 2)
    return sizes


def bucket(n: int, limit: int | None = None, floor: int = 1) -> int:
    """The smallest power of two >= ``n`` (and >= ``floor``), capped at ``limit``."""
    size = floor
    while size < n:
        size *= 2
    return size if limit is None else min(size, limit)


class GraphRunner:
    """Runs :meth:`LeanGPT2.step` from static buffers, captured as CUDA graphs when asked."""

    def __init__(self, model: LeanGPT2, *, capture: bool) -> None:
        self._model = model
        self._capture = capture
        self._scratch = model.slots  # allocate() keeps one slot past the last for padding
        size = bucket(model.slots)
        # Rows of slots, tokens and positions: the graphs read these addresses on every replay.
        self._inputs = torch.zeros((3, size), dtype=torch.long, device=model.device)
        self._inputs[0].fill_(self._scratch)
        self._host = torch.zeros((3, size), dtype=torch.long)
        self._steps: dict[tuple[int, int], Callable[[], torch.Tensor]] = {}
        self._pool: Any = torch.cuda.graph_pool_handle() if capture else None

    @property
    def buckets(self) -> list[tuple[int, int]]:
        """The (batch, span) buckets built so far."""
        return sorted(self._steps)

    def warm_up(self, max_batch: int | None = None) -> None:
        """Build every (batch, span) bucket up to ``max_batch`` rows now, not on first use.

        Capturing takes tens of milliseconds per graph; this moves that cost to start-up.
        """
        self._inputs[0].fill_(self._scratch)  # every row on the scratch slot: nothing real moves
        self._inputs[1:].zero_()
        size = bucket(min(max_batch or self._model.slots, self._model.slots))
        spans = {bucket(n, self._model.length, MIN_SPAN) for n in _powers(self._model.length)}
        for rows in _powers(size):
            for span in sorted(spans):
                if (rows, span) not in self._steps:
                    self._build(rows, span)

    def decode(
        self, slots: torch.Tensor, tokens: torch.Tensor, positions: torch.Tensor, span: int
    ) -> torch.Tensor:
        """The model's decode step for B rows, padded into its buckets; logits (B, vocab)."""
        batch = int(tokens.shape[0])
        size = bucket(batch)
        key = (size, bucket(span, self._model.length, MIN_SPAN))
        host = self._host
        host[0, :batch] = slots
        host[1, :batch] = tokens
        host[2, :batch] = positions
        host[0, batch:size] = self._scratch  # padding rows: token 0 at position 0, scratch slot
        host[1:, batch:size] = 0
        # A pageable-memory copy returns once the data is staged, so _host is free to reuse.
        self._inputs[:, :size].copy_(host[:, :size])
        # Build after the copy: capture warms up by running the step once on these inputs,
        # which writes the same K/V the replay writes, never a stale row's.
        run = self._steps.get(key) or self._build(*key)
        # Clone: a graph's output buffer is overwritten by its next replay.
        out = run()[:batch]
        return out.clone() if self._capture else out

    def _build(self, size: int, span: int) -> Callable[[], torch.Tensor]:
        slots, tokens, positions = self._inputs[:, :size]
        model = self._model

        def eager() -> torch.Tensor:
            return model.step(slots, tokens, positions, span)

        if not self._capture:
            self._steps[size, span] = eager
            return eager
        try:
            return self._capture_graph(size, span, eager)
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as exc:
            raise CaptureError(f"CUDA graph capture failed: {exc}") from exc

    def _capture_graph(
        self, size: int, span: int, eager: Callable[[], torch.Tensor]
    ) -> Callable[[], torch.Tensor]:
        device = self._model.device
        with torch.cuda.device(device):
            # Warm up on a side stream first: lazy initialisation (cuBLAS handles, kernel
            # choice) must not happen during capture.
            side = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                eager()
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                out = eager()

        def replay() -> torch.Tensor:
            graph.replay()
            return out

        self._steps[size, span] = replay
        return replay
