"""A loopback OpenAI-compatible server that injects faults on a seeded schedule.

It speaks raw HTTP/1.1 over asyncio streams (no framework) so that it can fail the way real
servers and networks do: reset a connection before or after the headers, stall, send malformed
JSON, cut an SSE stream in the middle of an event, or answer 200 with an error body. Every request
is recorded, so tests compare what the client reports with what the server really saw.
Misbehaving streams (keep-alive stalls, cut bodies, endless lines, floods) are in stream_faults.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

TRANSIENT_FAULTS = (
    "rate_limit",
    "500",
    "502",
    "503",
    "reset_before_headers",
    "reset_after_headers",
    "stall",
    "malformed_json",
    "sse_cut",
    "error_body_200",
)


@dataclass
class Schedule:
    """Which fault (or ``None``) each request gets: seeded, and bounded per prompt.

    With probability ``rate`` a request gets one of ``kinds``; a prompt never gets more than
    ``max_consecutive`` faults in a row, so a client allowed ``max_consecutive + 1`` attempts
    always succeeds in the end.
    """

    seed: int = 0
    rate: float = 0.0
    kinds: tuple[str, ...] = TRANSIENT_FAULTS
    max_consecutive: int = 5
    scripted: list[str | None] = field(default_factory=list)
    _rng: random.Random = field(init=False, repr=False)
    _streak: Counter[str] = field(default_factory=Counter, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def next_fault(self, prompt: str) -> str | None:
        if self.scripted:
            return self.scripted.pop(0)
        if self._streak[prompt] < self.max_consecutive and self._rng.random() < self.rate:
            self._streak[prompt] += 1
            return self._rng.choice(self.kinds)
        self._streak[prompt] = 0
        return None


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    body: dict[str, Any]
    fault: str | None
    at: float


def reply_for(prompt: str) -> str:
    """The deterministic answer to a prompt, so results can be matched to prompts."""
    return f"answer to: {prompt}"


def _prompt_of(body: dict[str, Any]) -> str:
    if "messages" in body:
        return str(body["messages"][-1]["content"])
    return str(body.get("prompt", ""))


class FaultServer:
    """Start with ``with FaultServer(schedule) as server:``; ``server.base_url`` ends in ``/v1``."""

    def __init__(
        self,
        schedule: Schedule | None = None,
        *,
        retry_after: str = "0",
        rate_limit_headers: dict[str, str] | None = None,
        stall_s: float = 5.0,
        chunk_delay_s: float = 0.0,
    ) -> None:
        self.schedule = schedule or Schedule()
        self.retry_after = retry_after
        #: Headers of a 429 instead of ``retry-after: <retry_after>`` (retry-after-ms, a date).
        self.rate_limit_headers = rate_limit_headers
        self.stall_s = stall_s
        self.chunk_delay_s = chunk_delay_s
        self.seen: list[Seen] = []
        #: When a client hung up on an endless stream (tests/reliability/stream_faults.py).
        self.hangups: list[float] = []
        self.last_key = ""
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fault-server")
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FaultServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, reuse_address=True)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    # --- what the tests read -------------------------------------------------------------------

    def attempts_by_prompt(self) -> Counter[str]:
        with self._lock:
            return Counter(_prompt_of(s.body) for s in self.seen)

    def faults(self) -> Counter[str]:
        with self._lock:
            return Counter(s.fault or "ok" for s in self.seen)

    # --- HTTP ----------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await _read_request(reader)) is not None:
                path, body, headers = request
                # read by _respond before its first await, so connections never mix it up
                self.last_key = headers.get("authorization", "").removeprefix("Bearer ")
                prompt = _prompt_of(body)
                with self._lock:
                    fault = self.schedule.next_fault(prompt)
                    self.seen.append(Seen(path, body, fault, time.monotonic()))
                if not await self._respond(writer, path, body, prompt, fault):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        path: str,
        body: dict[str, Any],
        prompt: str,
        fault: str | None,
    ) -> bool:
        """Write one response; return False when the connection must not be reused."""
        chat = path.endswith("/chat/completions")
        from tests.reliability import stream_faults  # it imports this module's helpers

        if fault in stream_faults.STREAM_FAULTS:
            return await stream_faults.respond(self, writer, body, prompt, chat, fault)
        if fault is None:
            if body.get("stream"):
                await self._stream(writer, body, prompt, chat, cut=False)
            else:
                await _send(writer, 200, _completion(body, reply_for(prompt), chat, len(self.seen)))
            return True
        if fault == "rate_limit":
            headers = self.rate_limit_headers or {"retry-after": self.retry_after}
            await _send(writer, 429, _error("rate limited", "rate_limit_exceeded"), headers)
            return True
        if fault.startswith("status:"):  # a non-retryable status, e.g. "status:401"
            status = int(fault.partition(":")[2])
            await _send(writer, status, _error(f"injected {status}", "invalid_request_error"))
            return True
        if fault in ("500", "502", "503"):
            await _send(writer, int(fault), _error(f"injected {fault}", "server_error"))
            return True
        if fault == "reset_before_headers":
            return False
        if fault == "reset_after_headers":
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b'content-length: 500\r\n\r\n{"id":'
            )
            await writer.drain()
            return False
        if fault == "stall":
            await asyncio.sleep(self.stall_s)
            return False
        if fault == "malformed_json":
            await _send(writer, 200, b'{"id": "x", "choices": [{"text": "unterminated')
            return True
        if fault == "echo_key_401":  # a server that quotes the key it was sent
            message = f"Incorrect API key provided: {self.last_key}. Check it and retry."
            await _send(writer, 401, _error(message, "invalid_api_key"))
            return True
        if fault == "error_body_200":
            await _send(writer, 200, _error("the model crashed", "server_error"))
            return True
        if fault in ("sse_cut", "stall_mid_stream") and body.get("stream"):
            await self._stream(writer, body, prompt, chat, cut=fault)
            return False
        if fault == "sse_cut":  # a plain request cut the same way: headers, half a body, reset
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 80\r\n\r\n{"
            )
            await writer.drain()
            return False
        raise ValueError(f"unknown fault {fault!r}")

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        body: dict[str, Any],
        prompt: str,
        chat: bool,
        cut: str | bool,
    ) -> None:
        """Stream the reply; ``cut`` breaks it after the first event (mid-event, or by stalling)."""
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
        )
        words = reply_for(prompt).split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        for index, piece in enumerate(pieces):
            event = _stream_event(body, piece, chat, None)
            if cut == "stall_mid_stream" and index == 1:
                await asyncio.sleep(self.stall_s)
                return
            if cut and index == 1:
                _chunk(writer, event[: len(event) // 2])  # half an event, then the line dies
                await writer.drain()
                writer.transport.abort()
                return
            _chunk(writer, event)
            await writer.drain()
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        _chunk(writer, _stream_event(body, "", chat, "stop"))
        _chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, dict[str, Any], dict[str, str]] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
    }
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    return path, json.loads(raw or b"{}"), headers


def _status_text(status: int) -> str:
    return {
        200: "OK",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }.get(status, "Error")


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    payload: bytes | dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    writer.write(
        f"HTTP/1.1 {status} {_status_text(status)}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\nx-request-id: req-fault\r\n{extra}\r\n".encode()
        + data
    )
    await writer.drain()


def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": code}}


def _completion(body: dict[str, Any], text: str, chat: bool, n: int) -> dict[str, Any]:
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": len(text.split()),
        "total_tokens": 3 + len(text.split()),
    }
    if chat:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
        return {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        }
    choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
    return {
        "id": f"cmpl-{n}",
        "object": "text_completion",
        "created": 0,
        "model": body["model"],
        "choices": [choice],
        "usage": usage,
    }


def _stream_event(body: dict[str, Any], piece: str, chat: bool, finish: str | None) -> bytes:
    if chat:
        delta = {"content": piece} if piece else {}
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        event = {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
        }
    else:
        choice = {"index": 0, "text": piece, "finish_reason": finish, "logprobs": None}
        event = {
            "id": "cmpl-s",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
        }
    return b"data: " + json.dumps(event).encode() + b"\n\n"
