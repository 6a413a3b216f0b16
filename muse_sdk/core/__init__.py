"""The core of muse_sdk: value types, the ``Generator`` contract, streaming and batching."""

from muse_sdk.core.batch import BatchResult
from muse_sdk.core.generator import Generator, Request
from muse_sdk.core.settings import CallOptions, KeySettings, ProviderSettings
from muse_sdk.core.streaming import AsyncStream, Stream
from muse_sdk.core.types import (
    Choice,
    GenerationParams,
    GenerationResult,
    Message,
    StreamChunk,
    Timeout,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "AsyncStream",
    "BatchResult",
    "CallOptions",
    "Choice",
    "GenerationParams",
    "GenerationResult",
    "Generator",
    "KeySettings",
    "Message",
    "ProviderSettings",
    "Request",
    "Stream",
    "StreamChunk",
    "Timeout",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]
