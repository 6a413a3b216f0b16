"""The local provider: GPT-2-family models run in-process with transformers and torch.

``muse.load("local:gpt2")``, ``muse.load("local:/path/to/checkpoint")`` and
``muse.load("local:muse-tiny")`` (shipped with the package). Importing this package is cheap:
torch and transformers are imported when a generator is built (the ``local`` extra).
"""

from __future__ import annotations

from muse_sdk.providers.local._generator import LocalGenerator
from muse_sdk.providers.local._settings import DEFAULT_MAX_TOKENS, LocalSettings

__all__ = ["DEFAULT_MAX_TOKENS", "LocalGenerator", "LocalSettings"]
