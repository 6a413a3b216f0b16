"""Smoke test of the benchmark harness: it runs, and writes JSON and markdown with ratios.

No timing is asserted, and no peer is needed: peers that are not installed are skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_harness_writes_json_and_markdown(tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    cmd = [sys.executable, "-m", "benchmarks", "--only", "import", "stream", "--runs", "1"]
    cmd += ["--requests", "2", "--json", str(out_json), "--markdown", str(out_md)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    data = json.loads(out_json.read_text())
    assert data["machine"]["python"] and data["command"].startswith("python -m benchmarks")
    rows = [r for r in data["rows"] if not r.get("skipped")]
    assert {r["benchmark"] for r in rows} == {"import", "stream"}
    for row in rows:
        assert row["ratio"] > 0 and row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
        assert row["baseline_median"] > 0 and row["target"] and isinstance(row["met"], bool)
    for row in data["rows"]:
        if row.get("skipped"):
            assert "not installed" in row["note"]  # a missing peer skips with a note

    table = out_md.read_text()
    assert "| Ratio (median) |" in table and "import muse_sdk vs import openai" in table


def test_parse_local_speed_rows() -> None:
    from benchmarks.bench_local import Parsed, parse_row

    row = parse_row(
        "| single prompt, 64 new tokens | muse 41.0 tok/s | HF generate 40.0 tok/s "
        "| **1.02x** (target >= 0.95x) |"
    )
    assert isinstance(row, Parsed)
    assert (row.subject, row.baseline, row.ratio) == ("muse", "HF generate", 1.02)
    assert row.target is not None and row.target.met(1.02)
    batch = parse_row(
        "| batch() of 16 prompts | batch 120.5 tok/s | 16 sequential generate 20.1 tok/s "
        "| **6.00x** (target >= 5x) |"
    )
    assert isinstance(batch, Parsed)
    assert (batch.baseline, batch.baseline_value) == ("16 sequential generate", 20.1)
    assert parse_row("|---|---|---|---|") is None
    assert parse_row("| peak memory (RSS) | 900 MiB | | |") == "900 MiB"


def test_engine_speed_runs_on_a_small_model() -> None:
    """The concurrency benchmark runs end to end (a 2-layer model; no figure is asserted)."""
    cmd = [sys.executable, "-m", "benchmarks.engine_speed", "--model", "small", "--smoke"]
    cmd += ["--runs", "1", "--ttft-samples", "2", "--requests", "32"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for row in ("16 concurrent agenerate vs sequential", "time to first token, under load", "RSS"):
        assert row in done.stdout


def test_serve_load_runs_quick(tmp_path: Path) -> None:
    """The ``muse serve`` load benchmark runs end to end on muse-tiny (no figure is asserted)."""
    out = tmp_path / "serve.json"
    cmd = [sys.executable, "-m", "benchmarks.serve_load", "--quick", "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    for row in ("server vs in-process batch()", "TTFT p50 / p99", "httpx round trip", "RSS"):
        assert row in done.stdout
    data = json.loads(out.read_text())
    assert data["throughput"]["check"]["failed"] == 0
    assert data["rss"]["in_flight_after"] == 0
    assert all(not stop["killed"] for stop in data["server_stops"])


def test_sandbox_overhead_runs() -> None:
    """The sandbox overhead benchmark runs end to end (no figure is asserted)."""
    cmd = [sys.executable, "-m", "benchmarks.sandbox_overhead", "--runs", "2"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    for row in ("python -I -c pass", "run_python_tests, one passing test", "run_command"):
        assert row in done.stdout


def test_structured_speed_runs_quick() -> None:
    """The constrained-decoding benchmark runs end to end on muse-tiny (no figure is asserted)."""
    cmd = [sys.executable, "-m", "benchmarks.structured_speed", "--quick"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for row in ("schema compile time", "constrained vs unconstrained tokens/s, one call"):
        assert row in done.stdout
