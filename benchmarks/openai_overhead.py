"""Kept for old commands: the OpenAI provider's overhead now lives in the harness.

    python -m benchmarks.openai_overhead [--runs 15] [--requests 100]

is the same as ``python -m benchmarks --only sequential fanout`` (see ``bench_peers.py``):
sequential per-request time and async fan-out throughput, muse_sdk against the official client
and whichever peers are installed.
"""

from __future__ import annotations

import sys

from benchmarks.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--only", "sequential", "fanout", *sys.argv[1:]]))
