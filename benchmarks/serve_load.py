"""``muse serve`` under load: a load client against the server in its own process (issue 15).

The server runs as ``python -m muse_sdk serve -m SPEC --port N --log-level warning`` in a
subprocess (ready when ``GET /health`` answers 200) and the client is this process, as in real
use. Streams are read with ``httpx.AsyncClient``; each request records its time to first token
(the first SSE chunk with text), the gaps between successive text chunks, the text chunks and
the usage of ``stream_options.include_usage``. Sections (``--only``):

1. ``throughput``: 16 concurrent streaming clients, 64 greedy tokens each, on GPT-2 small's
   shape (random weights, fp32): tokens/s of the wave against an in-process
   ``gen.batch(16 prompts, max_concurrency=16)`` on the same model directory. The two never run
   at the same time: baseline, then wave, ``--runs`` times; medians and the median of the
   per-run ratios (target >= 0.8x).
2. ``latency``: time to first token and inter-token gaps, p50/p99, at 1, 4 and 16 concurrent
   streaming clients (closed loop: each client sends its next request when one ends), against
   the same closed loop in-process over ``gen.astream`` (run first, while the server is idle).
3. ``overhead``: one client, muse-tiny, 16 tokens, not streamed: the median HTTP round trip
   (a keep-alive ``httpx.Client``, and the official ``openai`` client) against in-process
   ``gen.generate`` measured while the server is idle (target <= 1.3x).
4. ``rss``: 5,000 short requests to muse-tiny (plain and streamed, some streams dropped after
   their first chunk), 8 at a time: the server's RSS after 200 and every 500 requests.

The GPT-2-small directory is ``local_speed.build_model_dir``'s, with one change: the shipped
tokenizer knows 4,096 of the model's 50,257 ids, and greedy decoding of random weights mostly
picks unknown ids, which decode to nothing, so streams would carry no text chunks at all. Ids
past the tokenizer's vocabulary get a short text of their own (``" w4096"``...), so each token
is one SSE chunk, as with a real model. The weights and the compute are unchanged.

Every section also records the CPU time other processes took meanwhile (the machine's busy
time from ``/proc/stat`` less this process's and the server's): past 5% of the wall time, the
output says the figures are noisy. Prompts are 7-10 tokens, distinct per client.

Run::

    python -m benchmarks.serve_load --json benchmarks/out/serve_load.json   # ~5 min, 2 cores
    python -m benchmarks.serve_load --quick                   # muse-tiny only, seconds
    python -m benchmarks.serve_load --only overhead rss --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from benchmarks._harness import free_port, machine

SECTIONS = ("throughput", "latency", "overhead", "rss")
TINY = "local:muse-tiny"
OVERHEAD_PROMPT = "Once upon a time"
_SUBJECTS = ("a fox", "the sea", "a robot", "my town", "a king", "the moon", "a cat", "rain")


def prompts(count: int) -> list[str]:
    """``count`` distinct prompts of 7-10 tokens (muse-tiny's tokenizer)."""
    return [f"Story {i} about {_SUBJECTS[i % 8]}:" for i in range(count)]


# --- the server process ---------------------------------------------------------------------


class Server:
    """``muse serve`` in a subprocess: start it, wait for /health, read /proc, stop it."""

    def __init__(self, spec: str, log_path: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.model = ""
        self.startup_s = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout_s: float = 300.0) -> None:
        cmd = [sys.executable, "-m", "muse_sdk", "serve", "-m", self.spec]
        cmd += ["--port", str(self.port), "--log-level", "warning"]
        start = time.perf_counter()
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = start + timeout_s
        while time.perf_counter() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self._proc.returncode}): {self.log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"the server was not ready after {timeout_s:.0f} s: {self.log()}")
        self.startup_s = time.perf_counter() - start
        self.model = httpx.get(f"{self.url}/v1/models", timeout=5).json()["data"][0]["id"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def rss_mib(self) -> float:
        return self._status("VmRSS") / 1024

    def threads(self) -> int:
        return self._status("Threads")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_s(self) -> float:
        """User + system CPU seconds the server has used so far."""
        return process_cpu_s(self.pid)

    def in_flight(self) -> int:
        return int(httpx.get(f"{self.url}/health", timeout=5).json().get("in_flight", -1))

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then SIGKILL after 30 s: how it ended, and what it logged."""
        proc = self._proc
        if proc is None:
            return {}
        start = time.perf_counter()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
        self._proc = None
        return {
            "exit_code": proc.returncode,
            "stop_s": round(time.perf_counter() - start, 3),
            "killed": killed,
            "log": self.log_path.read_text(errors="replace")[-3000:],
        }


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (steal included), from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def watched(server: Server, into: dict[str, Any]) -> Iterator[None]:
    """Record the wall time, and the CPU that other processes took meanwhile (noise).

    ``other_cpu_s`` is the machine's busy time less this process's and the server's: another
    job's tests, a VM neighbour's steal. Near 0 means the figures had the machine to themselves.
    """
    pid = os.getpid()
    start, busy = time.perf_counter(), machine_busy_s()
    ours = process_cpu_s(pid) + server.cpu_s()
    yield
    ours = process_cpu_s(pid) + server.cpu_s() - ours
    into["wall_s"] = round(time.perf_counter() - start, 2)
    into["other_cpu_s"] = round(machine_busy_s() - busy - ours, 2)


@contextlib.contextmanager
def running(spec: str, tmp: Path, stops: list[dict[str, Any]]) -> Iterator[Server]:
    """A started server; its stop report is appended to ``stops``."""
    server = Server(spec, tmp / f"server-{len(stops)}.log")
    server.start()
    try:
        yield server
    finally:
        stops.append({"spec": spec, **server.stop()})


# --- the load client ------------------------------------------------------------------------


@dataclass
class Record:
    """One request as the client saw it."""

    status: int = 0
    ttft_s: float | None = None
    gaps_s: list[float] = field(default_factory=list)
    text_chunks: int = 0
    completion_tokens: int | None = None
    total_s: float = 0.0
    done: bool = False  # saw ``data: [DONE]``
    ignored: str = ""  # x-muse-ignored-fields
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.done and not self.error

    def text_at(self, now: float, start: float, last: float) -> float:
        """Count a text chunk that arrived at ``now``: the first sets TTFT, the next add gaps."""
        if self.ttft_s is None:
            self.ttft_s = now - start
        else:
            self.gaps_s.append(now - last)
        self.text_chunks += 1
        return now


def _body(model: str, prompt: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "prompt": prompt, "max_tokens": max_tokens}
    body["temperature"] = 0
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


async def stream_one(
    client: httpx.AsyncClient, model: str, prompt: str, max_tokens: int, abort: bool = False
) -> Record:
    """A streamed completion; ``abort`` drops the connection after the first text chunk."""
    record = Record()
    start = last = time.perf_counter()
    try:
        body = _body(model, prompt, max_tokens, stream=True)
        async with client.stream("POST", "/v1/completions", json=body) as reply:
            record.status = reply.status_code
            record.ignored = reply.headers.get("x-muse-ignored-fields", "")
            if reply.status_code != 200:
                record.error = (await reply.aread()).decode(errors="replace")[:300]
                return record
            async for line in reply.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    record.done = True
                    break
                event = json.loads(data)
                now = time.perf_counter()
                if "error" in event:
                    record.error = str(event["error"])[:300]
                    break
                if any(choice.get("text") for choice in event["choices"]):
                    last = record.text_at(now, start, last)
                    if abort:
                        record.done = True
                        break
                if event.get("usage"):
                    record.completion_tokens = event["usage"]["completion_tokens"]
    except httpx.HTTPError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    record.total_s = time.perf_counter() - start
    return record


async def plain_one(client: httpx.AsyncClient, model: str, prompt: str, max_tokens: int) -> Record:
    """A completion that is not streamed."""
    record = Record()
    start = time.perf_counter()
    try:
        reply = await client.post("/v1/completions", json=_body(model, prompt, max_tokens, False))
        record.status = reply.status_code
        if reply.status_code == 200:
            data = reply.json()
            record.completion_tokens = data["usage"]["completion_tokens"]
            record.done = True
        else:
            record.error = reply.text[:300]
    except httpx.HTTPError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    record.total_s = time.perf_counter() - start
    return record


def _client(url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(300.0), limits=limits)


async def closed_loop(
    url: str, model: str, clients: int, requests: int, max_tokens: int
) -> tuple[list[Record], float]:
    """``clients`` streaming clients sending ``requests`` in all, back to back; and the wall."""
    async with _client(url, clients) as client:
        return await _loop(
            lambda prompt: stream_one(client, model, prompt, max_tokens), clients, requests
        )


async def _loop(
    send: Callable[[str], Awaitable[Record]], clients: int, requests: int
) -> tuple[list[Record], float]:
    texts = prompts(max(clients, 16))
    results: list[Record] = []
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while sent < requests:
            prompt = texts[sent % len(texts)]
            sent += 1
            results.append(await send(prompt))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return results, time.perf_counter() - start


async def stream_in_process(gen: Any, prompt: str, max_tokens: int) -> Record:
    """The in-process twin of :func:`stream_one`: ``gen.astream``, timed the same way."""
    record = Record(status=200)
    start = last = time.perf_counter()
    async with gen.astream(prompt, max_tokens=max_tokens, temperature=0) as stream:
        async for chunk in stream:
            now = time.perf_counter()
            if chunk.text:
                last = record.text_at(now, start, last)
            if chunk.usage is not None:
                record.completion_tokens = chunk.usage.completion_tokens
    record.done = True
    record.total_s = time.perf_counter() - start
    return record


# --- figures --------------------------------------------------------------------------------


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99 (nearest rank) of ``values``."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def check_tokens(records: list[Record], expected: int) -> dict[str, Any]:
    """Whether every request succeeded with ``expected`` tokens, by usage and by text chunks."""
    return {
        "requests": len(records),
        "failed": sum(not r.ok for r in records),
        "errors": sorted({r.error for r in records if r.error})[:5],
        "usage_not_expected": sum(r.completion_tokens != expected for r in records),
        "text_chunks_not_usage": sum(r.text_chunks != r.completion_tokens for r in records),
        "ignored_fields": sorted({r.ignored for r in records if r.ignored}),
    }


def _notes(check: dict[str, Any], expected: int) -> list[str]:
    notes = []
    if check["failed"]:
        notes.append(f"{check['failed']} of {check['requests']} requests failed: {check['errors']}")
    if check["usage_not_expected"]:
        notes.append(f"{check['usage_not_expected']} requests did not report {expected} tokens")
    if check["text_chunks_not_usage"]:
        notes.append(f"{check['text_chunks_not_usage']} requests: text chunks != usage tokens")
    if check["ignored_fields"]:
        notes.append(f"the server ignored fields: {check['ignored_fields']}")
    return notes


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"


# --- sections -------------------------------------------------------------------------------


def throughput(server: Server, spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """Server wave of ``--clients`` streams vs in-process ``batch()``, alternately."""
    import muse_sdk as muse

    texts = prompts(args.clients)
    gen = muse.load(spec)

    def baseline() -> tuple[float, float, float, int]:
        before_server, cpu = server.cpu_s(), time.process_time()
        start = time.perf_counter()
        results = gen.batch(
            texts,
            max_tokens=args.tokens,
            temperature=0,
            max_concurrency=args.clients,
        ).raise_for_errors()
        wall = time.perf_counter() - start
        tokens = sum(r.usage.completion_tokens for r in results)
        return tokens / wall, time.process_time() - cpu, server.cpu_s() - before_server, tokens

    def wave() -> tuple[float, list[Record], float, float, float]:
        before_server, cpu = server.cpu_s(), time.process_time()
        records, wall = asyncio.run(
            closed_loop(server.url, server.model, args.clients, args.clients, args.tokens)
        )
        tokens = sum(r.completion_tokens or 0 for r in records)
        return (
            tokens / wall,
            records,
            wall,
            time.process_time() - cpu,
            server.cpu_s() - before_server,
        )

    baseline()  # warm-ups
    wave()
    rows: list[dict[str, Any]] = []
    records: list[Record] = []
    for _ in range(args.runs):
        base_rate, base_cpu, idle_server_cpu, base_tokens = baseline()
        rate, wave_records, wall, client_cpu, server_cpu = wave()
        records += wave_records
        rows.append(
            {
                "in_process_tok_s": base_rate,
                "in_process_tokens": base_tokens,
                "server_tok_s": rate,
                "ratio": rate / base_rate,
                "wave_s": wall,
                "in_process_cpu_s": base_cpu,
                "server_cpu_s_during_baseline": idle_server_cpu,
                "client_cpu_s": client_cpu,
                "server_cpu_s": server_cpu,
                "mean_text_chunks": statistics.mean(r.text_chunks for r in wave_records),
            }
        )
    gen.close()
    ratios = [r["ratio"] for r in rows]
    return {
        "clients": args.clients,
        "tokens": args.tokens,
        "runs": rows,
        "server_tok_s": statistics.median(r["server_tok_s"] for r in rows),
        "in_process_tok_s": statistics.median(r["in_process_tok_s"] for r in rows),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "check": check_tokens(records, args.tokens),
    }


def _level(records: list[Record], wall: float) -> dict[str, Any]:
    ttft = [r.ttft_s for r in records if r.ttft_s is not None]
    gaps = [g for r in records for g in r.gaps_s]
    return {
        "ttft": percentiles(ttft) if ttft else None,
        "itl": percentiles(gaps) if gaps else None,
        "itl_mean": statistics.mean(gaps) if gaps else None,
        "tok_s": sum(r.completion_tokens or 0 for r in records) / wall,
        "gap_samples": len(gaps),
        "ttft_samples_ms": sorted(round(t * 1000, 1) for t in ttft),
    }


def latency(server: Server, spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """TTFT and inter-token gaps at each of ``--latency-clients``: server, then in-process."""
    import muse_sdk as muse

    gen = muse.load(spec)

    def in_process(clients: int, requests: int) -> tuple[list[Record], float]:
        send = functools.partial(stream_in_process, gen, max_tokens=args.tokens)
        return asyncio.run(_loop(send, clients, requests))

    def via_server(clients: int, requests: int) -> tuple[list[Record], float]:
        return asyncio.run(closed_loop(server.url, server.model, clients, requests, args.tokens))

    in_process(1, 1)  # warm-ups
    via_server(1, 1)
    levels = []
    for clients in args.latency_clients:
        requests = max(args.latency_requests, clients)
        base_noise: dict[str, Any] = {}
        noise: dict[str, Any] = {}
        with watched(server, base_noise):  # the server is idle meanwhile
            base_records, base_wall = in_process(clients, requests)
        with watched(server, noise):
            records, wall = via_server(clients, requests)
        levels.append(
            {
                "clients": clients,
                "requests": requests,
                **_level(records, wall),
                **noise,
                "in_process": {**_level(base_records, base_wall), **base_noise},
                "check": check_tokens(records, args.tokens),
            }
        )
    gen.close()
    return {"tokens": args.tokens, "levels": levels}


def overhead(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Median round trip of one non-streamed request vs in-process ``generate``."""
    import muse_sdk as muse

    gen = muse.load(TINY)
    body = _body(server.model, OVERHEAD_PROMPT, args.overhead_tokens, stream=False)
    http = httpx.Client(base_url=server.url, timeout=60)
    try:
        import openai

        oai: Any = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    except ImportError:
        oai = None
    tokens: dict[str, set[int]] = {"in-process": set(), "httpx": set(), "openai": set()}

    def in_process() -> None:
        result = gen.generate(OVERHEAD_PROMPT, max_tokens=args.overhead_tokens, temperature=0)
        tokens["in-process"].add(result.usage.completion_tokens)

    def via_httpx() -> None:
        reply = http.post("/v1/completions", json=body)
        reply.raise_for_status()
        tokens["httpx"].add(reply.json()["usage"]["completion_tokens"])

    def via_openai() -> None:
        reply = oai.completions.create(
            model=server.model,
            prompt=OVERHEAD_PROMPT,
            max_tokens=args.overhead_tokens,
            temperature=0,
        )
        _ = reply.choices[0].text
        tokens["openai"].add(reply.usage.completion_tokens)

    fns = {"in-process": in_process, "httpx": via_httpx}
    if oai is not None:
        fns["openai"] = via_openai
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        for _ in range(5):
            fn()  # warm-up
    blocks = max(1, min(5, args.overhead_requests // 10))
    per_block = max(1, args.overhead_requests // blocks)
    for _ in range(blocks):  # alternate blocks, so a slow patch of the machine hits all
        for name, fn in fns.items():
            for _ in range(per_block):
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    http.close()
    if oai is not None:
        oai.close()
    gen.close()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["in-process"]
    return {
        "tokens": args.overhead_tokens,
        "requests": blocks * per_block,
        "median_s": medians,
        "p90_s": {n: sorted(v)[int(0.9 * (len(v) - 1))] for n, v in samples.items()},
        "ratio": {n: m / base for n, m in medians.items() if n != "in-process"},
        "completion_tokens": {n: sorted(v) for n, v in tokens.items() if v},
    }


def rss(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Server RSS over ``--requests`` short requests, ``--rss-concurrency`` at a time."""
    warm_up = min(200, args.requests // 4)
    every = min(500, max(1, args.requests // 4))
    texts = prompts(16)
    samples: list[dict[str, Any]] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    sent = done = 0

    def sample() -> None:
        samples.append(
            {
                "requests": done,
                "rss_mib": round(server.rss_mib(), 1),
                "threads": server.threads(),
                "fds": server.fds(),
            }
        )

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent, done
        while sent < args.requests:
            i = sent
            sent += 1
            prompt = texts[i % len(texts)]
            if i % 2 == 0:
                record = await plain_one(client, server.model, prompt, 4)
                kind = "plain"
            else:
                abort = args.abort_every > 0 and i % args.abort_every == 1
                record = await stream_one(client, server.model, prompt, 4, abort=abort)
                kind = "stream dropped" if abort else "stream"
            key = f"{kind} {record.status}" + ("" if record.ok else " failed")
            statuses[key] = statuses.get(key, 0) + 1
            if record.error and len(errors) < 5:
                errors.append(record.error)
            done += 1
            if done == warm_up or (done > warm_up and done % every == 0):
                sample()

    async def main() -> float:
        async with _client(server.url, args.rss_concurrency) as client:
            start = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(args.rss_concurrency)))
            return time.perf_counter() - start

    before = server.rss_mib()
    wall = asyncio.run(main())
    if not samples or samples[-1]["requests"] != done:
        sample()
    deadline = time.perf_counter() + 10
    while (left := server.in_flight()) and time.perf_counter() < deadline:
        time.sleep(0.1)
    rss_values = [s["rss_mib"] for s in samples]
    return {
        "requests": done,
        "concurrency": args.rss_concurrency,
        "wall_s": wall,
        "requests_per_s": done / wall,
        "rss_before_mib": round(before, 1),
        "samples": samples,
        "first_mib": rss_values[0],
        "last_mib": rss_values[-1],
        "max_mib": max(rss_values),
        "growth_mib": round(rss_values[-1] - rss_values[0], 1),
        "statuses": statuses,
        "errors": errors,
        "in_flight_after": left,
    }


# --- the model directory --------------------------------------------------------------------


def small_model_dir(out: Path) -> Path:
    """``local_speed.build_model_dir``, with a text for every id past the tokenizer's vocab."""
    from benchmarks.local_speed import build_model_dir

    directory = build_model_dir(out)
    path = directory / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    size = json.loads((directory / "config.json").read_text())["vocab_size"]
    taken = set(vocab.values()) | {t["id"] for t in tokenizer["added_tokens"]}
    for i in range(size):
        if i not in taken:
            vocab[f"\u0120w{i}"] = i  # byte-level "Ġ" is a space: id i decodes to " w{i}"
    path.write_text(json.dumps(tokenizer))
    return directory


# --- the report -----------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    lines = ["| measurement | server | in-process baseline | ratio / note |", "|---|---|---|---|"]
    if "throughput" in results:
        t = results["throughput"]
        lines.append(
            f"| {t['clients']} concurrent streams x {t['tokens']} tokens: server vs in-process "
            f"batch() | {t['server_tok_s']:.1f} tok/s | {t['in_process_tok_s']:.1f} tok/s | "
            f"**{t['ratio']:.2f}x** ({t['ratio_min']:.2f}-{t['ratio_max']:.2f}; target >= 0.8x) |"
        )
        runs = t["runs"]
        cpu = statistics.median(r["server_cpu_s"] for r in runs)
        base_cpu = statistics.median(r["in_process_cpu_s"] for r in runs)
        lines.append(
            f"| CPU s per wave: server / in-process batch() | {cpu:.2f} s | {base_cpu:.2f} s | "
            f"client {statistics.median(r['client_cpu_s'] for r in runs):.2f} s; idle server "
            f"during baseline {max(r['server_cpu_s_during_baseline'] for r in runs):.2f} s |"
        )
    for level in results.get("latency", {}).get("levels", []):
        base = level["in_process"]
        for name, label in (("ttft", "TTFT"), ("itl", "inter-token")):
            ours, theirs = level[name] or (0, 0), base[name] or (0, 0)
            lines.append(
                f"| {level['clients']} client(s), {level['requests']} streams: {label} "
                f"p50 / p99 | {_ms(ours[0])} / {_ms(ours[1])} | {_ms(theirs[0])} / "
                f"{_ms(theirs[1])} | p50 {ours[0] / theirs[0]:.2f}x |"
            )
        lines.append(
            f"| {level['clients']} client(s): tokens/s | {level['tok_s']:.1f} | "
            f"{base['tok_s']:.1f} | {level['tok_s'] / base['tok_s']:.2f}x |"
        )
    if "overhead" in results:
        o = results["overhead"]
        base = o["median_s"]["in-process"]
        for name, ratio in o["ratio"].items():
            target = " (target <= 1.3x)" if name == "httpx" else ""
            lines.append(
                f"| 1 request, {o['tokens']} tokens, not streamed: {name} round trip vs "
                f"in-process generate | {_ms(o['median_s'][name])} | {_ms(base)} | "
                f"**{ratio:.2f}x**{target} |"
            )
    if "rss" in results:
        r = results["rss"]
        series = ", ".join(f"{s['requests']}: {s['rss_mib']:.0f}" for s in r["samples"])
        first, last = r["samples"][0], r["samples"][-1]
        lines.append(
            f"| RSS over {r['requests']} requests ({r['requests_per_s']:.0f}/s): after "
            f"{first['requests']} -> last (max) | {r['first_mib']:.1f} -> {r['last_mib']:.1f} "
            f"MiB (max {r['max_mib']:.1f}) | | growth **{r['growth_mib']:+.1f} MiB** |"
        )
        series = ", ".join(f"{s['requests']}: {s['rss_mib']:.0f}" for s in r["samples"])
        lines.append(f"| RSS series (requests: MiB) | {series} | | |")
        lines.append(
            f"| threads; open fds: after {first['requests']} -> last | {first['threads']} -> "
            f"{last['threads']}; {first['fds']} -> {last['fds']} | | |"
        )
    return "\n".join(lines)


def notes(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if "throughput" in results:
        t = results["throughput"]
        out += [f"throughput: {n}" for n in _notes(t["check"], t["tokens"])]
        short = [r["in_process_tokens"] for r in t["runs"]]
        if any(n != t["clients"] * t["tokens"] for n in short):
            out.append(f"throughput: in-process batch() generated {short} tokens per run")
    watched_parts = [(name, results[name]) for name in SECTIONS if name in results]
    for level in results.get("latency", {}).get("levels", []):
        watched_parts.append((f"latency at {level['clients']}, server", level))
        watched_parts.append((f"latency at {level['clients']}, in-process", level["in_process"]))
    for name, part in watched_parts:
        if part["other_cpu_s"] > max(0.5, 0.05 * part["wall_s"]):
            out.append(
                f"{name}: other processes took {part['other_cpu_s']:.1f} CPU s in "
                f"{part['wall_s']:.0f} s: noisy, rerun"
            )
    for level in results.get("latency", {}).get("levels", []):
        tokens = results["latency"]["tokens"]
        out += [f"latency at {level['clients']}: {n}" for n in _notes(level["check"], tokens)]
    if "overhead" in results:
        counts = results["overhead"]["completion_tokens"]
        if len({tuple(v) for v in counts.values()}) > 1:
            out.append(f"overhead: the paths generated different token counts: {counts}")
    if "rss" in results:
        r = results["rss"]
        failed = {k: v for k, v in r["statuses"].items() if "failed" in k}
        if failed:
            out.append(f"rss: failed requests {failed}: {r['errors']}")
        if r["in_flight_after"]:
            out.append(f"rss: /health in_flight = {r['in_flight_after']} after the run")
    for stop in results.get("server_stops", []):
        # uvicorn re-raises the SIGTERM it handled once shut down: -15 is a clean stop.
        if stop.get("killed") or stop.get("exit_code") not in (0, -signal.SIGTERM, None):
            out.append(f"server {stop['spec']}: exit {stop['exit_code']}, killed={stop['killed']}")
        if stop.get("log", "").strip():
            out.append(f"server {stop['spec']} logged: {stop['log'].strip()[-500:]}")
    return out


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in ("httpx", "starlette", "uvicorn", "openai", "torch"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="muse serve under load (issue 15)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument(
        "--model",
        choices=["small", "tiny"],
        default="small",
        help="throughput/latency model: GPT-2 small's shape, or muse-tiny",
    )
    parser.add_argument("--runs", type=int, default=3, help="throughput: baseline+wave pairs")
    parser.add_argument("--clients", type=int, default=16, help="throughput: concurrent streams")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per stream")
    parser.add_argument("--latency-clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--latency-requests", type=int, default=32, help="streams per level")
    parser.add_argument("--overhead-requests", type=int, default=100)
    parser.add_argument("--overhead-tokens", type=int, default=16)
    parser.add_argument("--requests", type=int, default=5000, help="rss: requests in all")
    parser.add_argument("--rss-concurrency", type=int, default=8)
    parser.add_argument(
        "--abort-every",
        type=int,
        default=50,
        help="rss: drop every Nth request (a stream) after its first chunk; 0: none",
    )
    parser.add_argument(
        "--quick", action="store_true", help="muse-tiny only, 2 clients, 8 tokens, 50 RSS requests"
    )
    parser.add_argument("--json", type=Path, help="write every figure and sample here")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.runs, args.clients, args.tokens = "tiny", 1, 2, 8
        args.latency_clients, args.latency_requests = [1, 2], 4
        args.overhead_requests, args.requests, args.rss_concurrency = 10, 50, 4
        args.abort_every = 10
    command = "python -m benchmarks.serve_load " + " ".join(sys.argv[1:] if argv is None else argv)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command.strip(),
        "machine": {**machine(), "more_packages": _versions()},
        "loadavg_before": _loadavg(),
    }
    stops: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        engine = set(args.only) & {"throughput", "latency"}
        spec = TINY
        if engine and args.model == "small":
            spec = f"local:{small_model_dir(tmp / 'small')}"
        groups = [(spec, engine), (TINY, set(args.only) & {"overhead", "rss"})]
        if spec == TINY:  # one server for everything (--quick)
            groups = [(TINY, set(args.only))]
        for group_spec, sections in groups:
            if not sections:
                continue
            with running(group_spec, tmp, stops) as server:
                results.setdefault("startup_s", {})[group_spec] = server.startup_s
                for name in SECTIONS:
                    if name not in sections:
                        continue
                    noise: dict[str, Any] = {}
                    with watched(server, noise):
                        if name == "throughput":
                            results[name] = throughput(server, group_spec, args)
                        elif name == "latency":
                            results[name] = latency(server, group_spec, args)
                        elif name == "overhead":
                            results[name] = overhead(server, args)
                        else:
                            results[name] = rss(server, args)
                    results[name].update(noise)
    results["server_stops"] = stops
    results["loadavg_after"] = _loadavg()
    print(table(results))
    print(f"\nload average before: {results['loadavg_before']}; after: {results['loadavg_after']}")
    for name in SECTIONS:
        if name in results:
            section = results[name]
            print(
                f"{name}: {section['wall_s']:.0f} s; other processes' CPU meanwhile: "
                f"{section['other_cpu_s']:.1f} s"
            )
    for note in notes(results):
        print(f"note: {note}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=asdict))


if __name__ == "__main__":
    main()
