"""The fault server's misbehaving streams: keep-alive stalls, cut bodies, non-streams, floods.

:class:`~tests.reliability.fault_server.FaultServer` answers a request scripted with one of
:data:`STREAM_FAULTS` by calling :func:`respond`. Every endless behaviour stops on its own after
a server-side limit, so a test always ends; when the client hangs up first, the time is recorded
in ``server.hangups``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from tests.reliability.fault_server import (
    _chunk,
    _completion,
    _send,
    _stream_event,
    reply_for,
)

if TYPE_CHECKING:
    from tests.reliability.fault_server import FaultServer

__all__ = ["KEEPALIVE_S", "STREAM_FAULTS", "respond"]

#: Seconds between two ``: keep-alive`` comments of a keep-alive stall.
KEEPALIVE_S = 0.5
#: Server-side limits of the endless behaviours.
ENDLESS_LINE_LIMIT = 64 << 20
FLOOD_LIMIT = 100_000

_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
)
# No length and no chunking: the body ends when the server closes the connection, so a cut
# looks like a clean end to the client's HTTP layer.
_SSE_HEAD_UNTIL_CLOSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
)

STREAM_FAULTS = (
    "keepalive_stall",  # one data event, then only ": keep-alive" comments
    "close_mid_char",  # one event, then a body closed inside a multi-byte UTF-8 character
    "close_mid_line",  # one event, then a body closed in the middle of a line
    "close_no_done",  # every event but without a finish reason, closed without [DONE]
    "close_after_finish",  # every event with its finish reason, closed without [DONE]
    "close_before_first",  # half of the first event, then closed
    "html_200",  # a 200 HTML page
    "json_200_no_choices",  # a 200 JSON body that is not a completion
    "json_200_completion",  # a whole completion: the server ignored "stream": true
    "endless_line",  # one line that never ends
    "event_flood",  # data events without end, far beyond max_tokens
)


def _pieces(prompt: str) -> list[str]:
    words = reply_for(prompt).split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


async def respond(
    server: FaultServer,
    writer: asyncio.StreamWriter,
    body: dict[str, Any],
    prompt: str,
    chat: bool,
    fault: str,
) -> bool:
    """Answer with ``fault``; return whether the connection may be reused."""
    if fault in ("html_200", "json_200_no_choices", "json_200_completion"):
        await _not_a_stream(writer, body, prompt, chat, fault)
        return True  # a whole response with its length: the client may send the next one
    if fault.startswith("close_"):
        await _until_close(writer, body, prompt, chat, fault)
        return False
    writer.write(_SSE_HEAD)
    try:
        if fault == "keepalive_stall":
            await _keepalive_stall(server, writer, body, prompt, chat)
        elif fault == "endless_line":
            await _endless_line(writer)
        elif fault == "event_flood":
            await _event_flood(writer, body, chat)
        else:
            raise ValueError(f"unknown stream fault {fault!r}")
    except ConnectionError:  # the client hung up: what the tests want to see
        server.hangups.append(time.monotonic())
    return False


async def _keepalive_stall(
    server: FaultServer, writer: asyncio.StreamWriter, body: dict[str, Any], prompt: str, chat: bool
) -> None:
    _chunk(writer, _stream_event(body, _pieces(prompt)[0], chat, None))
    await writer.drain()
    until = time.monotonic() + server.stall_s
    while time.monotonic() < until:
        await asyncio.sleep(KEEPALIVE_S)
        _chunk(writer, b": keep-alive\n\n")
        await writer.drain()


async def _endless_line(writer: asyncio.StreamWriter) -> None:
    _chunk(writer, b'data: {"choices": [{"index": 0, "text": "')
    block = b"x" * 65536
    for _ in range(ENDLESS_LINE_LIMIT // len(block)):
        _chunk(writer, block)
        await writer.drain()


async def _event_flood(writer: asyncio.StreamWriter, body: dict[str, Any], chat: bool) -> None:
    event = _stream_event(body, "x", chat, None)
    for _ in range(FLOOD_LIMIT // 100):
        _chunk(writer, event * 100)
        await writer.drain()


async def _until_close(
    writer: asyncio.StreamWriter, body: dict[str, Any], prompt: str, chat: bool, fault: str
) -> None:
    pieces = _pieces(prompt)
    events = [_stream_event(body, piece, chat, None) for piece in pieces]
    if fault == "close_mid_char":
        event = json.loads(_stream_event(body, " 秋天", chat, None).removeprefix(b"data: "))
        autumn = b"data: " + json.dumps(event, ensure_ascii=False).encode()
        cut = autumn.index("秋".encode()) + 1  # one byte into a three-byte character
        data = events[0] + autumn[:cut]
    elif fault == "close_mid_line":
        data = events[0] + events[1][: len(events[1]) // 2]
    elif fault == "close_before_first":
        data = events[0][: len(events[0]) // 2]
    elif fault == "close_no_done":
        data = b"".join(events)
    else:  # close_after_finish
        data = b"".join(events) + _stream_event(body, "", chat, "stop")
    writer.write(_SSE_HEAD_UNTIL_CLOSE + data)
    await writer.drain()
    writer.write_eof()  # a clean close (FIN), not a reset
    await writer.drain()


async def _not_a_stream(
    writer: asyncio.StreamWriter, body: dict[str, Any], prompt: str, chat: bool, fault: str
) -> None:
    if fault == "html_200":
        page = b"<!doctype html><html><body><h1>Welcome to the proxy</h1></body></html>"
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n"
            + f"content-length: {len(page)}\r\n\r\n".encode()
            + page
        )
        await writer.drain()
        return
    if fault == "json_200_no_choices":
        await _send(writer, 200, {"object": "list", "data": []})
        return
    reply = _completion(body, reply_for(prompt), chat, 0)
    await _send(writer, 200, json.dumps(reply).encode())
