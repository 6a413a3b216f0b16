"""A lean GPT-2 in plain torch: SDPA attention over a preallocated, slotted KV cache.

This is the model the continuous-batching engine drives. It loads Hugging Face GPT-2
checkpoints (safetensors) without importing transformers, and its logits match
``GPT2LMHeadModel`` within float noise. The cache holds ``slots`` rows of ``length`` positions;
each request owns a slot, so rows at different lengths decode together:

- :meth:`LeanGPT2.prefill` / :meth:`LeanGPT2.prefill_many` write a prompt's K/V into its slot
  and return the last position's logits;
- :meth:`LeanGPT2.decode` advances B rows by one token each, every row at its own position;
- :meth:`LeanGPT2.copy_slot` shares a prefilled prompt between the ``n`` choices of a call.

On CUDA, decode steps are replayed from CUDA graphs (see ``_gpt2_graphs``). On the CPU, the
matrices are handed to oneDNN once at load (``to_mkldnn``) and multiplied with its fused
kernels: with MKL's sgemm repacking every weight on every call, that is 2-4x faster at the
small batch sizes of decoding.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)

from muse_sdk.providers.local._gpt2_checkpoint import (
    GPT2Shape,
    UnsupportedCheckpointError,
    check_checkpoint,
    read_json,
    read_shape,
    weight_files,
)

__all__ = ["LeanGPT2", "UnsupportedCheckpointError", "check_checkpoint"]

logger = logging.getLogger("muse_sdk.local")


@functools.cache
def _onednn(dtype: torch.dtype) -> bool:
    """Whether oneDNN's fused linear kernels run ``dtype`` here (checked once, on a toy)."""
    if dtype not in (torch.float32, torch.bfloat16):
        return False
    try:
        if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False  # emulated bfloat16 would be slower than float32
        op = torch.ops.mkldnn._linear_pointwise
        x, w, b = (torch.ones(shape, dtype=dtype) for shape in ((2, 3), (4, 3), (4,)))
        y = op.default(x, w.to_mkldnn(), b, "gelu", [], "tanh")
        z = op.binary(x, y, w.to_mkldnn(), b, "add")
    except (AttributeError, RuntimeError):  # a torch built without oneDNN, or too old
        return False
    expected = F.gelu(torch.full((2, 4), 4.0), approximate="tanh")
    return bool(torch.allclose(z.float(), expected + 4, atol=0.05))


class _Linear:
    """``x @ W + b`` for a Conv1D weight ``W`` (in, out), optionally with a fused epilogue.

    With ``onednn`` the weight is transposed and packed for oneDNN once; otherwise it stays
    in Conv1D's layout for ``addmm``, which is exactly what transformers computes.
    """

    __slots__ = ("bias", "fused", "fused_add", "onednn", "weight")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, onednn: bool) -> None:
        self.bias = bias
        self.onednn = onednn
        self.weight = weight.t().contiguous().to_mkldnn() if onednn else weight
        # The overloads themselves: calling through the op packet costs microseconds.
        self.fused: Any = torch.ops.mkldnn._linear_pointwise.default if onednn else None
        self.fused_add: Any = torch.ops.mkldnn._linear_pointwise.binary if onednn else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.onednn:
            return self.fused(x, self.weight, self.bias, "none", [], "")  # type: ignore[no-any-return]
        if self.bias is None:
            return x @ self.weight
        return torch.addmm(self.bias, x, self.weight)

    def gelu(self, x: torch.Tensor, approximate: str) -> torch.Tensor:
        """``gelu(x @ W + b)``."""
        if self.onednn:
            return self.fused(x, self.weight, self.bias, "gelu", [], approximate)  # type: ignore[no-any-return]
        return F.gelu(self(x), approximate=approximate)

    def add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``x @ W + b + residual`` (the residual connections)."""
        if self.onednn:
            return self.fused_add(x, residual, self.weight, self.bias, "add")  # type: ignore[no-any-return]
        return self(x).add_(residual)


class _Layer:
    """One transformer block's parameters."""

    def __init__(self, take: Any, prefix: str, scale: float, onednn: bool) -> None:
        self.ln1 = take(f"{prefix}ln_1.weight"), take(f"{prefix}ln_1.bias")
        self.ln2 = take(f"{prefix}ln_2.weight"), take(f"{prefix}ln_2.bias")

        def linear(key: str) -> _Linear:
            return _Linear(take(f"{prefix}{key}.weight"), take(f"{prefix}{key}.bias"), onednn)

        self.qkv, self.proj = linear("attn.c_attn"), linear("attn.c_proj")
        self.fc, self.out = linear("mlp.c_fc"), linear("mlp.c_proj")
        self.scale = scale


def _runs(rows: list[int], positions: list[int]) -> list[tuple[int, int, int, int]]:
    """Split a batch into stretches of consecutive slots: (start, end, first slot, span)."""
    runs = []
    start = 0
    for end in range(1, len(rows) + 1):
        if end == len(rows) or rows[end] != rows[end - 1] + 1:
            runs.append((start, end, rows[start], max(positions[start:end]) + 1))
            start = end
    return runs


def _attend_in_place(
    cache: torch.Tensor, q: torch.Tensor, ahead: torch.Tensor, runs: list[tuple[int, int, int, int]]
) -> torch.Tensor:
    """Decode attention on the CPU, reading each stretch of slots where it lies in the cache.

    A one-position query is memory-bound on K/V: gathering the rows' caches first would read
    and write them once more (3-4x slower at a few hundred positions), and two matmuls on a
    strided view beat SDPA there. So each stretch of consecutive slots (the whole batch when
    the engine keeps its slots compact and sorted) is two matmuls over a view, up to its own
    longest row; ``q`` (B, H, 1, D) is already scaled, ``ahead`` masks future positions.
    """
    pieces = []
    for start, end, slot, span in runs:
        keys = cache[0, slot : slot + end - start, :, :span]
        scores = torch.matmul(q[start:end], keys.transpose(-1, -2))
        scores = scores.masked_fill_(ahead[start:end, ..., :span], float("-inf"))
        # The softmax in float32 whatever the dtype, as SDPA's kernels do.
        weights = scores.softmax(-1, dtype=torch.float32).to(q.dtype)
        pieces.append(torch.matmul(weights, cache[1, slot : slot + end - start, :, :span]))
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


class LeanGPT2:
    """GPT-2 for inference: weights as plain tensors and a slotted KV cache.

    Call :meth:`allocate` before :meth:`prefill` or :meth:`decode`. Every method runs under
    ``torch.inference_mode`` itself; none of them is thread-safe (the engine serialises them).
    """

    def __init__(
        self,
        shape: GPT2Shape,
        tensors: dict[str, torch.Tensor],
        *,
        device: torch.device,
        dtype: torch.dtype,
        config: dict[str, Any],
        generation_config: dict[str, Any],
    ) -> None:
        self.shape = shape
        self.device = torch.device(device)
        self.dtype = dtype
        self.context_length = shape.n_positions
        self.vocab_size = shape.vocab_size
        self.slots = 0
        #: config.json and generation_config.json as attributes (what ``_loading._wrap`` reads).
        self.config = SimpleNamespace(**{"eos_token_id": None, **config})
        unset = {"eos_token_id": None, "repetition_penalty": None, "no_repeat_ngram_size": None}
        self.generation_config = SimpleNamespace(**(unset | generation_config))

        def take(key: str) -> torch.Tensor:
            if key not in tensors:
                raise UnsupportedCheckpointError(f"the checkpoint has no tensor {key!r}")
            return tensors[key].to(device=self.device, dtype=dtype).contiguous()

        onednn = self.device.type == "cpu" and _onednn(dtype)
        self.wte, self.wpe = take("wte.weight"), take("wpe.weight")
        self.ln_f = take("ln_f.weight"), take("ln_f.bias")
        tied = config.get("tie_word_embeddings", True) or "lm_head.weight" not in tensors
        head = self.wte if tied else take("lm_head.weight")
        # One matmul against the (tied) embeddings; packing for oneDNN copies wte once more.
        self.lm_head = _Linear(head.t(), None, onednn)
        self.layers = [
            _Layer(take, f"h.{i}.", shape.scales[i], onednn) for i in range(shape.n_layer)
        ]
        if tuple(self.wte.shape) != (shape.vocab_size, shape.n_embd):
            raise UnsupportedCheckpointError("the checkpoint's tensors do not match config.json")
        self._kv = torch.zeros(0, device=self.device, dtype=dtype)
        self._positions = torch.arange(shape.n_positions, device=self.device)
        self._head_offsets = torch.arange(shape.n_head, device=self.device)
        self._graphs: Any = None  # a _gpt2_graphs.GraphRunner once allocate() asks for one

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, *, device: torch.device, dtype: torch.dtype
    ) -> LeanGPT2:
        """Load a Hugging Face GPT-2 directory (config.json and safetensors weights).

        Raises :class:`UnsupportedCheckpointError` (a ``BackendUnavailableError``) for any
        checkpoint this path would not run exactly: load it with transformers then.
        """
        from safetensors.torch import load_file

        root = Path(directory)
        config = read_json(root / "config.json")
        shape = read_shape(config, root)
        tensors: dict[str, torch.Tensor] = {}
        for path in weight_files(root):  # keys saved with or without the "transformer." prefix
            for key, value in load_file(str(path)).items():
                tensors[key.removeprefix("transformer.")] = value
        generation_config = read_json(root / "generation_config.json")
        return cls(
            shape,
            tensors,
            device=device,
            dtype=dtype,
            config=config,
            generation_config=generation_config,
        )

    # --- the cache -----------------------------------------------------------------------------

    def allocate(
        self, slots: int, length: int | None = None, *, graphs: bool | None = None
    ) -> None:
        """Make the KV cache: ``slots`` rows of ``length`` positions (default n_positions).

        One more slot is kept as scratch for padded rows. ``graphs`` replays decode steps from
        CUDA graphs (default: on CUDA only; ``True`` on the CPU runs the same bucketing eagerly).
        """
        length = self.context_length if length is None else length
        if not 0 < length <= self.context_length or slots < 1:
            raise ValueError(f"slots must be >= 1 and length in 1..{self.context_length}")
        s = self.shape
        # K and V of a layer live in one tensor, so that one index_copy_ writes both.
        self._kv = torch.zeros(
            (s.n_layer, 2, slots + 1, s.n_head, length, s.head_dim),
            device=self.device,
            dtype=self.dtype,
        )
        self.slots = slots
        self._graphs = None
        if graphs if graphs is not None else self.device.type == "cuda":
            from muse_sdk.providers.local._gpt2_graphs import GraphRunner

            self._graphs = GraphRunner(self, capture=self.device.type == "cuda")

    def warm_up(self, max_batch: int | None = None) -> None:
        """Capture the CUDA graphs of every bucket now rather than on first use (else no-op)."""
        if self._graphs is not None:
            with torch.inference_mode():
                self._graphs.warm_up(max_batch)

    @property
    def length(self) -> int:
        """Positions per slot in the allocated cache."""
        return int(self._kv.shape[4]) if self._kv.dim() == 6 else 0

    @property
    def k_cache(self) -> torch.Tensor:
        """Keys, ``[n_layer, slots + 1, n_head, length, head_dim]`` (a view)."""
        return self._kv[:, 0]

    @property
    def v_cache(self) -> torch.Tensor:
        """Values, same shape as :attr:`k_cache` (a view)."""
        return self._kv[:, 1]

    @torch.inference_mode()
    def copy_slot(self, src: int, dst: int, length: int) -> None:
        """Copy the first ``length`` positions of slot ``src``'s cache into slot ``dst``."""
        self._kv[:, :, dst, :, :length] = self._kv[:, :, src, :, :length]

    # --- the model -----------------------------------------------------------------------------

    def _block_tail(self, layer: _Layer, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Attention projection and residual, then the MLP and its residual."""
        s = self.shape
        x = layer.proj.add(attn, x)
        h = F.layer_norm(x, (s.n_embd,), *layer.ln2, s.eps)
        return layer.out.add(layer.fc.gelu(h, s.approximate), x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x, (self.shape.n_embd,), *self.ln_f, self.shape.eps)
        return self.lm_head(x).float()

    def _prompts(self, ids: torch.Tensor, write: torch.Tensor | None) -> torch.Tensor:
        """Full causal pass over right-padded prompts ``ids`` (B, T) at positions 0..T-1.

        Writes K/V of every position into the cache slots ``write`` (B,) when given; returns
        the final hidden states (B, T, n_embd) before ``ln_f``.
        """
        s = self.shape
        batch, width = ids.shape
        x = (F.embedding(ids, self.wte) + self.wpe[:width]).view(batch * width, s.n_embd)
        for index, layer in enumerate(self.layers):
            h = F.layer_norm(x, (s.n_embd,), *layer.ln1, s.eps)
            qkv = layer.qkv(h).view(batch, width, 3, s.n_head, s.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, D), as SDPA wants
            if write is not None:
                self._kv[index, :, write, :, :width] = qkv[:, :, 1:].permute(2, 0, 3, 1, 4)
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=layer.scale)
            x = self._block_tail(layer, x, attn.transpose(1, 2).reshape(batch * width, s.n_embd))
        return x.view(batch, width, s.n_embd)

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab) in float32 for ``ids`` (B, T), no cache (a reference for tests).

        ``positions``, when given, must be ``0..T-1`` on every row: rows start at position 0.
        """
        start = torch.arange(ids.shape[1]).expand_as(ids)
        if positions is not None and not torch.equal(positions.cpu(), start):
            raise ValueError("forward() runs rows from position 0; use prefill/decode otherwise")
        return self._logits(self._prompts(ids.to(self.device), None))

    @torch.inference_mode()
    def prefill_many(self, slots: Sequence[int], prompts: Sequence[torch.Tensor]) -> torch.Tensor:
        """Prefill several prompts in one pass; returns each one's last logits (N, vocab).

        Prompts are right-padded to the longest: causal attention keeps padding out of every
        real position, and the padded positions' K/V land beyond each prompt's end, where the
        slot's next decode step overwrites them before anything reads them.
        """
        lengths = [int(p.shape[0]) for p in prompts]
        if not lengths or min(lengths) < 1 or max(lengths) > self.length:
            raise ValueError(f"prompt lengths must be in 1..{self.length} (allocate() first)")
        if len(slots) != len(prompts) or any(not 0 <= slot < self.slots for slot in slots):
            raise ValueError(f"one slot in 0..{self.slots - 1} per prompt")
        ids = torch.zeros((len(prompts), max(lengths)), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, : lengths[row]] = prompt
        write = torch.tensor(list(slots), device=self.device)
        hidden = self._prompts(ids.to(self.device), write)
        last = torch.tensor(lengths, device=self.device) - 1
        return self._logits(hidden[torch.arange(len(lengths), device=self.device), last])

    def prefill(self, slot: int, ids: torch.Tensor) -> torch.Tensor:
        """Write the K/V of ``ids`` (T,) at positions 0..T-1 of ``slot``; last logits (vocab,)."""
        return self.prefill_many([slot], [ids])[0]

    @torch.inference_mode()
    def decode(
        self, slots: torch.Tensor, tokens: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """One step for B rows: token ``tokens[b]`` at ``positions[b]`` in slot ``slots[b]``.

        Writes each row's K/V at its position, attends over its slot's positions
        ``[0, position]`` only, and returns float32 logits (B, vocab). A row's logits do not
        depend on the other rows. Pass the three (B,) long tensors on the CPU: the attention
        span comes from ``positions.max()``, which is then free (no device sync).
        """
        span = int(positions.max()) + 1
        if span > self.length:
            raise ValueError(f"position {span - 1} is past the cache's {self.length} positions")
        if self._graphs is not None:
            from muse_sdk.providers.local._gpt2_graphs import CaptureError

            try:
                return self._graphs.decode(slots, tokens, positions, span)  # type: ignore[no-any-return]
            except CaptureError as exc:  # the eager step computes the same thing, slower
                logger.warning("%s; decoding without CUDA graphs from now on", exc)
                self._graphs = None
        dev = self.device
        rows = slots.tolist() if dev.type == "cpu" else None
        return self.step(slots.to(dev), tokens.to(dev), positions.to(dev), span, rows)

    def step(
        self,
        slots: torch.Tensor,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        span: int,
        rows: list[int] | None = None,
    ) -> torch.Tensor:
        """The decode step on device tensors, attending over positions ``[0, span)``.

        Static shapes and no host syncs, so that a CUDA graph can capture it. ``rows`` is
        ``slots`` as a list, for the CPU path (see :func:`_attend_in_place`).
        """
        s = self.shape
        batch, length = tokens.shape[0], self._kv.shape[4]
        x = F.embedding(tokens, self.wte) + F.embedding(positions, self.wpe)
        # Row b's K (and V) for head h sit at flat row ((t*S + slot)*H + h)*L + position of a
        # layer's cache viewed as (2*S*H*L, D): one index_copy_ writes both.
        kv_rows = self._kv.shape[2] * s.n_head * length
        heads = (slots * s.n_head * length + positions).unsqueeze(1) + self._head_offsets * length
        write = torch.stack((heads, heads + kv_rows), dim=1).view(-1)  # (B, 2, H)
        ahead = (self._positions[:span] > positions.unsqueeze(1)).view(batch, 1, 1, span)
        runs = None if rows is None else _runs(rows, positions.tolist())
        visible = ~ahead if runs is None else ahead  # SDPA's boolean mask is "may attend"
        for index, layer in enumerate(self.layers):
            h = F.layer_norm(x, (s.n_embd,), *layer.ln1, s.eps)
            qkv = layer.qkv(h).view(batch, 3, s.n_head, s.head_dim)
            cache = self._kv[index]
            cache.view(-1, s.head_dim).index_copy_(0, write, qkv[:, 1:].reshape(-1, s.head_dim))
            if runs is None:  # CUDA: gather the rows' caches and run the fused kernel
                kv = cache[:, slots, :, :span]
                attn = F.scaled_dot_product_attention(
                    qkv[:, 0].unsqueeze(2), kv[0], kv[1], attn_mask=visible, scale=layer.scale
                )
            else:
                attn = _attend_in_place(cache, qkv[:, 0].unsqueeze(2) * layer.scale, ahead, runs)
            x = self._block_tail(layer, x, attn.reshape(batch, s.n_embd))
        return self._logits(x)
