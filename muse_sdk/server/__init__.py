"""``muse serve``: an OpenAI-compatible HTTP server over any muse generator.

Local models are served through their batching engine (concurrent requests share decode steps);
an OpenAI-backed profile makes it a small gateway that adds muse's retries, fallbacks and
profiles in front of another server. ``import muse_sdk`` does not load this package, which
needs the ``serve`` extra (starlette and uvicorn)::

    from muse_sdk.server import ServeSettings, create_app, serve

    serve(ServeSettings(models=("local:muse-tiny",), port=8000))
"""

from __future__ import annotations

from muse_sdk.server._app import create_app
from muse_sdk.server._run import serve
from muse_sdk.server._settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "serve"]
