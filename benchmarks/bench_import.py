"""``import muse_sdk`` in a fresh interpreter against ``import openai`` and ``import litellm``.

Each sample is one new ``python -c`` process that times its own import (interpreter start-up,
the same for all, is left out). Targets: <= 0.5x openai, <= 0.1x litellm.
"""

from __future__ import annotations

from functools import partial

from benchmarks._harness import Context, Result, Row, Target, have, interleave, missing, python_s

NAME = "import"
CODE = "import time; t = time.perf_counter(); import {0}; print(time.perf_counter() - t)"
TARGETS = {"openai": Target("<=", 0.5), "litellm": Target("<=", 0.1)}


def import_ms(module: str) -> float:
    return python_s(CODE.format(module)) * 1e3


def run(ctx: Context) -> list[Result]:
    modules = ["muse_sdk", "openai"] + (["litellm"] if have("litellm") else [])
    for module in modules:  # warm up: bytecode caches, the OS file cache
        import_ms(module)
    samples = interleave({m: partial(import_ms, m) for m in modules}, ctx.runs)
    results: list[Result] = []
    for peer, target in TARGETS.items():
        if peer not in samples:
            results.append(missing(NAME, f"muse_sdk vs {peer}", peer))
            continue
        muse, other = samples["muse_sdk"], samples[peer]
        results.append(
            Row(NAME, "import muse_sdk", f"import {peer}", "-", "ms", muse, other, target)
        )
    return results
