"""muse_sdk: one ``Generator`` interface for OpenAI-compatible APIs and local GPT-2 models.

>>> import muse_sdk as muse
>>> gen = muse.load("fake:echo")
>>> gen.generate("Once upon a time", max_tokens=2).text
'Once upon'

Public names are imported lazily, so ``import muse_sdk`` stays fast and never imports torch,
transformers or openai.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from muse_sdk._version import __version__

if TYPE_CHECKING:
    from muse_sdk.config import Config, Profile
    from muse_sdk.core import (
        AsyncStream,
        BatchResult,
        CallOptions,
        Choice,
        GenerationParams,
        GenerationResult,
        Generator,
        KeySettings,
        Message,
        ProviderSettings,
        Request,
        Stream,
        StreamChunk,
        Timeout,
        ToolCall,
        Usage,
    )
    from muse_sdk.errors import (
        AuthenticationError,
        BackendUnavailableError,
        BadRequestError,
        BatchError,
        ConfigError,
        ConnectionError,
        ContextLengthExceededError,
        FallbackError,
        InputError,
        InvalidConfigError,
        InvalidParameterError,
        InvalidPromptError,
        MissingCredentialsError,
        MissingVariableError,
        MuseError,
        NotFoundError,
        PermissionDeniedError,
        ProviderError,
        RateLimitError,
        RefusalError,
        SandboxError,
        ServerError,
        StreamInterruptedError,
        StructuredOutputError,
        TemplateError,
        TimeoutError,
        UnknownModelError,
        UnknownProviderError,
        UnsafeTemplateError,
        UnsupportedParameterError,
    )
    from muse_sdk.fallback import FallbackGenerator
    from muse_sdk.loader import build, load
    from muse_sdk.registry import provider_names, register
    from muse_sdk.retry import RetryPolicy, RetrySettings
    from muse_sdk.structured import OutputSpec, Tool, ToolRun, arun_tools, run_tools
    from muse_sdk.templates import (
        ChatTemplate,
        CodeGenerationTemplate,
        CodeResult,
        FewShotTemplate,
        PromptTemplate,
        extract_code,
        load_templates,
    )

# A library logs, the application decides where logs go (retries are logged at INFO).
logging.getLogger("muse_sdk").addHandler(logging.NullHandler())

_ERRORS = [
    "AuthenticationError",
    "BackendUnavailableError",
    "BadRequestError",
    "BatchError",
    "ConfigError",
    "ConnectionError",
    "ContextLengthExceededError",
    "FallbackError",
    "InputError",
    "InvalidConfigError",
    "InvalidParameterError",
    "InvalidPromptError",
    "MissingCredentialsError",
    "MissingVariableError",
    "MuseError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderError",
    "RateLimitError",
    "RefusalError",
    "SandboxError",
    "ServerError",
    "StreamInterruptedError",
    "StructuredOutputError",
    "TemplateError",
    "TimeoutError",
    "UnknownModelError",
    "UnknownProviderError",
    "UnsafeTemplateError",
    "UnsupportedParameterError",
]
_CORE = [
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
    "Usage",
]
_STRUCTURED = ["OutputSpec", "Tool", "ToolRun", "arun_tools", "run_tools"]
_TEMPLATES = [
    "ChatTemplate",
    "CodeGenerationTemplate",
    "CodeResult",
    "FewShotTemplate",
    "PromptTemplate",
    "extract_code",
    "load_templates",
]

#: public name -> module that defines it; imported on first attribute access.
_LAZY: dict[str, str] = {
    **dict.fromkeys(_ERRORS, "muse_sdk.errors"),
    **dict.fromkeys(_CORE, "muse_sdk.core"),
    "Config": "muse_sdk.config",
    "Profile": "muse_sdk.config",
    "build": "muse_sdk.loader",
    "load": "muse_sdk.loader",
    "provider_names": "muse_sdk.registry",
    "register": "muse_sdk.registry",
    "RetryPolicy": "muse_sdk.retry",
    "RetrySettings": "muse_sdk.retry",
    "FallbackGenerator": "muse_sdk.fallback",
    **dict.fromkeys(_TEMPLATES, "muse_sdk.templates"),
    **dict.fromkeys(_STRUCTURED, "muse_sdk.structured"),
}

__all__ = [
    "AsyncStream",
    "AuthenticationError",
    "BackendUnavailableError",
    "BadRequestError",
    "BatchError",
    "BatchResult",
    "CallOptions",
    "ChatTemplate",
    "Choice",
    "CodeGenerationTemplate",
    "CodeResult",
    "Config",
    "ConfigError",
    "ConnectionError",
    "ContextLengthExceededError",
    "FallbackError",
    "FallbackGenerator",
    "FewShotTemplate",
    "GenerationParams",
    "GenerationResult",
    "Generator",
    "InputError",
    "InvalidConfigError",
    "InvalidParameterError",
    "InvalidPromptError",
    "KeySettings",
    "Message",
    "MissingCredentialsError",
    "MissingVariableError",
    "MuseError",
    "NotFoundError",
    "OutputSpec",
    "PermissionDeniedError",
    "Profile",
    "PromptTemplate",
    "ProviderError",
    "ProviderSettings",
    "RateLimitError",
    "RefusalError",
    "Request",
    "RetryPolicy",
    "RetrySettings",
    "SandboxError",
    "ServerError",
    "Stream",
    "StreamChunk",
    "StreamInterruptedError",
    "StructuredOutputError",
    "TemplateError",
    "Timeout",
    "TimeoutError",
    "Tool",
    "ToolCall",
    "ToolRun",
    "UnknownModelError",
    "UnknownProviderError",
    "UnsafeTemplateError",
    "UnsupportedParameterError",
    "Usage",
    "__version__",
    "arun_tools",
    "build",
    "extract_code",
    "load",
    "load_templates",
    "provider_names",
    "register",
    "run_tools",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'muse_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
