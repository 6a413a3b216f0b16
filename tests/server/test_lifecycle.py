"""Client disconnects free their rows; SIGTERM drains; the ``muse serve`` command itself."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.harness import Served

PROMPT = "def main():"


@pytest.fixture(scope="module")
def tiny() -> Iterator[Served]:
    with Served(["local:muse-tiny"]) as served:
        yield served


def _wait_idle(served: Served, within_s: float) -> float:
    """Seconds until the engine has no row running (fails after ``within_s``)."""
    engine = served.generator("muse-tiny").engine  # type: ignore[attr-defined]
    start = time.monotonic()
    while (counts := engine.counts())["active"] or counts["queued"]:
        if time.monotonic() - start > within_s:
            raise AssertionError(f"the abandoned request is still running: {counts}")
        time.sleep(0.002)
    assert counts["free"] == counts["slots"]
    return time.monotonic() - start


def _full_run_s(served: Served) -> float:
    """How long the 480-token request takes when nobody leaves (the bound to beat)."""
    start = time.monotonic()
    body = {"prompt": PROMPT, "max_tokens": 480, "temperature": 0}
    reply = httpx.post(f"{served.url}/completions", json=body, timeout=60)
    assert reply.json()["usage"]["completion_tokens"] == 480
    return time.monotonic() - start


def test_a_streaming_client_that_leaves_frees_its_row(tiny: Served) -> None:
    full = _full_run_s(tiny)
    body = {"prompt": PROMPT, "max_tokens": 480, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{tiny.url}/completions", json=body, timeout=60) as reply:
        lines = reply.iter_lines()
        assert next(lines).startswith("data: ")  # decoding has started
    # Closing the connection cancels the request: the row goes long before 480 tokens.
    assert _wait_idle(tiny, within_s=full / 4) < full / 4


def test_a_plain_client_that_leaves_frees_its_row(tiny: Served) -> None:
    full = _full_run_s(tiny)
    body = {"prompt": PROMPT, "max_tokens": 480, "temperature": 0}
    engine = tiny.generator("muse-tiny").engine  # type: ignore[attr-defined]
    with socket.create_connection(("127.0.0.1", tiny.port)) as sock:
        payload = json.dumps(body).encode()
        head = (
            f"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n\r\n"
        )
        sock.sendall(head.encode() + payload)
        while not engine.counts()["active"]:
            time.sleep(0.002)
    assert _wait_idle(tiny, within_s=full / 4) < full / 4


def test_served_requests_share_the_engine(tiny: Served) -> None:
    """Concurrent requests decode together: the engine holds several rows at once."""
    engine = tiny.generator("muse-tiny").engine  # type: ignore[attr-defined]
    seen: list[int] = []

    def watch() -> None:
        for _ in range(2000):
            seen.append(engine.counts()["active"])
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with httpx.Client(timeout=60) as http:
        threads = [
            threading.Thread(
                target=http.post,
                args=(f"{tiny.url}/completions",),
                kwargs={"json": {"prompt": PROMPT, "max_tokens": 200}},
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    watcher.join()
    assert max(seen) >= 2


# --- the command ------------------------------------------------------------------------------


class CliServer:
    """``muse serve`` in a subprocess; its port is read from uvicorn's start-up line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        command = [sys.executable, "-m", "muse_sdk", "serve", "--port", "0", *args]
        self.process = subprocess.Popen(
            command,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.log: list[str] = []
        self.port = self._read_port()
        threading.Thread(target=self._drain, daemon=True).start()

    def _read_port(self) -> int:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if match := re.search(r"running on http://127\.0\.0\.1:(\d+)", line):
                return int(match.group(1))
        raise AssertionError("muse serve did not start:\n" + "".join(self.log))

    def _drain(self) -> None:
        assert self.process.stderr is not None
        self.log.extend(self.process.stderr)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while httpx.get(f"{self.root}/health").status_code != 200:
            assert time.monotonic() < deadline, "".join(self.log)
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def _stream_events(root: str, max_tokens: int, started: threading.Event) -> list[Any]:
    body = {
        "prompt": PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events: list[Any] = []
    try:
        with httpx.stream("POST", f"{root}/v1/completions", json=body, timeout=60) as reply:
            for line in reply.iter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                    events.append(data if data == "[DONE]" else json.loads(data))
                    started.set()
    except httpx.HTTPError as exc:
        events.append(exc)
    started.set()
    return events


def _streaming(root: str, max_tokens: int) -> tuple[threading.Thread, list[Any], threading.Event]:
    started = threading.Event()
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.extend(_stream_events(root, max_tokens, started)))
    thread.start()
    return thread, out, started


def _refused(root: str) -> bool:
    try:
        httpx.get(f"{root}/health", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def test_sigterm_lets_requests_in_flight_finish_and_refuses_new_ones() -> None:
    server = CliServer("-m", "local:muse-tiny", "--grace", "30")
    try:
        server.wait_ready()
        thread, events, started = _streaming(server.root, 400)
        assert started.wait(30)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = _refused(server.root)
        thread.join(60)
        server.process.wait(30)
    finally:
        server.stop()
    assert refused, "a new connection was accepted after SIGTERM"
    assert events[-1] == "[DONE]", events[-3:]
    assert events[-2]["usage"]["completion_tokens"] == 400
    assert server.process.returncode == 0  # a clean stop, not a death by SIGTERM


def test_sigterm_cancels_what_outlives_the_grace_period() -> None:
    server = CliServer("-m", "local:muse-tiny", "--grace", "0")
    try:
        server.wait_ready()
        thread, events, started = _streaming(server.root, 480)
        assert started.wait(30)
        stopped_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(30)
        exit_s = time.monotonic() - stopped_at
        thread.join(30)
    finally:
        server.stop()
    assert "[DONE]" not in events  # cut short, not finished
    assert exit_s < 5


def test_a_model_that_cannot_load_stops_the_command_with_the_reason() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "muse_sdk", "serve", "--port", "0", "-m", "local:no-such-model"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "could not load its models" in run.stderr and "no-such-model" in run.stderr


def test_the_api_key_comes_from_the_environment_and_never_shows() -> None:
    key = "sk-from-env-5a4b3c"
    server = CliServer("-m", "fake:echo", env={"MUSE_SERVE_API_KEY": key})
    try:
        server.wait_ready()
        denied = httpx.post(f"{server.root}/v1/completions", json={"prompt": "x"})
        allowed = httpx.post(
            f"{server.root}/v1/completions",
            json={"prompt": "x"},
            headers={"authorization": f"Bearer {key}"},
        )
    finally:
        server.stop()
    assert (denied.status_code, allowed.status_code) == (401, 200)
    assert key not in "".join(server.log) and key not in denied.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-key", "  "], "--api-key: Value error, the API key is empty"),
        (["--max-queue", "0"], "--max-queue"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "muse_sdk", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and message in run.stderr
    assert "Traceback" not in run.stderr
