"""The ``openai`` provider: the OpenAI API or any OpenAI-compatible server.

vLLM, llama.cpp, Ollama, LM Studio and gateways all work through ``base_url``; built on the
official ``openai`` package.

Importing this package does not import ``openai``; building a generator does.
"""

from muse_sdk.providers.openai._generator import OpenAIGenerator
from muse_sdk.providers.openai._settings import OpenAIOptions, OpenAISettings, pick_api

__all__ = ["OpenAIGenerator", "OpenAIOptions", "OpenAISettings", "pick_api"]
