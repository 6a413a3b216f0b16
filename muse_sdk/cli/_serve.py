"""``muse serve``: an OpenAI-compatible server over the configured models."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from muse_sdk.cli._errors import UsageError, report_error

if TYPE_CHECKING:
    from muse_sdk.config import Config
    from muse_sdk.core.generator import Generator

__all__ = ["serve"]

_SERVER = "Server"


def serve(
    ctx: typer.Context,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="What to serve: 'provider:model', a profile name, or NAME=SPEC to serve it "
            "under NAME (repeatable). Default: the configured default.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.", rich_help_panel=_SERVER)] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port (0: any free one).", rich_help_panel=_SERVER)
    ] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="MUSE_SERVE_API_KEY",
            help="Require this key ('Authorization: Bearer KEY'); also read from "
            "$MUSE_SERVE_API_KEY, which keeps it out of the process list.",
            show_default=False,
            rich_help_panel=_SERVER,
        ),
    ] = None,
    max_queue: Annotated[
        int,
        typer.Option(
            min=1, help="Prompts running or waiting; more get 429.", rich_help_panel=_SERVER
        ),
    ] = 256,
    max_body_mb: Annotated[
        float,
        typer.Option(
            min=0.01, help="Largest request body, in MiB; larger get 413.", rich_help_panel=_SERVER
        ),
    ] = 4.0,
    grace: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seconds requests in flight get to finish after SIGTERM.",
            rich_help_panel=_SERVER,
        ),
    ] = 30,
    log_level: Annotated[
        Literal["critical", "error", "warning", "info", "debug"],
        typer.Option(help="Server log detail ('debug' logs tracebacks).", rich_help_panel=_SERVER),
    ] = "info",
) -> None:
    """Serve models over OpenAI's HTTP API: /v1/completions, /v1/chat/completions, /v1/models.

    Local models share their batching engine across requests; a profile backed by another
    server makes this a gateway with muse's retries and fallbacks. GET /health says when the
    models are loaded. SIGTERM lets requests in flight finish (see --grace).
    """
    try:
        from muse_sdk.server import ServeSettings, serve
    except ImportError as exc:
        raise UsageError(
            f"muse serve needs starlette and uvicorn ({exc.name} is missing): "
            "pip install 'muse-sdk[serve]'"
        ) from None
    from pydantic import ValidationError

    from muse_sdk.config import Config

    try:
        settings = ServeSettings(
            models=tuple(model or ()),
            host=host,
            port=port,
            api_key=api_key,
            max_queue=max_queue,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            grace_s=grace,
            log_level=log_level,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        option = str(error["loc"][0]).replace("_", "-") if error["loc"] else "options"
        raise UsageError(f"--{option}: {error['msg']}") from None
    config = Config.coerce((ctx.obj or {}).get("config"))
    if settings.api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        report_error(
            f"serving on {host} without --api-key: anyone who can reach it can use it",
            kind="warning",
        )
    serve(settings, loader=functools.partial(_load, config))


def _load(config: Config, spec: str | None) -> Generator:
    import muse_sdk as muse

    return muse.load(spec, config=config)
