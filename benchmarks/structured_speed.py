"""Constrained decoding on the local provider (issue 16): compile time and its cost per token.

1. Compile time of every schema in ``tests/structured/corpus.py`` (76 schemas, 5 of them with
   20-30 properties) with a fresh compiler each run, so nothing comes from the cache: p50, p95
   and max (target: p95 <= 50 ms).
2. Tokens/s of muse-tiny at temperature 1.0, constrained by a JSON schema against the same calls
   unconstrained, 128 new tokens: one call at a time, and 16 rows in one ``batch()``. The two are
   interleaved, rotating which goes first; the ratio is the median of the per-run ratios
   (target: >= 0.8x). Tokens/s counts the tokens each reply actually got.

Run::

    python -m benchmarks.structured_speed --runs 7
    python -m benchmarks.structured_speed --quick   # a smoke run (tests/test_benchmarks.py)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the corpus lives with the tests
    sys.path.insert(0, str(ROOT))

import muse_sdk as muse  # noqa: E402
from benchmarks._harness import interleave  # noqa: E402

PROMPT = "def parse(text):\n    "
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "body": {"type": "string"},
    },
    "required": ["title", "tags", "body"],
}


def compile_times(gen: Any, runs: int) -> list[float]:
    """Milliseconds to compile each corpus schema, ``runs`` times, each with a fresh compiler."""
    from muse_sdk.providers.local._constraint import Compiler
    from muse_sdk.structured import OutputSpec
    from tests.structured.corpus import SCHEMAS

    loaded = gen._model()
    specs = [OutputSpec.for_schema(schema) for _, schema in SCHEMAS]
    times = []
    for _ in range(runs):
        compiler = Compiler(loaded.tokenizer, loaded.model.vocab_size, sorted(loaded.eos_ids))
        for spec in specs:
            start = time.perf_counter()
            compiler.compile(spec)
            times.append((time.perf_counter() - start) * 1e3)
    return times


def tokens_per_s(gen: Any, rows: int, max_tokens: int, **structure: Any) -> float:
    start = time.perf_counter()
    results = gen.batch(
        [PROMPT] * rows,
        max_tokens=max_tokens,
        temperature=1.0,
        seed=1,
        max_concurrency=rows,
        **structure,
    ).raise_for_errors()
    return sum(r.usage.completion_tokens for r in results) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 run, short replies")
    args = parser.parse_args(argv)
    runs, max_tokens = (1, 32) if args.quick else (args.runs, 128)

    import torch

    torch.set_num_threads(1)  # a 4-layer model gains nothing from more threads
    gen = muse.load("local:muse-tiny", device="cpu")
    times = sorted(compile_times(gen, runs))
    p95 = statistics.quantiles(times, n=20)[-1]
    print("| Measure | Value | Target |\n| --- | --- | --- |")
    print(
        f"| schema compile time, {len(times) // runs} corpus schemas x {runs} | p50 "
        f"{statistics.median(times):.2f} ms, p95 {p95:.2f} ms, max {times[-1]:.2f} ms "
        f"| p95 <= 50 ms: {'met' if p95 <= 50 else 'NOT met'} |"
    )
    for rows in (1, 16):
        tokens_per_s(gen, rows, max_tokens)  # warm-up: caches, the compiled grammar
        tokens_per_s(gen, rows, max_tokens, schema=SCHEMA)
        samples = interleave(
            {
                "free": lambda r=rows: tokens_per_s(gen, r, max_tokens),
                "schema": lambda r=rows: tokens_per_s(gen, r, max_tokens, schema=SCHEMA),
            },
            runs,
        )
        ratio = statistics.median(
            c / f for c, f in zip(samples["schema"], samples["free"], strict=True)
        )
        label = "one call" if rows == 1 else f"batch() of {rows}"
        print(
            f"| constrained vs unconstrained tokens/s, {label} | "
            f"{statistics.median(samples['schema']):.0f} vs "
            f"{statistics.median(samples['free']):.0f} tok/s: **{ratio:.2f}x** "
            f"| >= 0.8x: {'met' if ratio >= 0.8 else 'NOT met'} |"
        )
    gen.close()


if __name__ == "__main__":
    main()
