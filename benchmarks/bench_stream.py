"""Streaming: time to the first chunk with text, muse_sdk ``gen.stream`` vs the official client.

Both ask for usage at the end of the stream (``stream_options.include_usage``, muse_sdk's
default) and read the stream to its end after the first chunk, outside the timed part. The
figure is the mean over ``--requests`` streams per run, in milliseconds. Target: <= 1.1x.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from benchmarks import _peers
from benchmarks._harness import PROMPT, Context, Result, Row, Target, interleave

NAME = "stream"
ENDPOINTS = ("completions", "chat")
WARMUP = 20


def _first_text_ms(events: Any, text_of: Callable[[Any], str], start: float) -> float:
    first = None
    for event in events:
        if first is None and text_of(event):
            first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("the stream had no text")
    return first * 1e3


def _event_text(event: Any) -> str:
    if not event.choices:
        return ""
    choice = event.choices[0]
    return getattr(choice, "text", None) or getattr(choice.delta, "content", None) or ""


def openai_stream(url: str, endpoint: str) -> Callable[[], float]:
    import openai

    client = openai.OpenAI(api_key=_peers.KEY, base_url=url)
    common = {
        "max_tokens": _peers.MAX_TOKENS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if endpoint == "chat":
        common |= {"model": _peers.CHAT_MODEL, "messages": _peers._messages(PROMPT)}
        create: Callable[..., Any] = client.chat.completions.create
    else:
        common |= {"model": _peers.TEXT_MODEL, "prompt": PROMPT}
        create = client.completions.create

    def once() -> float:
        start = time.perf_counter()
        return _first_text_ms(create(**common), _event_text, start)

    return once


def muse_stream(url: str, endpoint: str) -> Callable[[], float]:
    gen = _peers.muse_gen(url, endpoint)

    def once() -> float:
        start = time.perf_counter()
        chunks = gen.stream(PROMPT, max_tokens=_peers.MAX_TOKENS)
        return _first_text_ms(chunks, lambda chunk: chunk.text, start)

    return once


def _mean_ms(once: Callable[[], float], count: int) -> float:
    return sum(once() for _ in range(count)) / count


def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for endpoint in ENDPOINTS:
        streams = {
            "muse_sdk": muse_stream(ctx.url, endpoint),
            "openai": openai_stream(ctx.url, endpoint),
        }
        for once in streams.values():
            _mean_ms(once, WARMUP)
        measures = {name: partial(_mean_ms, once, ctx.requests) for name, once in streams.items()}
        samples = interleave(measures, ctx.runs)
        muse, raw = samples["muse_sdk"], samples["openai"]
        results.append(
            Row(
                NAME,
                "muse_sdk",
                "openai",
                endpoint,
                "ms to first chunk",
                muse,
                raw,
                Target("<=", 1.1),
            )
        )
    return results
