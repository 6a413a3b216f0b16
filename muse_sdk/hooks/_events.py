"""The typed events a call goes through, as hooks see them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from muse_sdk.core.types import (
        GenerationParams,
        GenerationResult,
        Prompt,
        StreamChunk,
        Usage,
    )

__all__ = [
    "AttemptFailed",
    "Event",
    "RequestFailed",
    "RequestStarted",
    "ResponseReceived",
    "StreamChunkReceived",
]


@dataclass(frozen=True, slots=True)
class RequestStarted:
    """A call began (before any cache lookup, rate-limit wait or request)."""

    call_id: str
    #: The generator's name (its profile's, or ``provider:model``).
    generator: str
    provider: str
    model: str
    #: ``"chat"`` for messages, ``"text_completion"`` for a text prompt.
    operation: str
    prompt: Prompt
    params: GenerationParams
    stream: bool
    #: Unix time.
    started_at: float


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """One attempt failed; ``wait_s`` is the wait before the next, ``None`` when none follows."""

    call_id: str
    attempt: int
    error: Exception
    wait_s: float | None


@dataclass(frozen=True, slots=True)
class StreamChunkReceived:
    """A streamed chunk reached the caller."""

    call_id: str
    chunk: StreamChunk


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The call succeeded: its result, with ``usage``, ``total_usage`` and ``cost``."""

    call_id: str
    result: GenerationResult
    latency_s: float

    @property
    def usage(self) -> Usage:
        """The final reply's usage."""
        return self.result.usage

    @property
    def total_usage(self) -> Usage:
        """Every billed request of the call, retries, fallbacks and repairs included."""
        return self.result.total_usage


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """The call failed for good (after its retries and fallbacks)."""

    call_id: str
    error: Exception
    latency_s: float
    attempts: int


Event: TypeAlias = (
    RequestStarted | AttemptFailed | StreamChunkReceived | ResponseReceived | RequestFailed
)
