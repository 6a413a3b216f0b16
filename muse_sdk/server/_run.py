"""Running the app under uvicorn: graceful shutdown on SIGTERM, exit on a failed model load."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator

import uvicorn
from uvicorn.logging import DefaultFormatter

from muse_sdk.errors import BackendUnavailableError
from muse_sdk.server._app import create_app
from muse_sdk.server._models import Loader
from muse_sdk.server._settings import ServeSettings

__all__ = ["serve"]


def serve(
    settings: ServeSettings | None = None,
    *,
    loader: Loader | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve until SIGTERM or Ctrl-C; raise if the models could not be loaded.

    On SIGTERM the server stops accepting connections, lets the requests in flight finish for
    ``settings.grace_s`` seconds, cancels what is left (freeing its rows), and returns.
    """
    settings = settings or ServeSettings()
    _log_like_uvicorn(settings.log_level)
    holder: list[uvicorn.Server] = []
    app = create_app(settings, loader=loader, on_load_failed=lambda: _stop(holder))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.grace_s,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    holder.append(server)
    with _graceful_sigterm():
        server.run(sockets=[sock] if sock is not None else None)
    table = app.state.muse.table
    if table.state == "failed":
        raise BackendUnavailableError(f"muse serve could not load its models: {table.error}")


@contextlib.contextmanager
def _graceful_sigterm() -> Iterator[None]:
    """Let a SIGTERM that uvicorn has already handled end the process with status 0.

    After its graceful shutdown uvicorn raises the signal again under the handler it found;
    with the default one the process would die of SIGTERM (status 143) after a clean stop.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _log_like_uvicorn(level: str) -> None:
    """Send the server's own log lines where uvicorn's go, in uvicorn's format."""
    log = logging.getLogger("muse_sdk.server")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(level.upper())


def _stop(holder: list[uvicorn.Server]) -> None:
    if holder:
        holder[0].should_exit = True
