"""Fixtures of the fault-injection suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import muse_sdk as muse
from tests.reliability.fault_server import FaultServer, Schedule

#: Read timeout used against the server's stalls (seconds).
READ_TIMEOUT_S = 0.5


@pytest.fixture
def fault_server() -> Iterator[Callable[..., FaultServer]]:
    """Start servers with ``fault_server(Schedule(...), retry_after="2")``; all stop at teardown."""
    servers: list[FaultServer] = []

    def start(schedule: Schedule | None = None, **options: Any) -> FaultServer:
        server = FaultServer(schedule, **options).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def openai_gen(
    server: FaultServer, *, api: str = "completions", **overrides: Any
) -> muse.Generator:
    """An OpenAI-provider generator pointed at the fault server, with fast retries."""
    retry = {
        "max_attempts": 6,
        "initial_wait_s": 0.001,
        "max_wait_s": 0.01,
        **overrides.pop("retry", {}),
    }
    return muse.load(
        "openai:test-model",
        base_url=server.base_url,
        api_key="none",
        api=api,
        timeout=overrides.pop("timeout", {"connect": 2, "read": READ_TIMEOUT_S}),
        retry=retry,
        **overrides,
    )
