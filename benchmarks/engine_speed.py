"""Concurrent callers of one local model: do they share a batch, or take turns? (issue 14)

Through the public API only, so it measures whatever engine the local provider runs. On one
model (GPT-2 small's shape with random weights, or muse-tiny), 64 greedy tokens per prompt:

1. 16 sequential ``generate`` calls (the baseline), ``batch()`` of 16, 16 concurrent
   ``agenerate`` and 16 threads calling ``generate``: tokens/s and ratios (targets: concurrent
   >= 3.0x sequential and >= 0.9x ``batch()``);
2. time to first token (first chunk with text) of a stream, idle and while 15 other streams run:
   p50 and p99 over ``--ttft-samples``;
3. RSS after a warm-up and after ``--requests`` more short requests through the engine;
4. cold start: ``muse generate "Once upon a time"`` and ``muse.load("local:muse-tiny")`` in
   fresh interpreters (muse-tiny only).

Run::

    nice python -m benchmarks.engine_speed --model small --runs 3
    python -m benchmarks.engine_speed --model tiny --runs 5 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import muse_sdk as muse
from benchmarks._harness import interleave
from benchmarks.local_speed import NEW_TOKENS, build_model_dir

CONCURRENCY = 16
ROOT = Path(__file__).resolve().parent.parent


def _prompts(count: int) -> list[str]:
    subjects = ["parse a date", "merge two dicts", "walk a tree", "retry a request"]
    return [f"# {i}: {subjects[i % 4]}\n" + "def f(x):\n" * (1 + i % 3) for i in range(count)]


PARAMS: dict[str, Any] = {"max_tokens": NEW_TOKENS, "temperature": 0}


def sequential(gen: muse.Generator, prompts: list[str]) -> int:
    return sum(gen.generate(p, **PARAMS).usage.completion_tokens for p in prompts)


def batched(gen: muse.Generator, prompts: list[str]) -> int:
    results = gen.batch(prompts, max_concurrency=len(prompts), **PARAMS).raise_for_errors()
    return sum(r.usage.completion_tokens for r in results)


def concurrent_async(gen: muse.Generator, prompts: list[str]) -> int:
    async def main() -> int:
        results = await asyncio.gather(*(gen.agenerate(p, **PARAMS) for p in prompts))
        return sum(r.usage.completion_tokens for r in results)

    return asyncio.run(main())


def threads(gen: muse.Generator, prompts: list[str]) -> int:
    counts = [0] * len(prompts)

    def call(i: int) -> None:
        counts[i] = gen.generate(prompts[i], **PARAMS).usage.completion_tokens

    workers = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts)


def rates(fns: dict[str, Callable[[], int]], runs: int) -> dict[str, float]:
    """Median tokens/s of each function over ``runs`` interleaved runs (after one warm-up)."""
    for fn in fns.values():
        fn()
    measures = {name: functools.partial(_tokens_per_s, fn) for name, fn in fns.items()}
    return {name: statistics.median(v) for name, v in interleave(measures, runs).items()}


def _tokens_per_s(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    tokens = fn()
    return tokens / (time.perf_counter() - start)


def _first_token_s(gen: muse.Generator, prompt: str) -> float:
    start = time.perf_counter()
    with gen.stream(prompt, **PARAMS) as stream:
        for chunk in stream:
            if chunk.text:
                return time.perf_counter() - start
    return time.perf_counter() - start


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def ttft(gen: muse.Generator, samples: int) -> dict[str, tuple[float, float]]:
    """TTFT p50/p99 idle, and while 15 other streams are running."""
    idle = [_first_token_s(gen, _prompts(1)[0]) for _ in range(samples)]
    stop = threading.Event()

    def background(prompt: str) -> None:
        while not stop.is_set():
            for _ in gen.stream(prompt, max_tokens=NEW_TOKENS * 4, temperature=0):
                if stop.is_set():
                    break

    others = [
        threading.Thread(target=background, args=(p,), daemon=True)
        for p in _prompts(CONCURRENCY - 1)
    ]
    for thread in others:
        thread.start()
    time.sleep(0.5)  # let them all start streaming
    loaded = [_first_token_s(gen, "# under load\ndef g(y):\n") for _ in range(samples)]
    stop.set()
    for thread in others:
        thread.join()
    return {"idle": _percentiles(idle), "under load": _percentiles(loaded)}


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_over(gen: muse.Generator, requests: int) -> tuple[float, float]:
    """RSS after 200 short requests, and after ``requests`` more (16 at a time)."""

    async def flood(count: int) -> None:
        prompts = _prompts(CONCURRENCY)
        for start in range(0, count, CONCURRENCY):
            batch = prompts[: min(CONCURRENCY, count - start)]
            await asyncio.gather(*(gen.agenerate(p, max_tokens=8, temperature=0) for p in batch))

    asyncio.run(flood(200))
    before = rss_mb()
    asyncio.run(flood(requests))
    return before, rss_mb()


def _wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True, timeout=300)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cold_start(runs: int) -> dict[str, float]:
    """Wall time of the README main job and of ``muse.load()`` in fresh interpreters."""
    bindir = Path(sys.executable).parent
    load = "import muse_sdk as muse; muse.load('local:muse-tiny')"
    return {
        "muse generate": _wall([str(bindir / "muse"), "generate", "Once upon a time"], runs),
        "muse.load": _wall([sys.executable, "-c", load], runs),
        "python -c pass": _wall([sys.executable, "-c", "pass"], runs),
    }


def run(args: argparse.Namespace, model: str) -> list[str]:
    prompts = _prompts(CONCURRENCY)
    gen = muse.load(f"local:{model}", device=args.device, dtype=args.dtype, batch_size=16)
    tok = rates(
        {
            "sequential": lambda: sequential(gen, prompts),
            "batch": lambda: batched(gen, prompts),
            "agenerate": lambda: concurrent_async(gen, prompts),
            "threads": lambda: threads(gen, prompts),
        },
        args.runs,
    )
    seq, bat = tok["sequential"], tok["batch"]
    lines = [f"| 16 sequential generate | {seq:.1f} tok/s | | |"]
    lines.append(f"| batch() of 16 | {bat:.1f} tok/s | {seq:.1f} | {bat / seq:.2f}x |")
    for name, label in (("agenerate", "16 concurrent agenerate"), ("threads", "16 threads")):
        value = tok[name]
        lines.append(
            f"| {label} vs sequential | {value:.1f} tok/s | {seq:.1f} | "
            f"**{value / seq:.2f}x** (target >= 3.0x) |"
        )
        lines.append(
            f"| {label} vs batch() | {value:.1f} tok/s | {bat:.1f} | "
            f"**{value / bat:.2f}x** (target >= 0.9x) |"
        )
    for where, (p50, p99) in ttft(gen, args.ttft_samples).items():
        lines.append(
            f"| time to first token, {where} | p50 {p50 * 1000:.0f} ms | "
            f"p99 {p99 * 1000:.0f} ms | |"
        )
    if args.requests:
        before, after = rss_over(gen, args.requests)
        lines.append(
            f"| RSS after 200 requests / after {args.requests} more | {before:.0f} MiB | "
            f"{after:.0f} MiB | {after / before:.2f}x |"
        )
    gen.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="concurrent callers of the local provider")
    parser.add_argument("--model", choices=["small", "tiny"], default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttft-samples", type=int, default=20)
    parser.add_argument("--requests", type=int, default=0, help="RSS check: requests to run")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold start runs (tiny only)")
    parser.add_argument("--smoke", action="store_true", help="a 2-layer model, to test the script")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = "muse-tiny" if args.model == "tiny" else str(build_model_dir(Path(tmp), args.smoke))
        lines = run(args, model)
    if args.model == "tiny" and args.cold_runs:
        for name, seconds in cold_start(args.cold_runs).items():
            lines.append(f"| cold start: {name} | {seconds:.2f} s | | |")
    print("\n".join(["| measurement | value | baseline | ratio |", "|---|---|---|---|", *lines]))


if __name__ == "__main__":
    main()
