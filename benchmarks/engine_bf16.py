"""bfloat16 against float32 through the engine under load (16 prompts at once, 64 greedy tokens).

``local_speed``'s bfloat16 row is one prompt at a time; this is the same model with 16 rows per
decode step, where bfloat16's matrix products pay off. Medians of ``--runs`` interleaved runs.

    python -m benchmarks.engine_bf16 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import muse_sdk as muse
from benchmarks.engine_speed import _prompts
from benchmarks.local_speed import NEW_TOKENS, build_model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description="bfloat16 vs float32 through the engine")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a 2-layer model, to test the script")
    args = parser.parse_args()
    prompts = _prompts(16)
    with tempfile.TemporaryDirectory() as tmp:
        model = f"local:{build_model_dir(Path(tmp), args.smoke)}"
        gens = {dt: muse.load(model, device="cpu", dtype=dt) for dt in ("float32", "bfloat16")}
        rates: dict[str, list[float]] = {dt: [] for dt in gens}
        for run in range(args.runs + 1):  # the first round warms up
            for dtype, gen in gens.items():
                start = time.perf_counter()
                results = gen.batch(
                    prompts, max_tokens=NEW_TOKENS, temperature=0, max_concurrency=16
                ).raise_for_errors()
                tokens = sum(r.usage.completion_tokens for r in results)
                if run:
                    rates[dtype].append(tokens / (time.perf_counter() - start))
    f32, b16 = statistics.median(rates["float32"]), statistics.median(rates["bfloat16"])
    print(
        f"| 16 prompts through the engine, bfloat16 vs float32 | bfloat16 {b16:.1f} tok/s "
        f"| float32 {f32:.1f} tok/s | **{b16 / f32:.2f}x** (target >= 1.3x) |"
    )


if __name__ == "__main__":
    main()
