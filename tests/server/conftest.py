from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server.harness import Served

#: Profiles the fake-backed server serves (the fake provider: deterministic, no model).
PROFILES = {
    "profiles": {
        "slow": {"provider": "fake", "model": "echo", "latency_s": 0.6},
        "flaky": {"provider": "fake", "model": "echo", "fail_stream_after": 2},
        "short": {"provider": "fake", "model": "echo", "context_length": 8},
    }
}


@pytest.fixture(scope="module")
def fake_served() -> Iterator[Served]:
    """fake:echo (as "echo") and the profiles above, with a small queue."""
    with Served(["fake:echo", "slow", "flaky", "short"], config=PROFILES, max_queue=3) as served:
        yield served


@pytest.fixture
def client(fake_served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_served.root, timeout=30) as http:
        yield http
