"""A real OpenAI-compatible HTTP server on 127.0.0.1, for tests, fault injection and benchmarks.

It speaks the wire format of ``POST {prefix}/completions`` and ``POST {prefix}/chat/completions``:
JSON replies, SSE streams ending in ``data: [DONE]``, usage when ``stream_options.include_usage``
is set, and OpenAI's error JSON (``{"error": {"message", "type", "param", "code"}}``)::

    with OpenAIServer() as server:                      # uvicorn in a thread, on a free port
        gen = muse.load("openai:gpt-4o-mini", base_url=server.url, api_key="sk-test")
        server.script(Reply(text="你好 🌍", piece_size=3), Reply.error(429, retry_after="2"))
        gen.generate("hi")
        server.requests[-1].json                        # the exact JSON body received

Replies are deterministic. Unless scripted, every request gets ``default`` (``Reply()``): its
text is cut by ``max_tokens`` (words, or single CJK characters, count as tokens) and at the
first ``stop`` sequence, and repeated for each of ``n`` choices. ``script()`` queues replies
consumed one per request, in order; each can set a status and error body, headers
(``Retry-After``, ``x-request-id``), a raw body (malformed JSON), a delay, how the SSE bytes are
split (``piece_size`` bytes, splitting multi-byte UTF-8 characters too) and a cut-off after N
bytes (a dropped connection mid-stream). A chat reply can be tool calls (streamed as deltas whose
arguments come in ``tool_piece``-character pieces, parallel calls interleaved) or a refusal.

``response_formats`` makes the server behave like one that supports only some response formats
(vLLM and llama.cpp take ``json_schema`` and ``json_object``; older servers reject them): a
request with any other ``response_format`` type gets a 400 (or ``reject_status``), which
consumes no scripted reply. ``None`` accepts every format (and, like a server that ignores it,
still answers the scripted text).

Standalone, for benchmarks (a fixed tiny reply keeps the server's share of the time small)::

    python -m tests.servers.openai_server --port 8000 --text ok
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.servers.threaded import ThreadedServer

__all__ = ["DEFAULT_TEXT", "OpenAIServer", "RecordedRequest", "Reply", "tokenize"]

DEFAULT_TEXT = "Once upon a time, a small model wrote a story."
_CJK = r"\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_TOKEN = re.compile(rf"\s*(?:[{_CJK}]|[^\s{_CJK}]+)|\s+")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def tokenize(text: str) -> list[str]:
    """The server's tokens: words with their leading space, or single CJK characters."""
    return _TOKEN.findall(text)


class _CutError(Exception):
    """Raised inside a streaming body to drop the connection mid-stream."""


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request; every field has a deterministic default."""

    text: str = DEFAULT_TEXT
    #: Per-choice texts for ``n > 1`` (choice ``i`` gets ``texts[i % len(texts)]``).
    texts: tuple[str, ...] | None = None
    #: Overrides the computed ``"stop"`` / ``"length"``.
    finish_reason: str | None = None
    status: int = 200
    #: The ``error`` object of a non-200 reply.
    error_body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Sent verbatim instead of a generated body (malformed JSON, HTML error pages, ...).
    body: bytes | None = None
    content_type: str = "application/json"
    #: Seconds to wait before answering (timeouts).
    delay_s: float = 0.0
    #: Split the SSE byte stream into pieces of this many bytes (``None``: one piece per event).
    piece_size: int | None = None
    piece_delay_s: float = 0.0
    #: Drop the connection after this many bytes of the SSE stream.
    cut_after: int | None = None
    #: An SSE ``{"error": ...}`` event sent after the text, instead of the finish events.
    stream_error: dict[str, Any] | None = None
    #: Send usage (always in JSON replies; in streams when the client asked for it).
    usage: bool = True
    #: Chat only: tool calls ``(id, name, arguments JSON text)`` instead of text.
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    #: Streamed tool-call arguments (and refusals) come in pieces of this many characters.
    tool_piece: int = 5
    #: Chat only: the model refuses (``message.refusal``) instead of answering.
    refusal: str | None = None

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "scripted error",
        *,
        code: str | None = None,
        retry_after: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """An error reply in OpenAI's JSON shape, optionally with ``Retry-After``."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["retry-after"] = retry_after
        error = {
            "message": message,
            "type": _ERROR_TYPES.get(status, "server_error"),
            "param": None,
            "code": code,
        }
        return cls(status=status, error_body=error, headers=extra)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    body: bytes
    #: The client's TCP port: equal ports across requests mean a reused (keep-alive) connection.
    client_port: int | None = None


class OpenAIServer:
    """The server; start it with ``with`` or :meth:`start`, and stop it with :meth:`stop`."""

    def __init__(
        self,
        *,
        prefix: str = "/v1",
        default: Reply | None = None,
        response_formats: frozenset[str] | None = None,
        reject_status: int = 400,
    ) -> None:
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.default = default or Reply()
        self.response_formats = response_formats
        self.reject_status = reject_status
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._count = 0
        self._lock = threading.Lock()
        self._threaded: ThreadedServer | None = None
        self.port = 0
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    # --- control ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    @property
    def last(self) -> RecordedRequest:
        """The most recent request."""
        return self.requests[-1]

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order; later requests get ``default``."""
        self._queue.extend(replies)

    def reset(self) -> None:
        """Forget recorded requests and queued replies."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()

    def start(self, port: int = 0) -> OpenAIServer:
        """Serve in a background thread; ``port=0`` picks a free port."""
        self._threaded = ThreadedServer(self.app, port=port, log_level="critical")
        self.port = self._threaded.port
        self._threaded.wait(lambda: True, 10, "the OpenAI test server")
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._threaded is not None:
            self._threaded.stop()
        self._threaded = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- serving ---------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    request.method,
                    request.url.path,
                    dict(request.headers),
                    body,
                    raw,
                    request.client.port if request.client else None,
                )
            )
            self._count += 1
            number = self._count
            rejected = self._rejected(body)
            if rejected is not None:
                return rejected
            reply = self._queue.popleft() if self._queue else self.default
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return self._respond(request.url.path, body, reply, number)

    def _respond(self, path: str, body: Any, reply: Reply, number: int) -> Response:
        headers = {"x-request-id": f"req-{number}", **reply.headers}
        kind = self._kind(path)
        if reply.status != 200 or kind is None:
            status = reply.status if reply.status != 200 else 404
            error = reply.error_body or {
                "message": f"Invalid URL (POST {path})",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
            return JSONResponse({"error": error}, status_code=status, headers=headers)
        if reply.body is not None:
            return Response(reply.body, media_type=reply.content_type, headers=headers)
        if not isinstance(body, dict):
            error = {"message": "body must be JSON", "type": "invalid_request_error"}
            return JSONResponse({"error": error}, status_code=400, headers=headers)
        completion = _Completion(kind, body, reply, number)
        if body.get("stream"):
            pieces = _pieces(completion.sse(), reply)
            return StreamingResponse(
                _send(pieces, reply), media_type="text/event-stream", headers=headers
            )
        return Response(
            json.dumps(completion.json(), ensure_ascii=False).encode(),
            media_type=reply.content_type,
            headers=headers,
        )

    def _rejected(self, body: Any) -> Response | None:
        """The error for a ``response_format`` this server does not support, if it is one."""
        wanted = body.get("response_format") if isinstance(body, dict) else None
        if self.response_formats is None or not isinstance(wanted, dict):
            return None
        kind = wanted.get("type")
        if kind in self.response_formats:
            return None
        if self.reject_status == 422:  # a FastAPI server's validation error
            detail = [{"loc": ["body", "response_format", "type"], "msg": f"bad type {kind!r}"}]
            return JSONResponse({"detail": detail}, status_code=422)
        error = {
            "message": f"response_format type {kind!r} is not supported",
            "type": "invalid_request_error",
            "param": "response_format",
            "code": None,
        }
        return JSONResponse({"error": error}, status_code=self.reject_status)

    def _kind(self, path: str) -> str | None:
        for kind, suffix in (("chat", "/chat/completions"), ("completions", "/completions")):
            if path == self.prefix + suffix:
                return kind
        return None


class _Completion:
    """The deterministic reply to one completion request, as JSON or as SSE events."""

    def __init__(self, kind: str, body: dict[str, Any], reply: Reply, number: int) -> None:
        self.kind, self.body, self.reply = kind, body, reply
        self.id = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-test-{number}"
        self.model = str(body.get("model", "unknown"))
        n = int(body.get("n") or 1)
        self.choices = [self._cut(self._text(i)) for i in range(n)]

    @property
    def _special(self) -> bool:
        """Whether the reply is tool calls or a refusal rather than text."""
        return self.kind == "chat" and bool(self.reply.tool_calls or self.reply.refusal)

    def _text(self, index: int) -> str:
        if self._special:
            return ""
        texts = self.reply.texts
        return texts[index % len(texts)] if texts else self.reply.text

    def _cut(self, text: str) -> tuple[list[str], str]:
        """Apply ``stop`` then ``max_tokens`` as a model would; return (tokens, finish)."""
        stops = self.body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        finish = "stop"
        cuts = [i for i in (text.find(s) for s in stops) if i != -1]
        if cuts:
            text = text[: min(cuts)]
        tokens = tokenize(text)
        limit = self.body.get("max_tokens") or self.body.get("max_completion_tokens")
        if limit is not None and len(tokens) > limit:
            tokens, finish = tokens[:limit], "length"
        if self._special and self.reply.tool_calls:
            finish = "tool_calls"
        return tokens, self.reply.finish_reason or finish

    def _usage(self) -> dict[str, int]:
        prompt = self.body.get("prompt") if self.kind == "completions" else self.body["messages"]
        prompt_text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)
        completion = sum(len(tokens) for tokens, _ in self.choices)
        prompt_tokens = len(tokenize(prompt_text))
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }

    def _envelope(self, choices: list[dict[str, Any]], chunk: bool) -> dict[str, Any]:
        obj = "text_completion" if self.kind == "completions" else "chat.completion"
        if chunk and self.kind == "chat":
            obj += ".chunk"
        return {
            "id": self.id,
            "object": obj,
            "created": 1700000000,
            "model": self.model,
            "choices": choices,
        }

    def _choice(
        self, index: int, text: str | None, finish: str | None, chunk: bool
    ) -> dict[str, Any]:
        if self.kind == "completions":
            return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        key = "delta" if chunk else "message"
        content: dict[str, Any] = {"content": text} if text is not None else {}
        role = {"role": "assistant"} if not chunk else {}
        if not chunk and self._special:
            content = {"content": None, **self._extra()}
        return {"index": index, key: {**role, **content}, "logprobs": None, "finish_reason": finish}

    def _extra(self) -> dict[str, Any]:
        """A whole message's tool calls or refusal."""
        if self.reply.refusal is not None:
            return {"refusal": self.reply.refusal}
        calls = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in self.reply.tool_calls
        ]
        return {"tool_calls": calls}

    def _special_deltas(self, index: int) -> Iterator[dict[str, Any]]:
        """A streamed choice's refusal pieces, or its tool calls: heads, then interleaved args."""
        size = self.reply.tool_piece
        if self.reply.refusal is not None:
            text = self.reply.refusal
            for start in range(0, len(text), size):
                yield {"refusal": text[start : start + size]}
            return
        calls = self.reply.tool_calls
        for number, (call_id, name, _) in enumerate(calls):
            function = {"name": name, "arguments": ""}
            yield {
                "tool_calls": [
                    {"index": number, "id": call_id, "type": "function", "function": function}
                ]
            }
        longest = max(len(arguments) for _, _, arguments in calls)
        for start in range(0, longest, size):
            for number, (_, _, arguments) in enumerate(calls):
                if start < len(arguments):
                    piece = {"arguments": arguments[start : start + size]}
                    yield {"tool_calls": [{"index": number, "function": piece}]}

    def json(self) -> dict[str, Any]:
        """The non-streamed reply."""
        choices = [
            self._choice(i, "".join(tokens), finish, chunk=False)
            for i, (tokens, finish) in enumerate(self.choices)
        ]
        data = self._envelope(choices, chunk=False)
        if self.reply.usage:
            data["usage"] = self._usage()
        return data

    def events(self) -> Iterator[dict[str, Any]]:
        """The streamed reply's events, without ``[DONE]``."""
        if self.kind == "chat":
            roles = [
                {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                for i in range(len(self.choices))
            ]
            yield self._envelope(roles, chunk=True)
        if self._special:
            for i in range(len(self.choices)):
                for delta in self._special_deltas(i):
                    choice = {"index": i, "delta": delta, "logprobs": None, "finish_reason": None}
                    yield self._envelope([choice], chunk=True)
        for step in range(max((len(t) for t, _ in self.choices), default=0)):
            for i, (tokens, _) in enumerate(self.choices):
                if step < len(tokens):
                    yield self._envelope([self._choice(i, tokens[step], None, True)], chunk=True)
        if self.reply.stream_error is not None:
            yield {"error": self.reply.stream_error}
            return
        for i, (_, finish) in enumerate(self.choices):
            yield self._envelope([self._choice(i, None, finish, True)], chunk=True)
        options = self.body.get("stream_options") or {}
        if self.reply.usage and options.get("include_usage"):
            yield {**self._envelope([], chunk=True), "usage": self._usage()}

    def sse(self) -> bytes:
        """The whole SSE byte stream."""
        lines = [f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in self.events()]
        if self.reply.stream_error is None:
            lines.append("data: [DONE]\n\n")
        return "".join(lines).encode()


def _pieces(data: bytes, reply: Reply) -> list[bytes]:
    if reply.cut_after is not None:
        data = data[: reply.cut_after]
    if reply.piece_size is None:
        return [e + b"\n\n" for e in data.split(b"\n\n") if e] or [data]
    size = reply.piece_size
    return [data[i : i + size] for i in range(0, len(data), size)]


async def _send(pieces: list[bytes], reply: Reply) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
        if reply.piece_delay_s:
            await asyncio.sleep(reply.piece_delay_s)
    if reply.cut_after is not None:
        raise _CutError("connection dropped on purpose")  # uvicorn aborts the chunked body


def main() -> None:
    """Serve in the foreground (benchmarks run the server in its own process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--prefix", default="/v1")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="the fixed reply text")
    args = parser.parse_args()
    server = OpenAIServer(prefix=args.prefix, default=Reply(text=args.text)).start(args.port)
    print(f"serving {server.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
