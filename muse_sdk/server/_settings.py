"""How a server runs: address, key, limits; plain pydantic, importable without starlette."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from muse_sdk.core.settings import reject_empty_key

__all__ = ["ServeSettings"]


class ServeSettings(BaseModel):
    """Settings of ``muse serve`` (the command's options, or ``create_app(settings)``).

    - ``models``: specs to serve (``provider:model``, a profile name, or ``NAME=SPEC``);
      empty serves the configured default.
    - ``api_key``: when set, every ``/v1`` request must send it as ``Authorization: Bearer``.
    - ``max_queue``: prompts running or waiting, at most; past it a request gets 429.
    - ``max_body_bytes``: larger request bodies get 413.
    - ``grace_s``: after SIGTERM, how long requests in flight may take to finish.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_key: SecretStr | None = None
    max_queue: int = Field(default=256, ge=1)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    grace_s: int = Field(default=30, ge=0)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    _non_empty = field_validator("api_key", mode="before")(reject_empty_key)
