"""Fixtures shared by the provider tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.openai_server import OpenAIServer


@pytest.fixture(scope="module")
def _openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


@pytest.fixture
def server(_openai_server: OpenAIServer) -> OpenAIServer:
    """The module's loopback OpenAI-compatible server, with no scripted replies or records left."""
    _openai_server.reset()
    return _openai_server
