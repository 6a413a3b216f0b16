"""Per-request overhead of the OpenAI provider over the official client, on loopback.

Runs the test server (tests/servers/openai_server.py, fixed tiny reply) in its own process, then:

- sequential keep-alive requests: ``gen.generate`` vs ``client.completions.create``;
- async fan-out, 256 requests at concurrency 64: ``gen.abatch`` and ``gen.agenerate`` vs
  ``AsyncOpenAI`` directly.

Each measurement is repeated (``--runs``), alternating muse_sdk and the direct client, and the
medians are compared. Targets: sequential <= 1.10x the direct client's time per request; async
>= 0.9x its throughput.

    python -m benchmarks.openai_overhead [--runs 15] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import openai

import muse_sdk as muse

MODEL = "gpt-3.5-turbo-instruct"
FANOUT, CONCURRENCY = 256, 64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.servers.openai_server", "--port", str(port), "--text", "ok"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if "serving" not in proc.stdout.readline():
        proc.kill()
        raise RuntimeError("the benchmark server did not start")
    return proc


def per_request_s(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count


def sequential(url: str, runs: int, count: int) -> tuple[float, float]:
    client = openai.OpenAI(api_key="bench", base_url=url, max_retries=0)
    gen = muse.load(f"openai:{MODEL}", base_url=url, api_key="bench")

    def direct() -> object:
        return client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)

    def wrapped() -> object:
        return gen.generate("Once upon a time", max_tokens=5)

    for fn in (direct, wrapped):  # warm up: connections, imports, caches
        per_request_s(fn, 50)
    raw, ours = [], []
    for _ in range(runs):
        raw.append(per_request_s(direct, count))
        ours.append(per_request_s(wrapped, count))
    client.close()
    gen.close()
    return statistics.median(raw), statistics.median(ours)


async def fanout_rps(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return FANOUT / (time.perf_counter() - start)


async def fanout(url: str, runs: int) -> tuple[float, float, float]:
    client = openai.AsyncOpenAI(api_key="bench", base_url=url, max_retries=0)
    gen = muse.load(f"openai:{MODEL}", base_url=url, api_key="bench")
    prompts = [f"Once upon a time {i}" for i in range(FANOUT)]

    async def bounded(make: Callable[[str], Awaitable[object]]) -> None:
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(prompt: str) -> object:
            async with semaphore:
                return await make(prompt)

        await asyncio.gather(*(one(p) for p in prompts))

    async def direct() -> None:
        await bounded(lambda p: client.completions.create(model=MODEL, prompt=p, max_tokens=5))

    async def via_agenerate() -> None:
        await bounded(lambda p: gen.agenerate(p, max_tokens=5))

    async def via_abatch() -> None:
        result = await gen.abatch(prompts, max_tokens=5, max_concurrency=CONCURRENCY)
        result.raise_for_errors()

    kinds = (direct, via_abatch, via_agenerate)
    for fn in kinds:
        await fanout_rps(fn)
    samples: dict[str, list[float]] = {fn.__name__: [] for fn in kinds}
    for _ in range(runs):
        for fn in kinds:
            samples[fn.__name__].append(await fanout_rps(fn))
    await client.close()
    await gen.aclose()
    return tuple(statistics.median(samples[fn.__name__]) for fn in kinds)  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per run")
    args = parser.parse_args()
    port = free_port()
    server = start_server(port)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        raw_s, ours_s = sequential(url, args.runs, args.requests)
        raw_rps, abatch_rps, agen_rps = asyncio.run(fanout(url, args.runs))
    finally:
        server.terminate()
        server.wait()
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, openai {openai.__version__}"
    )
    print(f"runs: {args.runs}, sequential requests per run: {args.requests}")
    print(f"sequential  direct create(): {raw_s * 1e3:.3f} ms/request")
    print(
        f"sequential  gen.generate():  {ours_s * 1e3:.3f} ms/request  "
        f"ratio {ours_s / raw_s:.3f}x (target <= 1.10x), "
        f"overhead {(ours_s - raw_s) * 1e6:.0f} us/request"
    )
    print(f"fan-out     AsyncOpenAI:     {raw_rps:.0f} requests/s")
    print(
        f"fan-out     gen.abatch():    {abatch_rps:.0f} requests/s  "
        f"ratio {abatch_rps / raw_rps:.3f}x (target >= 0.90x)"
    )
    print(
        f"fan-out     gen.agenerate(): {agen_rps:.0f} requests/s  "
        f"ratio {agen_rps / raw_rps:.3f}x (target >= 0.90x)"
    )


if __name__ == "__main__":
    main()
