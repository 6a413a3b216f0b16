"""Cache keys: a hash of the whole normalized request, and what may be cached at all."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from muse_sdk.core.generator import Generator, Request

__all__ = ["cacheable", "request_key"]

#: Bumped when the key's shape changes, so old entries are never read as new ones.
KEY_VERSION = 1
_SECRET_NAMES = ("key", "token", "secret", "password")


def request_key(gen: Generator, request: Request) -> str:
    """The cache key of ``request`` on ``gen``: every input that can change the reply.

    Prompt, every generation parameter, the provider's options (``extra_body`` too), the
    provider, model and settings (``base_url``, ``revision``, ...; never a key), and the
    schema or tools. The timeout is left out: it changes how long, not what.
    """
    prompt: Any = request.prompt
    if not isinstance(prompt, str):
        prompt = [message.wire() for message in prompt]
    structure = request.structure
    payload = {
        "v": KEY_VERSION,
        "provider": gen.provider,
        "model": gen.model,
        "settings": _settings(gen),
        "prompt": prompt,
        "params": request.params.model_dump(mode="json", exclude={"timeout"}),
        "options": request.options.model_dump(mode="json"),
        "structure": structure.key if structure is not None else None,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _settings(gen: Generator) -> dict[str, Any]:
    settings = gen.settings
    fields = type(settings).model_fields
    public = {
        name
        for name, info in fields.items()
        if "Secret" not in str(info.annotation)
        and not (name.endswith(_SECRET_NAMES) and not name.endswith("_env"))
    }
    return settings.model_dump(mode="json", include=public)


def cacheable(request: Request, sampled_too: bool) -> bool:
    """Whether a reply may be cached: greedy, or seeded, or the user said sampled replies may."""
    params = request.params
    return sampled_too or params.temperature == 0 or params.seed is not None
