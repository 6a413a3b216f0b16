"""A uvicorn server in a background thread on 127.0.0.1, for the tests' loopback servers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import uvicorn

__all__ = ["ThreadedServer"]


class ThreadedServer:
    """``app`` under uvicorn in a daemon thread; ``port=0`` picks a free port."""

    def __init__(
        self,
        app: Any,
        *,
        port: int = 0,
        lifespan: Literal["on", "off"] = "off",
        log_level: str = "warning",
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", port))
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan=lifespan)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()

    def wait(self, until: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait for the server to start and ``until()`` to hold; raise if it died or timed out."""
        deadline = time.monotonic() + timeout_s
        while not (self.server.started and until()):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.005)

    def stop(self, timeout_s: float = 10) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout_s)
