"""Plumbing shared by the benchmarks: rows and ratios, timing, the loopback server, output.

Every figure is a *row*: a subject (usually muse_sdk) against a baseline measured in the same
run, interleaved with it. A row keeps every per-run sample of both; its ratio is the median of
the per-run ratios ``subject / baseline`` (paired, so slow drift of a shared machine cancels),
and its spread the min-max and interquartile range of those ratios.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: litellm fetches a model price list from the internet on import unless told not to.
PEER_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
PACKAGES = (
    "muse-sdk",
    "openai",
    "httpx2",
    "pydantic",
    "litellm",
    "langchain-openai",
    "langchain-core",
    "aisuite",
    "torch",
    "transformers",
)
CHAT_MODEL, TEXT_MODEL = "gpt-4o-mini", "gpt-3.5-turbo-instruct"
PROMPT = "Once upon a time"


@dataclass(frozen=True)
class Target:
    """A bound on a row's ratio, e.g. ``Target("<=", 1.10)``."""

    op: str
    value: float

    def met(self, ratio: float) -> bool:
        checks = {
            "<=": ratio <= self.value,
            ">=": ratio >= self.value,
            "<": ratio < self.value,
            ">": ratio > self.value,
        }
        return checks[self.op]

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}x"


@dataclass
class Row:
    """One subject against one baseline, with every per-run sample of both."""

    benchmark: str
    subject: str
    baseline: str
    endpoint: str
    unit: str
    subject_samples: list[float]
    baseline_samples: list[float]
    target: Target | None = None
    note: str = ""
    ratio_samples: list[float] = field(default_factory=list)

    def ratios(self) -> list[float]:
        if self.ratio_samples:
            return self.ratio_samples
        pairs = zip(self.subject_samples, self.baseline_samples, strict=True)
        return [s / b for s, b in pairs]

    def to_dict(self) -> dict[str, Any]:
        ratios = self.ratios()
        ratio = statistics.median(ratios)
        return {
            "benchmark": self.benchmark,
            "subject": self.subject,
            "baseline": self.baseline,
            "endpoint": self.endpoint,
            "unit": self.unit,
            "subject_median": _median(self.subject_samples),
            "baseline_median": _median(self.baseline_samples),
            "ratio": ratio,
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "ratio_iqr": iqr(ratios),
            "runs": len(ratios),
            "target": str(self.target) if self.target else None,
            "met": self.target.met(ratio) if self.target else None,
            "note": self.note,
            "subject_samples": self.subject_samples,
            "baseline_samples": self.baseline_samples,
            "ratio_samples": ratios,
        }


@dataclass
class Skip:
    """A row that could not be measured here (a peer not installed, no GPU, ...)."""

    benchmark: str
    subject: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        fields = {"benchmark": self.benchmark, "subject": self.subject, "note": self.note}
        return {**fields, "skipped": True, "ratio": None}


@dataclass
class Info(Skip):
    """A figure with no baseline, recorded as context (a memory peak, say)."""

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "skipped": False, "info": True}


Result = Row | Skip


@dataclass
class Context:
    """What a benchmark gets: run counts, requests per run, the server URL if any."""

    runs: int
    requests: int
    url: str = ""
    local_runs: int = 3
    local_repeats: int = 1
    device: str = "cpu"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def iqr(values: list[float]) -> float:
    if len(values) < 4:
        return max(values) - min(values)
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q3 - q1


def have(module: str) -> bool:
    """Whether a peer is importable here (without importing it)."""
    return find_spec(module) is not None


def missing(benchmark: str, subject: str, module: str) -> Skip:
    hint = "pip install -r benchmarks/requirements.txt"
    return Skip(benchmark, subject, f"{module} not installed ({hint})")


# --- timing ------------------------------------------------------------------------------


def per_call_ms(fn: Callable[[], object], count: int) -> float:
    """Mean milliseconds per call over ``count`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) * 1e3 / count


def interleave(measures: dict[str, Callable[[], float]], runs: int) -> dict[str, list[float]]:
    """Call every measure once per run, rotating the order so no one always goes first."""
    names = list(measures)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(measures[name]())
    return samples


async def ainterleave(
    measures: dict[str, Callable[[], Awaitable[float]]], runs: int
) -> dict[str, list[float]]:
    """:func:`interleave` for coroutines, all on the running event loop."""
    names = list(measures)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(await measures[name]())
    return samples


def python_s(code: str, env: dict[str, str] | None = None) -> float:
    """Run ``code`` in a fresh interpreter; it prints seconds on its last line."""
    full_env = {**os.environ, **PEER_ENV, **(env or {})}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


# --- the loopback server -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(text: str = "ok") -> Iterator[str]:
    """Run tests/servers/openai_server.py in its own process; yield its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "tests.servers.openai_server", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--text", text], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if "serving" not in proc.stdout.readline():
            raise RuntimeError("the benchmark server did not start")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the report --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
    }


def report(results: list[Result], command: str, runs: int) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "runs": runs,
        "machine": machine(),
        "rows": [r.to_dict() for r in results],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _md_row(row: dict[str, Any]) -> str:
    name = f"{row['subject']} vs {row.get('baseline', '')}"
    if row.get("info"):
        return f"| {row['benchmark']} | {row['subject']} | | {row['note']} | | | | | context |"
    if row.get("skipped"):
        return f"| {row['benchmark']} | {row['subject']} | | | | | | | skipped: {row['note']} |"
    met = {True: "met", False: "**not met**", None: ""}[row["met"]]
    target = f"{row['target']} {met}".strip() if row["target"] else ""
    return (
        f"| {row['benchmark']} | {name} | {row['endpoint']} "
        f"| {_num(row['subject_median'])} / {_num(row['baseline_median'])} {row['unit']} "
        f"| **{row['ratio']:.3f}x** | {row['ratio_min']:.3f}-{row['ratio_max']:.3f} "
        f"| {row['ratio_iqr']:.3f} | {target} | {row['note']} |"
    )


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    head = [
        f"Date: {data['date']}. Command: `{data['command']}` ({data['runs']} runs).",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}.",
        f"Packages: {versions}.",
        "",
        "| Benchmark | Subject vs baseline | Endpoint | Medians (subject / baseline) "
        "| Ratio (median) | Ratio min-max | Ratio IQR | Target | Note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    return "\n".join([*head, *(_md_row(r) for r in data["rows"])]) + "\n"


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(data), encoding="utf-8")
