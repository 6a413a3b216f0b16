"""Choosing each row's next token with its own parameters, as transformers would for that row.

A call reaches the engine as a :class:`Job` (:func:`job_for` builds it from the call's
parameters): its prompt, its rows' :class:`SamplingParams`, seed, stop strings and limits.

The engine decodes rows of many calls in one forward pass, so every row carries its own
:class:`SamplingParams`. :func:`process` applies, row by row but vectorised over the batch, the
same transformations as transformers' logits processors, in the order ``generate`` builds them:
``RepetitionPenaltyLogitsProcessor``, ``NoRepeatNGramLogitsProcessor``, then (sampling rows only)
``TemperatureLogitsWarper``, ``TopKLogitsWarper`` and ``TopPLogitsWarper``. A constrained row's
grammar mask comes between the bans and the warpers (``_constraint.apply_mask``), so that top-k
and top-p choose among legal tokens only. :func:`pick` takes the argmax of a greedy row and samples
a sampling row.

A sampling row draws from its own ``random.Random`` (one uniform number per token, turned into a
token by inverse-CDF over the processed distribution), so a seeded call samples the same tokens
whatever rows share its batch. Python's generator rather than a ``torch.Generator`` per row: one
draw costs ~0.1 µs instead of a few µs and a kernel launch, and the stream is the same on every
device. ``n > 1`` choices of a seeded call get seeds derived from it (:func:`row_rng`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from muse_sdk.core.types import GenerationParams

if TYPE_CHECKING:
    from muse_sdk.providers.local._constraint import Grammar

__all__ = [
    "Job",
    "RowSampling",
    "SamplingParams",
    "SeenTokens",
    "job_for",
    "pick",
    "process",
    "row_rng",
]

_NEG_INF = float("-inf")


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """One row's decoding parameters; the defaults change nothing (greedy, no penalty)."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0  # 0: off

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> SamplingParams:
        """From the ``model.generate`` keywords the provider builds (``generation_kwargs``).

        Reading the same dict as the transformers path keeps every parameter's meaning the same
        there and here, the checkpoint's own anti-repetition defaults included.
        """
        sample = bool(kwargs["do_sample"])
        return cls(
            do_sample=sample,
            temperature=float(kwargs.get("temperature", 1.0)) if sample else 1.0,
            top_k=int(kwargs.get("top_k", 0)) if sample else 0,
            top_p=float(kwargs.get("top_p", 1.0)) if sample else 1.0,
            repetition_penalty=float(kwargs.get("repetition_penalty") or 1.0),
            no_repeat_ngram_size=int(kwargs.get("no_repeat_ngram_size") or 0),
        )


def row_rng(seed: int | None, choice: int) -> random.Random:
    """The generator of choice ``choice`` of a call: from its seed, or fresh randomness.

    Choice 0 uses the seed itself (``n=1`` and the first of ``n=3`` agree); the others derive
    theirs from it by string seeding, which is hashed with SHA-512 and so stable across runs.
    """
    if seed is None:
        return random.Random()
    return random.Random(seed if choice == 0 else f"{seed}/{choice}")


class RowSampling:
    """One row's parameters, its generator, and what its n-gram ban needs to remember."""

    __slots__ = ("_ngrams", "_tail", "params", "rng")

    def __init__(
        self, params: SamplingParams, prompt: Sequence[int], rng: random.Random | None = None
    ) -> None:
        self.params = params
        self.rng = rng if rng is not None else random.Random()
        size = params.no_repeat_ngram_size
        # Every (size-1)-token prefix seen so far maps to the tokens that followed it.
        self._ngrams: dict[tuple[int, ...], set[int]] = {}
        self._tail: list[int] = []
        if size > 0:
            for token in prompt:
                self._remember(token)

    def add(self, token: int) -> None:
        """Record the row's new token."""
        if self.params.no_repeat_ngram_size > 0:
            self._remember(token)

    def _remember(self, token: int) -> None:
        size = self.params.no_repeat_ngram_size
        tail = self._tail
        tail.append(token)
        if len(tail) >= size:
            self._ngrams.setdefault(tuple(tail[len(tail) - size : -1]), set()).add(token)
        if len(tail) >= size:  # only the last size-1 tokens are ever read again
            del tail[: len(tail) - size + 1]

    def banned(self) -> set[int] | None:
        """Tokens that would repeat an n-gram (``NoRepeatNGramLogitsProcessor``), if any."""
        size = self.params.no_repeat_ngram_size
        if size <= 0 or len(self._tail) < size - 1 or not self._ngrams:
            return None
        return self._ngrams.get(tuple(self._tail[len(self._tail) - size + 1 :]))


class SeenTokens:
    """Which tokens each cache slot's sequence holds, for the repetition penalty.

    One boolean row per slot, on the model's device: a step marks its new tokens with one
    indexed write instead of rebuilding a mask from every row's token list.
    """

    def __init__(self, slots: int, vocab: int, device: Any) -> None:
        self.mask = torch.zeros((slots, vocab), dtype=torch.bool, device=device)

    def start(self, slot: int, prompt: Sequence[int]) -> None:
        """A new sequence in ``slot``: exactly the prompt's tokens are seen."""
        row = self.mask[slot]
        row.zero_()
        row[torch.tensor(prompt, dtype=torch.long, device=row.device)] = True

    def add(self, slots: Any, tokens: Any) -> None:
        """Mark ``tokens[i]`` seen in ``slots[i]`` (long tensors on the mask's device)."""
        self.mask[slots, tokens] = True


def process(
    logits: torch.Tensor,
    rows: Sequence[RowSampling],
    seen: torch.Tensor | None = None,
    legal: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply each row's processors and warpers to ``logits`` ``[B, vocab]`` (float32).

    ``seen`` is the rows' ``[B, vocab]`` token mask, needed when some row has a repetition
    penalty; ``legal`` the ``[B, vocab]`` grammar mask when some row is constrained. Returns new
    scores; rows without any processing come out unchanged.
    """
    scores = logits
    device = scores.device
    penalties = [row.params.repetition_penalty for row in rows]
    if seen is not None and any(p != 1.0 for p in penalties):
        penalty = torch.tensor(penalties, dtype=scores.dtype, device=device)[:, None]
        # x * 1.0 and x / 1.0 are exact: rows without a penalty pass through unchanged.
        penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
        scores = torch.where(seen, penalised, scores)
    bans = [(i, row.banned()) for i, row in enumerate(rows)]
    index_rows = [i for i, banned in bans if banned for _ in banned]
    if index_rows:
        index_tokens = [t for _, banned in bans if banned for t in banned]
        scores = scores.clone() if scores is logits else scores
        scores[index_rows, index_tokens] = _NEG_INF
    if legal is not None:
        from muse_sdk.providers.local._constraint import apply_mask

        scores = apply_mask(scores, logits, legal)
    sampled = [i for i, row in enumerate(rows) if row.params.do_sample]
    if not sampled:
        return scores
    scores = scores.clone() if scores is logits else scores
    part = _warp(scores[sampled], [rows[i].params for i in sampled])
    if len(sampled) == len(rows):
        return part
    scores[sampled] = part
    return scores


def _warp(scores: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
    """Temperature, then top-k, then top-p, each only on the rows that ask for it."""
    device = scores.device
    temperatures = [p.temperature for p in params]
    if any(t != 1.0 for t in temperatures):
        scores = scores / torch.tensor(temperatures, dtype=scores.dtype, device=device)[:, None]
    vocab = scores.shape[-1]
    k_rows = [i for i, p in enumerate(params) if p.top_k > 0]
    if k_rows:
        ks = [min(max(params[i].top_k, 1), vocab) for i in k_rows]
        part = scores[k_rows]
        top = torch.topk(part, max(ks)).values
        # The k-th largest value is the same whatever larger k the batch's topk went to.
        threshold = top.gather(1, torch.tensor(ks, device=device)[:, None] - 1)
        scores[k_rows] = part.masked_fill(part < threshold, _NEG_INF)
    p_rows = [i for i, p in enumerate(params) if p.top_p < 1.0]
    if p_rows:
        part = scores[p_rows]
        sorted_logits, sorted_indices = torch.sort(part, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # float32(1 - p), as the processor's Python-float comparison casts it.
        floor = torch.tensor([1 - params[i].top_p for i in p_rows], dtype=part.dtype)
        remove = cumulative <= floor.to(device)[:, None]
        remove[..., -1:] = False  # min_tokens_to_keep=1
        remove = remove.scatter(1, sorted_indices, remove)
        scores[p_rows] = part.masked_fill(remove, _NEG_INF)
    return scores


def pick(scores: torch.Tensor, rows: Sequence[RowSampling]) -> list[int]:
    """Each row's next token from processed ``scores``: argmax, or a draw from its generator."""
    tokens = scores.argmax(dim=-1)
    sampled = [i for i, row in enumerate(rows) if row.params.do_sample]
    if sampled:
        probs = scores[sampled].softmax(dim=-1)
        # Inverse CDF in float64: one uniform number per row picks the token whose cumulative
        # interval holds it; a token of probability 0 has an empty interval and is never hit.
        cdf = probs.double().cumsum(dim=-1)
        draws = [rows[i].rng.random() for i in sampled]
        targets = torch.tensor(draws, dtype=torch.float64, device=cdf.device) * cdf[:, -1]
        chosen = torch.searchsorted(cdf, targets[:, None], right=True)[:, 0]
        last = scores.shape[-1] - 1
        if bool((chosen > last).any()):  # a draw rounded up to the total: take the last token
            positive = last - (probs.flip(-1) > 0).int().argmax(dim=-1)
            chosen = torch.where(chosen > last, positive, chosen)
        tokens[sampled] = chosen
    return [int(t) for t in tokens.tolist()]


@dataclass(frozen=True)
class Job:
    """One call as the engine runs it: a tokenised prompt and how to continue it."""

    prompt: Sequence[int]
    sampling: SamplingParams
    max_new: int
    n: int = 1
    seed: int | None = None
    stops: tuple[str, ...] = ()
    #: Send each row's text as it becomes final (a stream).
    stream: bool = False
    #: Send a progress event after every step (the caller has a read limit to enforce).
    steps: bool = False
    #: ``time.monotonic()`` after which the engine drops the call (its caller has given up).
    deadline_at: float | None = None
    #: The grammar every row of the call follows (``schema=``, ``regex=``, ``choices=``).
    grammar: Grammar | None = None


def job_for(
    prompt: Sequence[int],
    params: GenerationParams,
    kwargs: Mapping[str, Any],
    *,
    stream: bool,
    deadline_at: float | None,
    grammar: Grammar | None = None,
) -> Job:
    """The job for a call, from the ``model.generate`` keywords the provider builds for it.

    An unseeded sampling call draws its seed from torch's generator, so that
    ``torch.manual_seed`` still makes it reproducible, as it did with ``generate``.
    """
    sampling = SamplingParams.from_kwargs(kwargs)
    seed = params.seed
    if sampling.do_sample and seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    timeout = params.timeout
    return Job(
        prompt,
        sampling,
        int(kwargs["max_new_tokens"]),
        n=params.n,
        seed=seed,
        stops=params.stop or (),
        stream=stream,
        steps=timeout is not None and timeout.read is not None,
        deadline_at=deadline_at,
        grammar=grammar,
    )
