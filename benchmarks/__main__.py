"""``python -m benchmarks``: muse_sdk against the official client, the peers and HF generate.

Runs each selected benchmark ``--runs`` times (interleaving the subject and its baselines),
prints the table, and writes JSON and markdown. Installs nothing: peers missing from the venv
are reported as skipped (``pip install -r benchmarks/requirements.txt`` adds them).

    python -m benchmarks                                  # everything, ~15 min on 2 cores
    python -m benchmarks --only import sequential --runs 5
    python -m benchmarks --json out.json --markdown out.md
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import bench_first_request, bench_import, bench_local, bench_peers, bench_stream
from benchmarks._harness import (
    PEER_ENV,
    Context,
    Result,
    Skip,
    markdown,
    report,
    serve,
    write_json,
    write_markdown,
)

OUT = Path("benchmarks/out")


@dataclass(frozen=True)
class Benchmark:
    run: Callable[[Context], list[Result]]
    needs_server: bool
    about: str


BENCHMARKS = {
    "import": Benchmark(bench_import.run, False, "import time, fresh interpreter"),
    "first_request": Benchmark(bench_first_request.run, True, "load + first request"),
    "sequential": Benchmark(bench_peers.sequential, True, "per-request overhead"),
    "fanout": Benchmark(bench_peers.fanout, True, "async fan-out, 256 at concurrency 64"),
    "stream": Benchmark(bench_stream.run, True, "time to first streamed chunk"),
    "local": Benchmark(bench_local.run, False, "local GPT-2 vs HF generate (local_speed)"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--runs", type=int, default=15, help="samples per measurement")
    parser.add_argument("--requests", type=int, default=100, help="requests per sample")
    parser.add_argument("--local-runs", type=int, default=3, help="local_speed's --runs")
    parser.add_argument("--local-repeats", type=int, default=1, help="local_speed children")
    parser.add_argument("--device", default="cpu", help="local_speed's --device")
    parser.add_argument("--json", type=Path, default=OUT / "results.json")
    parser.add_argument("--markdown", type=Path, default=OUT / "results.md")
    return parser.parse_args(argv)


def run_one(name: str, ctx: Context) -> list[Result]:
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {BENCHMARKS[name].about}", flush=True)
    start = time.perf_counter()
    try:
        results = BENCHMARKS[name].run(ctx)
    except Exception as exc:  # one broken benchmark must not lose the others' figures
        traceback.print_exc()
        results = [Skip(name, name, f"failed: {type(exc).__name__}: {exc}"[:300])]
    print(f"    {time.perf_counter() - start:.0f} s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(PEER_ENV)
    names = args.only or list(BENCHMARKS)
    ctx = Context(args.runs, args.requests, "", args.local_runs, args.local_repeats, args.device)
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        if any(BENCHMARKS[n].needs_server for n in names):
            ctx.url = stack.enter_context(serve("ok"))
        for name in names:
            results += run_one(name, ctx)
    command = " ".join(["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])])
    data = report(results, command, args.runs)
    write_json(args.json, data)
    write_markdown(args.markdown, data)
    print(markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
