"""Speed of the local provider against plain ``transformers`` on a GPT-2-small-shaped model.

The model has GPT-2 small's shape (12 layers, d=768, 12 heads, 50257-token vocabulary) with
random weights, built in memory and saved to a temporary directory: nothing is downloaded.
Measured, each as the median of several runs:

1. one prompt, 64 new tokens, greedy: ``gen.generate`` vs ``model.generate`` (target >= 0.95x);
2. ``gen.batch`` of 16 prompts vs 16 sequential ``gen.generate`` calls (target >= 5x tokens/s);
3. bfloat16 vs float32 for (1), on the same device;
4. peak memory (RSS on CPU, allocated memory on CUDA).

Run::

    nice python -m benchmarks.local_speed                     # CPU, float32 + bfloat16
    python -m benchmarks.local_speed --device cuda            # float16 on the GPU ("auto")
    python -m benchmarks.local_speed --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import platform
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from muse_sdk.providers.local import LocalGenerator, LocalSettings

NEW_TOKENS = 64
PROMPT = 'def read_config(path):\n    """Read the configuration file at path."""\n'
SECTION = "## Local backend"


def _prompts(count: int) -> list[str]:
    subjects = ["parse a date", "merge two dicts", "walk a tree", "retry a request"]
    return [f"# {i}: {subjects[i % 4]}\n" + "def f(x):\n" * (1 + i % 3) for i in range(count)]


def build_model_dir(out: Path, smoke: bool = False) -> Path:
    """GPT-2 small's shape, random weights, and the shipped muse-tiny tokenizer."""
    from transformers import AutoTokenizer

    from muse_sdk.models import shipped_model_dir

    tokenizer_dir = shipped_model_dir("muse-tiny")
    assert tokenizer_dir is not None
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos = tokenizer.eos_token_id
    shape = {"n_layer": 2, "n_embd": 64, "n_head": 2} if smoke else {}  # smoke: test the script
    config = GPT2Config(vocab_size=50257, n_positions=1024, **shape)  # GPT-2 small by default
    config.bos_token_id = config.eos_token_id = eos
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _sync(device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn: Callable[[], int], device: Any) -> float:
    """Tokens/s of one call of ``fn``, which returns the tokens it generated."""
    _sync(device)
    start = time.perf_counter()
    tokens = fn()
    _sync(device)
    return tokens / (time.perf_counter() - start)


def timed(fns: dict[str, Callable[[], int]], device: Any, runs: int) -> dict[str, float]:
    """Median tokens/s of each function; runs are interleaved so background load hits all."""
    for fn in fns.values():
        fn()  # warm-up: first-call allocations, kernel selection
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            rates[name].append(_rate(fn, device))
    return {name: statistics.median(values) for name, values in rates.items()}


def hf_generate(gen: LocalGenerator, prompt: str) -> int:
    """Plain ``model.generate``, the baseline, with the same settings the provider uses."""
    ids = torch.tensor([gen.tokenizer(prompt)["input_ids"]], device=gen.device)
    eos = gen.tokenizer.eos_token_id
    with torch.inference_mode():
        out = gen.hf_model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=eos,
        )
    return int(out.shape[1] - ids.shape[1])


def muse_generate(gen: LocalGenerator, prompt: str) -> int:
    result = gen.generate(prompt, max_tokens=NEW_TOKENS, temperature=0)
    return result.usage.completion_tokens


def single(gen: LocalGenerator, runs: int) -> dict[str, float]:
    return timed(
        {"muse": lambda: muse_generate(gen, PROMPT), "hf": lambda: hf_generate(gen, PROMPT)},
        gen.device,
        runs,
    )


def batched(gen: LocalGenerator, runs: int) -> dict[str, float]:
    prompts = _prompts(16)

    def one_batch() -> int:
        results = gen.batch(prompts, max_tokens=NEW_TOKENS, temperature=0).raise_for_errors()
        return sum(r.usage.completion_tokens for r in results)

    def sequential() -> int:
        return sum(muse_generate(gen, p) for p in prompts)

    return timed({"batch": one_batch, "sequential": sequential}, gen.device, runs)


def peak_memory_mb(device: Any) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(args: argparse.Namespace, model_dir: Path) -> list[str]:
    lines = []
    settings = LocalSettings(device=args.device, dtype=args.dtype, batch_size=16)
    with LocalGenerator(str(model_dir), settings) as gen:
        device, dtype = gen.device, gen.dtype
        s = single(gen, args.runs)
        b = batched(gen, args.batch_runs)
        mem = peak_memory_mb(device)
    lines += [
        f"| single prompt, {NEW_TOKENS} new tokens, greedy, {dtype} | muse {s['muse']:.1f} tok/s"
        f" | HF generate {s['hf']:.1f} tok/s | **{s['muse'] / s['hf']:.2f}x** (target >= 0.95x) |",
        f"| batch() of 16 prompts (batch_size=16), {dtype} | batch {b['batch']:.1f} tok/s"
        f" | 16 sequential generate {b['sequential']:.1f} tok/s"
        f" | **{b['batch'] / b['sequential']:.2f}x** (target >= 5x) |",
    ]
    if args.compare_dtype:
        other = "bfloat16" if dtype == torch.float32 else "float32"
        with LocalGenerator(str(model_dir), LocalSettings(device=args.device, dtype=other)) as g2:
            o = timed({"o": lambda: muse_generate(g2, PROMPT)}, g2.device, args.runs)["o"]
        lines.append(
            f"| single prompt, {other} vs {dtype} | {other} {o:.1f} tok/s"
            f" | {dtype} {s['muse']:.1f} tok/s | {o / s['muse']:.2f}x |"
        )
    lines.append(
        f"| peak memory ({'allocated' if device.type == 'cuda' else 'RSS'}) | "
        f"{peak_memory_mb(device):.0f} MiB (after the {dtype} runs: {mem:.0f} MiB) | | |"
    )
    return lines


def describe(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        hw = torch.cuda.get_device_name()
    else:
        hw = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return f"torch {torch.__version__}, Python {sys.version.split()[0]}, {hw}"


def write_section(path: Path, body: str) -> None:
    """Replace (or append) this benchmark's section, leaving every other section alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description="local provider speed vs transformers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch-runs", type=int, default=3)
    parser.add_argument("--no-compare-dtype", dest="compare_dtype", action="store_false")
    parser.add_argument("--smoke", action="store_true", help="a 2-layer model, to test the script")
    parser.add_argument("--write", type=Path, help="update this RESULTS.md's local section")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = run(args, build_model_dir(Path(tmp), args.smoke))
    table = "\n".join(
        ["| measurement | muse_sdk | baseline | ratio |", "|---|---|---|---|", *lines]
    )
    print(table)
    if args.write:
        body = (
            f"{SECTION}\n\n`{' '.join(['python -m benchmarks.local_speed', *sys.argv[1:]])}` "
            f"({describe(args.device)}; GPT-2 small shape, random weights; medians of "
            f"{args.runs} runs, {args.batch_runs} for the batch rows)\n\n{table}\n"
        )
        write_section(args.write, body)


if __name__ == "__main__":
    main()
