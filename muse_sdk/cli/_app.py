"""The ``muse`` Typer application: global options, commands, and error handling in one place."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from muse_sdk._version import __version__
from muse_sdk.cli._batch import batch
from muse_sdk.cli._code import code
from muse_sdk.cli._config import config_app
from muse_sdk.cli._errors import ExitCode, UsageError, fail, report_error
from muse_sdk.cli._generate import generate
from muse_sdk.cli._help import MuseCommand, PlainFlagsGroup
from muse_sdk.cli._logs import logs
from muse_sdk.cli._models import models
from muse_sdk.cli._serve import serve

__all__ = ["MuseGroup", "app"]


class MuseGroup(PlainFlagsGroup):
    """Turns every error into one ``error: ...`` line and a documented exit code."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; map muse_sdk, file and usage errors to exit codes."""
        from muse_sdk.errors import MuseError

        try:
            return super().invoke(ctx)
        except (MuseError, UsageError, OSError, KeyboardInterrupt) as exc:
            fail(exc, debug=bool((ctx.obj or {}).get("debug")))

    def main(  # type: ignore[override]  # same parameters, narrowed for the CLI's use
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Like click's ``main``, but a usage error is one ``error:`` line (exit code 2)."""
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:
            ctx, message = getattr(exc, "ctx", None), exc.format_message()
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            if message:  # empty when the help was just shown for a bare ``muse``
                report_error(message + hint)
            code = exc.exit_code
        except typer.Abort:
            report_error("interrupted")
            code = ExitCode.INTERRUPTED
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=MuseGroup,
    name="muse",
    help="Generate text and code with muse_sdk: any provider, one command line.",
    epilog="Exit codes: 0 ok, 1 generation failed, 2 usage or config error, "
    "3 some batch prompts failed, 4 generated code failed its checks, 130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"muse_sdk {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The config file (default: $MUSE_CONFIG, ./muse.toml, ~/.config/muse/muse.toml).",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Generate text and code with muse_sdk: any provider, one command line."""
    ctx.obj = {"config": config, "debug": debug}


app.command(cls=MuseCommand)(generate)
app.command(cls=MuseCommand)(code)
app.command(cls=MuseCommand)(batch)
app.command(cls=MuseCommand)(models)
app.command(cls=MuseCommand)(serve)
app.command(cls=MuseCommand)(logs)
app.add_typer(config_app, name="config")
