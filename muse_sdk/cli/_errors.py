"""Exit codes and the one place where exceptions become an ``error: ...`` line.

=====  ==========================================================================
code   meaning
=====  ==========================================================================
0      success
1      the generation failed: provider, network or backend error, unwritable file
2      usage or configuration error: bad option, bad config file, missing API key,
       invalid prompt or parameter
3      ``muse batch`` finished, but some prompts failed (see their ``error`` field)
4      ``muse code`` produced code that does not parse or is truncated, or no code
130    interrupted (Ctrl-C)
=====  ==========================================================================
"""

from __future__ import annotations

import sys
import traceback
from enum import IntEnum
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["ExitCode", "UsageError", "exit_code_for", "fail", "report_error", "stderr_console"]


class ExitCode(IntEnum):
    """The documented exit codes of ``muse`` (see the module docstring)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    PARTIAL = 3
    CODE_CHECK = 4
    INTERRUPTED = 130


class UsageError(Exception):
    """A problem with the command line itself (a file that cannot be read, a bad value)."""


def stderr_console() -> Console:
    """A console on the current ``sys.stderr``; ``soft_wrap`` keeps each message on one line."""
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def exit_code_for(exc: BaseException) -> ExitCode:
    """Map an exception to its exit code."""
    from muse_sdk.errors import BatchError, ConfigError, InputError

    if isinstance(exc, ConfigError | InputError | UsageError):
        return ExitCode.USAGE
    if isinstance(exc, BatchError):
        return ExitCode.PARTIAL
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def report_error(message: str, *, kind: str = "error") -> None:
    """Print one ``error: message`` line (or ``warning:``, ``info:``) on stderr."""
    from rich.markup import escape

    style = {"error": "bold red", "warning": "bold yellow"}.get(kind, "dim")
    stderr_console().print(f"[{style}]{kind}:[/] {escape(message)}")


def fail(exc: BaseException, *, debug: bool = False) -> NoReturn:
    """Report ``exc`` on one line (after its traceback with ``--debug``) and exit with its code."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt):
        report_error("interrupted")
    else:
        report_error(_describe(exc))
    raise typer.Exit(exit_code_for(exc))
