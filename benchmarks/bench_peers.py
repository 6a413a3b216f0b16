"""Per-request overhead, sequential and async fan-out: muse_sdk vs the official client and peers.

- ``sequential``: ``--requests`` back-to-back requests on one keep-alive client per run; the
  figure is milliseconds per request. Targets: <= 1.10x the official client; below LiteLLM,
  LangChain and aisuite.
- ``fanout``: 256 requests at concurrency 64 (an ``asyncio.Semaphore`` around each client's
  async call; ``gen.abatch`` uses its own ``max_concurrency``); the figure is requests/s,
  the better of two back-to-back fan-outs per sample.
  Targets: >= 0.9x ``AsyncOpenAI``; ahead of every peer with an async path.

Both endpoints are measured: ``completions`` (``gpt-3.5-turbo-instruct``) and ``chat``
(``gpt-4o-mini``); a client without an endpoint is reported as skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from benchmarks import _peers
from benchmarks._harness import (
    Context,
    Result,
    Row,
    Skip,
    Target,
    ainterleave,
    have,
    interleave,
    missing,
    per_call_ms,
)

ENDPOINTS = ("completions", "chat")
FANOUT, CONCURRENCY, WARMUP = 256, 64, 30
#: A fan-out sample is the faster of two back-to-back fan-outs: on 2 shared cores, a fan-out
#: right after another client's lands at random in a ~30% slower mode (the server juggling the
#: previous client's idle keep-alive connections), which hits every client alike.
BEST_OF = 2


def _clients(
    bench: str, endpoint: str, builders: dict[str, Callable[[str, str], Any]], url: str
) -> tuple[dict[str, Any], list[Result]]:
    calls: dict[str, Any] = {}
    skips: list[Result] = []
    for name, build in builders.items():
        if not have(_peers.MODULES[name]):
            skips.append(missing(bench, f"muse_sdk vs {name}", _peers.MODULES[name]))
            continue
        call = build(url, endpoint)
        if call is None:
            skips.append(Skip(bench, f"muse_sdk vs {name}", f"{name}: no {endpoint} path"))
        else:
            calls[name] = call
    return calls, skips


def _rows(
    bench: str, endpoint: str, unit: str, samples: dict[str, list[float]], faster: str
) -> list[Result]:
    """``muse_sdk`` against every other client; ``faster`` is the op that means "ahead"."""
    openai_target = Target("<=", 1.10) if faster == "<" else Target(">=", 0.9)
    rows: list[Result] = []
    for subject in (s for s in samples if s.startswith("muse_sdk")):
        for other in (o for o in samples if not o.startswith("muse_sdk")):
            if subject == "muse_sdk abatch" and other != "openai":
                continue
            target = openai_target if other == "openai" else Target(faster, 1.0)
            s, b = samples[subject], samples[other]
            rows.append(Row(bench, subject, other, endpoint, unit, s, b, target))
    return rows


# --- sequential --------------------------------------------------------------------------


def sequential(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for endpoint in ENDPOINTS:
        calls, skips = _clients("sequential", endpoint, _peers.SYNC, ctx.url)
        measures = {name: partial(per_call_ms, fn, ctx.requests) for name, fn in calls.items()}
        for fn in calls.values():
            per_call_ms(fn, WARMUP)
        samples = interleave(measures, ctx.runs)
        results += _rows("sequential", endpoint, "ms/request", samples, "<") + skips
    return results


# --- async fan-out -----------------------------------------------------------------------


async def _bounded_rps(call: Callable[[str], Awaitable[object]], prompts: list[str]) -> float:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(prompt: str) -> object:
        async with semaphore:
            return await call(prompt)

    best = 0.0
    for _ in range(BEST_OF):
        start = time.perf_counter()
        await asyncio.gather(*(one(p) for p in prompts))
        best = max(best, len(prompts) / (time.perf_counter() - start))
    return best


async def _abatch_rps(gen: Any, prompts: list[str]) -> float:
    best = 0.0
    for _ in range(BEST_OF):
        start = time.perf_counter()
        result = await gen.abatch(prompts, max_tokens=5, max_concurrency=CONCURRENCY)
        result.raise_for_errors()
        best = max(best, len(prompts) / (time.perf_counter() - start))
    return best


async def _fanout(ctx: Context, endpoint: str) -> list[Result]:
    calls, skips = _clients("fanout", endpoint, _peers.ASYNC, ctx.url)
    prompts = [f"{_peers.PROMPT} {i}" for i in range(FANOUT)]
    measures = {name: partial(_bounded_rps, fn, prompts) for name, fn in calls.items()}
    measures["muse_sdk agenerate"] = measures.pop("muse_sdk")
    measures["muse_sdk abatch"] = partial(_abatch_rps, _peers.muse_gen(ctx.url, endpoint), prompts)
    for measure in measures.values():
        await measure()
    samples = await ainterleave(measures, ctx.runs)
    return _rows("fanout", endpoint, "requests/s", samples, ">") + skips


async def _fanout_all(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for endpoint in ENDPOINTS:
        results += await _fanout(ctx, endpoint)
    await _peers.aclose_peers()
    return results


def fanout(ctx: Context) -> list[Result]:
    return asyncio.run(_fanout_all(ctx))
