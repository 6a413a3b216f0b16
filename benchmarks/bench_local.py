"""The local backend: runs ``benchmarks/local_speed.py`` in a child process and reads its table.

``local_speed`` (GPT-2 small shape, random weights, 64 new tokens, CPU by default) measures
muse_sdk's ``LocalGenerator`` against plain ``transformers`` ``generate``, ``batch()`` against
sequential calls, bfloat16 against float32, and the memory peak. Each child reports medians
over ``--local-runs`` runs; the harness repeats the child ``--local-repeats`` times (a fresh
process each, so the memory peak is the benchmark's own) and takes the median and spread of
its ratios. Targets: single prompt >= 0.95x HF ``generate``; batch of 16 >= 5x sequential.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass

from benchmarks._harness import ROOT, Context, Info, Result, Row, Skip, Target, have

NAME = "local"
_NUMBER = r"(\d+(?:\.\d+)?)"
_VALUE = re.compile(rf"^(.*?)\s*{_NUMBER}\s*tok(?:en)?s?/s")
_RATIO = re.compile(rf"^(?:\*\*)?{_NUMBER}x")
_TARGET = re.compile(rf"target\s*(>=|<=)\s*{_NUMBER}x")


@dataclass(frozen=True)
class Parsed:
    """One ratio row of local_speed's table, e.g. ``muse 40 tok/s | HF generate 38 | 1.05x``."""

    label: str
    subject: str
    baseline: str
    subject_value: float
    baseline_value: float
    ratio: float
    target: Target | None


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_row(line: str) -> Parsed | str | None:
    """A ratio row, a context-only row as text (memory), or ``None`` (header, ruler, other)."""
    cells = _cells(line)
    if not line.lstrip().startswith("|") or len(cells) < 4 or set(cells[0]) <= {"-", ":"}:
        return None
    ratio = _RATIO.match(cells[3])
    subject, baseline = _VALUE.match(cells[1]), _VALUE.match(cells[2])
    if ratio is None or subject is None or baseline is None:
        return " ".join(c for c in cells[1:] if c) if cells[0] != "measurement" else None
    target = _TARGET.search(cells[3])
    return Parsed(
        cells[0],
        subject.group(1),
        baseline.group(1),
        float(subject.group(2)),
        float(baseline.group(2)),
        float(ratio.group(1)),
        Target(target.group(1), float(target.group(2))) if target else None,
    )


def _child(runs: int, device: str) -> str:
    cmd = [sys.executable, "-m", "benchmarks.local_speed", "--runs", str(runs), "--device", device]
    out = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"local_speed failed:\n{out.stderr[-2000:]}")
    return out.stdout


def _to_results(outputs: list[str]) -> list[Result]:
    parsed: dict[str, list[Parsed]] = {}
    context: dict[str, str] = {}
    for output in outputs:
        for line in output.splitlines():
            row = parse_row(line)
            if isinstance(row, Parsed):
                parsed.setdefault(row.label, []).append(row)
            elif isinstance(row, str):
                context[_cells(line)[0]] = row  # the last child's figure
    results: list[Result] = []
    for label, rows in parsed.items():
        first = rows[0]
        subject = [r.subject_value for r in rows]
        baseline = [r.baseline_value for r in rows]
        ratios = [r.ratio for r in rows]
        results.append(
            Row(
                NAME,
                first.subject,
                first.baseline,
                label,
                "tokens/s",
                subject,
                baseline,
                first.target,
                ratio_samples=ratios,
            )
        )
    results += [Info(NAME, label, value) for label, value in context.items()]
    return results


def run(ctx: Context) -> list[Result]:
    if not (have("torch") and have("transformers")):
        return [Skip(NAME, "local backend", "torch/transformers not installed (the local extra)")]
    return _to_results([_child(ctx.local_runs, ctx.device) for _ in range(ctx.local_repeats)])
