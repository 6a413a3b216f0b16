"""The ``muse`` command line (typer + rich).

Commands: ``generate``, ``code``, ``batch``, ``models``, ``config check``. Heavy libraries (torch,
transformers, openai) are imported only when a command builds a generator, so ``muse --version``
and ``muse --help`` start fast. Exit codes are listed in :mod:`muse_sdk.cli._errors`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``muse`` console script; returns the exit code."""
    from muse_sdk.cli._app import app

    try:
        app(args=list(argv) if argv is not None else None, prog_name="muse")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
