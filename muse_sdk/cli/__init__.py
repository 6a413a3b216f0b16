"""The ``muse`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from muse_sdk._version import __version__

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``muse`` console script."""
    parser = argparse.ArgumentParser(prog="muse", description="Generate text with muse_sdk.")
    parser.add_argument("--version", action="version", version=f"muse_sdk {__version__}")
    sub = parser.add_subparsers(dest="command")
    gen = sub.add_parser("generate", help="generate text and stream it to the terminal")
    gen.add_argument("prompt")
    gen.add_argument("-m", "--model", default=None, help="provider:model (default: configured)")
    gen.add_argument("--max-tokens", type=int, default=50)
    args = parser.parse_args(argv)
    if args.command != "generate":
        parser.print_help()
        return 0
    import muse_sdk as muse

    try:
        generator = muse.load(args.model)
        for chunk in generator.stream(args.prompt, max_tokens=args.max_tokens):
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
    except muse.MuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write("\n")
    return 0
