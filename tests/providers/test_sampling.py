"""The engine's per-row logits processing equals transformers' processors, row by row."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from transformers.generation.logits_process import (  # noqa: E402
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from muse_sdk.providers.local._sampling import (  # noqa: E402
    RowSampling,
    SamplingParams,
    SeenTokens,
    pick,
    process,
    row_rng,
)

VOCAB = 97


def _hf(params: SamplingParams, ids: list[int], scores: torch.Tensor) -> torch.Tensor:
    """What ``generate`` does to one row's scores, built the way ``_get_logits_processor`` is."""
    chain = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        chain.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.no_repeat_ngram_size > 0:
        chain.append(NoRepeatNGramLogitsProcessor(params.no_repeat_ngram_size))
    if params.do_sample:
        if params.temperature != 1.0:
            chain.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            chain.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            chain.append(TopPLogitsWarper(params.top_p))
    return chain(torch.tensor([ids]), scores[None].clone())[0]


def _random_params(rng: random.Random) -> SamplingParams:
    sample = rng.random() < 0.7
    return SamplingParams(
        do_sample=sample,
        temperature=rng.choice([1.0, 0.3, 0.7, 1.5]) if sample else 1.0,
        top_k=rng.choice([0, 1, 5, 40, VOCAB + 10]) if sample else 0,
        top_p=rng.choice([1.0, 0.5, 0.9, 0.99]) if sample else 1.0,
        repetition_penalty=rng.choice([1.0, 1.3, 0.8, 2.0]),
        no_repeat_ngram_size=rng.choice([0, 1, 2, 3]),
    )


def _rows(rng: random.Random, batch: int) -> tuple[list[SamplingParams], list[list[int]]]:
    params = [_random_params(rng) for _ in range(batch)]
    # Small alphabets so that repeated n-grams (and so bans) really occur.
    ids = [[rng.randrange(12) for _ in range(rng.randrange(1, 30))] for _ in range(batch)]
    return params, ids


@pytest.mark.parametrize("seed", range(12))
def test_process_equals_transformers_processors(seed: int) -> None:
    rng = random.Random(seed)
    params, ids = _rows(rng, batch=rng.randrange(1, 9))
    torch.manual_seed(seed)
    logits = torch.randn(len(params), VOCAB) * 3
    seen = SeenTokens(len(params), VOCAB, "cpu")
    rows = []
    for slot, (p, row_ids) in enumerate(zip(params, ids, strict=True)):
        # Built incrementally (prompt, then added tokens), as the engine does.
        cut = rng.randrange(1, len(row_ids) + 1)
        row = RowSampling(p, row_ids[:cut])
        seen.start(slot, row_ids[:cut])
        for token in row_ids[cut:]:
            row.add(token)
            seen.add(torch.tensor([slot]), torch.tensor([token]))
        rows.append(row)
    ours = process(logits, rows, seen.mask)
    for i, (p, row_ids) in enumerate(zip(params, ids, strict=True)):
        expected = _hf(p, row_ids, logits[i])
        assert torch.equal(ours[i], expected), (i, p)


def test_process_leaves_plain_rows_and_the_input_alone() -> None:
    logits = torch.randn(3, VOCAB)
    before = logits.clone()
    rows = [
        RowSampling(SamplingParams(), [1, 2]),
        RowSampling(SamplingParams(no_repeat_ngram_size=1), [1, 2]),
        RowSampling(SamplingParams(do_sample=True, top_k=3), [1, 2]),
    ]
    out = process(logits, rows, None)
    assert torch.equal(logits, before)
    assert torch.equal(out[0], logits[0])
    assert out[1, 1] == out[1, 2] == float("-inf") and torch.equal(out[1, 3:], logits[1, 3:])
    assert int(torch.isfinite(out[2]).sum()) == 3


def test_ngram_ban_tracks_a_growing_sequence() -> None:
    ids = [5, 6, 7, 5, 6]
    row = RowSampling(SamplingParams(no_repeat_ngram_size=3), ids[:2])
    assert row.banned() is None
    for token in ids[2:]:
        row.add(token)
    assert row.banned() == {7}  # "5 6" was followed by 7 once: "5 6 7" may not come again
    row.add(8)
    assert row.banned() is None  # "6 8" never seen before


def test_from_kwargs_keeps_the_generate_meanings() -> None:
    greedy = SamplingParams.from_kwargs(
        {"do_sample": False, "repetition_penalty": 1.3, "no_repeat_ngram_size": 0}
    )
    assert greedy == SamplingParams(repetition_penalty=1.3)
    sample = SamplingParams.from_kwargs(
        {
            "do_sample": True,
            "temperature": 0.7,
            "top_k": 0,
            "top_p": 0.9,
            "repetition_penalty": 1.0,
            "no_repeat_ngram_size": 2,
        }
    )
    assert sample == SamplingParams(True, 0.7, 0, 0.9, 1.0, 2)


def test_greedy_pick_is_argmax_with_first_index_on_ties() -> None:
    scores = torch.tensor([[0.0, 2.0, 2.0, 1.0], [5.0, -1.0, 5.0, 0.0]])
    rows = [RowSampling(SamplingParams(), []) for _ in range(2)]
    assert pick(scores, rows) == [1, 0]


def test_sampling_follows_the_distribution_and_never_picks_a_banned_token() -> None:
    probs = torch.tensor([0.5, 0.0, 0.3, 0.2, 0.0])
    scores = probs.log()[None].repeat(4, 1)  # zero probability: -inf
    rows = [RowSampling(SamplingParams(do_sample=True), [], random.Random(i)) for i in range(4)]
    counts = torch.zeros(5)
    for _ in range(2500):
        for token in pick(scores, rows):
            counts[token] += 1
    frequencies = counts / counts.sum()
    assert counts[1] == counts[4] == 0
    assert torch.allclose(frequencies, probs, atol=0.02)


def test_a_seeded_row_draws_the_same_whatever_its_companions() -> None:
    torch.manual_seed(0)
    mine = torch.randn(VOCAB)
    params = SamplingParams(do_sample=True, temperature=0.9, top_p=0.95)

    def run(companions: int) -> list[int]:
        rows = [RowSampling(params, [], row_rng(42, 0))]
        rows += [RowSampling(params, [], row_rng(None, 0)) for _ in range(companions)]
        out = []
        for _ in range(20):
            logits = torch.cat([mine[None], torch.randn(companions, VOCAB)])
            out.append(pick(process(logits, rows), rows)[0])
        return out

    assert run(0) == run(5) == run(2)


def test_row_rng_derives_distinct_but_stable_streams() -> None:
    assert row_rng(7, 0).random() == random.Random(7).random()
    assert row_rng(7, 1).random() == row_rng(7, 1).random() != row_rng(7, 2).random()
    assert row_rng(None, 0).random() != row_rng(None, 0).random()
