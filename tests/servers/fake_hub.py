"""A loopback stand-in for the Hugging Face hub that has no repository (as huggingface.co
answers for a missing one: 401 with ``X-Error-Code: RepoNotFound``)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Hub(http.server.BaseHTTPRequestHandler):
    def _reply(self) -> None:
        self.send_response(200 if self.path == "/" else 401)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._reply()

    def do_HEAD(self) -> None:
        self._reply()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def empty_hub() -> Iterator[str]:
    """Serve the hub on 127.0.0.1; yield its URL (for ``HF_ENDPOINT``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
