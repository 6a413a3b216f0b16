"""``muse serve`` in a thread for tests: the real app under a real uvicorn on 127.0.0.1.

    with Served(["local:muse-tiny"]) as served:
        openai.OpenAI(base_url=served.url, api_key="none")

``config`` is a muse config mapping (profiles the specs may name); ``loader`` replaces
``muse.load`` (a slow one shows /health while loading).
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import muse_sdk as muse
from muse_sdk.core.generator import Generator
from muse_sdk.server import ServeSettings, create_app
from tests.servers.threaded import ThreadedServer

TINY = Path(muse.__file__).parent / "models" / "muse-tiny"
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def chat_model(directory: Path) -> Path:
    """A copy of muse-tiny whose tokenizer has a chat template (muse-tiny has none)."""
    target = directory / "tiny-chat"
    shutil.copytree(TINY, target)
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) | {"chat_template": CHAT_TEMPLATE}
    config_path.write_text(json.dumps(config))
    return target


class Served:
    """A running server; ``url`` is its ``/v1`` base URL."""

    def __init__(
        self,
        models: Sequence[str] = (),
        *,
        config: Mapping[str, Any] | None = None,
        loader: Callable[[str | None], Generator] | None = None,
        wait_ready: bool = True,
        **settings: Any,
    ) -> None:
        self.settings = ServeSettings(models=tuple(models), log_level="warning", **settings)
        if loader is None:
            loader = functools.partial(_load, dict(config or {}))
        self.app = create_app(self.settings, loader=loader)
        self.wait_ready = wait_ready
        self.port = 0
        self._threaded: ThreadedServer | None = None

    @property
    def root(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL OpenAI clients take."""
        return f"{self.root}/v1"

    def generator(self, name: str) -> Generator:
        """The served generator behind ``name``."""
        return self.app.state.muse.table.get(name).generator

    def __enter__(self) -> Served:
        self._threaded = ThreadedServer(self.app, lifespan="on")
        self.port = self._threaded.port
        table = self.app.state.muse.table
        self._threaded.wait(
            lambda: not self.wait_ready or table.state != "loading", 60, "muse serve"
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._threaded is not None:
            self._threaded.stop(30)


def _load(config: dict[str, Any], spec: str | None) -> Generator:
    return muse.load(spec, config=config or None)
