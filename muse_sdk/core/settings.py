"""Base classes for the options a provider declares for itself.

A provider's ``Settings`` hold what a profile configures once (base URL, device, ...); its
``Options`` hold the provider-only parameters a single call may pass (``extra_body``, ...). Both
forbid unknown keys, so a misspelled option fails loudly instead of being dropped.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from muse_sdk.errors import MissingCredentialsError

__all__ = [
    "NO_KEY_VALUES",
    "CallOptions",
    "KeySettings",
    "ProviderSettings",
    "reject_empty_key",
]

#: ``api_key`` values that mean "this server needs no key" (local vLLM, llama.cpp, Ollama).
NO_KEY_VALUES = frozenset({"none", "no-key", "EMPTY"})


def reject_empty_key(value: Any) -> Any:
    """A pydantic ``before`` validator: an API key given as blank text is a mistake."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("the API key is empty")
    return value


class ProviderSettings(BaseModel):
    """Profile-level settings of a provider; subclass and add fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class CallOptions(BaseModel):
    """Per-call, provider-only parameters; subclass and add fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class KeySettings(ProviderSettings):
    """Settings of a provider that authenticates with an API key.

    The key comes from ``api_key`` (given in code, held as :class:`~pydantic.SecretStr` so that no
    repr shows it) or else from the environment variable named by ``api_key_env``.
    """

    api_key: SecretStr | None = None
    api_key_env: str | None = None

    _secret = field_validator("api_key", mode="before")(reject_empty_key)

    def resolve_api_key(self, provider: str, *, required: bool = True) -> str | None:
        """Return the key, or ``None`` for keyless servers; raise when a required key is absent."""
        if self.api_key is not None:
            key = self.api_key.get_secret_value()
        elif self.api_key_env and os.environ.get(self.api_key_env, "").strip():
            key = os.environ[self.api_key_env].strip()
        elif required:
            raise MissingCredentialsError(provider, self.api_key_env)
        else:
            return None
        return None if key in NO_KEY_VALUES else key
