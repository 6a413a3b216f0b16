"""What keeps one server healthy under load: a bounded queue and a bounded request body."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from muse_sdk.server._errors import ApiError

__all__ = ["Admission", "read_json"]


class Admission:
    """Counts the prompts being served or waiting; past ``limit``, new requests get a 429.

    A request is weighed by its prompts (``/v1/completions`` takes a list). One request larger
    than the whole limit is still let in when nothing else is, so that it can ever run.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def enter(self, weight: int) -> None:
        """Admit ``weight`` prompts, or raise a 429 with ``Retry-After``."""
        if self.in_flight and self.in_flight + weight > self.limit:
            raise ApiError(
                429,
                f"the server's queue is full ({self.in_flight} prompts in flight, limit "
                f"{self.limit}); retry after a moment",
                code="queue_full",
                retry_after=1,
            )
        self.in_flight += weight

    def leave(self, weight: int) -> None:
        """Release what :meth:`enter` admitted."""
        self.in_flight -= weight


async def read_json(
    declared: str | None, chunks: AsyncIterator[bytes], limit: int
) -> dict[str, Any]:
    """Read a JSON object body of at most ``limit`` bytes (413 past it, 400 if not JSON)."""
    too_large = ApiError(
        413,
        f"the request body is larger than the server's limit of {limit} bytes "
        "(muse serve --max-body-mb)",
        code="body_too_large",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise too_large
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return data
