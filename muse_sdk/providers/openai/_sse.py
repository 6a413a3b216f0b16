"""Reading an OpenAI event stream under the rules of docs/reliability.md ("Streams").

openai's ``Stream`` sends the request, checks the status and turns events into typed chunks; its
SSE decoder is replaced (:func:`guard`) by :class:`GuardedDecoder`, which decodes the same way and:

- times the wait for *data* events against ``read`` (comments and pings do not count) and the
  whole stream against the call's ``total``: bytes that keep arriving (keep-alive comments) keep
  the socket's read timeout from ever firing, so this watchdog is what cuts such a stall;
- bounds memory: a line, or one event's data, past :data:`MAX_LINE_BYTES`, and more events than
  :func:`max_events` allows, are errors;
- notes how the body ended, so that a reply cut short never passes as a success
  (:meth:`GuardedDecoder.ensure_complete`), and never decodes half a UTF-8 character;
- reads a 200 that is not an event stream as the error ``generate()`` raises (``ServerError``),
  or, for a whole completion from a server that ignored ``stream``, as one event.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from muse_sdk.errors import BackendUnavailableError
from muse_sdk.providers.openai._errors import (
    CutStreamError,
    MalformedReplyError,
    StalledStreamError,
)

if TYPE_CHECKING:
    from muse_sdk.core.generator import Request

__all__ = [
    "DEFAULT_READ_S",
    "MAX_LINE_BYTES",
    "UNSET_MAX_TOKENS",
    "GuardedDecoder",
    "guard",
    "max_events",
]

#: The longest line (or one event's data) an event stream may send: a completion chunk is a few
#: hundred bytes, so only a broken server comes near it.
MAX_LINE_BYTES = 1 << 20
#: The largest body read from a 200 that is plain JSON instead of an event stream.
MAX_BODY_BYTES = 16 * MAX_LINE_BYTES
#: The longest wait between two data events when no ``timeout.read`` is set: openai's own default
#: read timeout, so keep-alives never make a stream wait longer than a silent socket would.
DEFAULT_READ_S = 600.0
#: ``max_tokens`` assumed by :func:`max_events` when it is not set (above any model's output cap).
UNSET_MAX_TOKENS = 262_144

_LINE_END = re.compile(rb"[\r\n]")
_SSE_START = (b"data:", b"event:", b"id:", b"retry:", b":")
_Mode = Literal["sse", "json", "sniff"]


def max_events(max_tokens: int | None, n: int) -> int:
    """The most events a reply may hold: four per token asked for, per choice, plus 64.

    A server sends about one event per token, so only one that ignores ``max_tokens`` gets near.
    """
    return 4 * (max_tokens or UNSET_MAX_TOKENS) * n + 64


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event, with what openai's ``Stream`` reads of it."""

    data: str
    event: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class GuardedDecoder:
    """An SSE decoder (openai's ``SSEBytesDecoder`` protocol) that enforces the stream rules."""

    def __init__(
        self, *, read_s: float, deadline_at: float | None, max_events: int, content_type: str
    ) -> None:
        self.read_s = read_s
        self.deadline_at = deadline_at
        self.max_events = max_events
        self.content_type = content_type
        self.events = 0  #: data events so far ([DONE] and pings excluded)
        self.done = False  #: ``data: [DONE]`` arrived
        self.cut: str | None = None  #: where the body ended, when it ended inside a line or event
        self._mode = _mode_for(content_type)
        self._buffer = bytearray()
        self._skip_lf = False
        self._data: list[str] = []
        self._data_bytes = 0
        self._type: str | None = None
        self._waited = 0.0  # seconds spent waiting for bytes since the last data event

    def __repr__(self) -> str:
        return f"<GuardedDecoder read={self.read_s}s events={self.events} done={self.done}>"

    # --- openai's SSEBytesDecoder protocol ------------------------------------------------------

    def iter_bytes(self, iterator: Iterator[bytes]) -> Iterator[Event]:
        """Decode the body's bytes into events, enforcing the limits on every arrival."""
        chunks = iter(iterator)
        while True:
            start = time.monotonic()
            chunk = next(chunks, None)
            if chunk is None:
                break
            self._arrived(time.monotonic() - start)
            yield from self._feed(chunk)
        yield from self._end()

    async def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[Event]:
        """Async twin of :meth:`iter_bytes`."""
        chunks = aiter(iterator)
        while True:
            start = time.monotonic()
            chunk = await anext(chunks, None)
            if chunk is None:
                break
            self._arrived(time.monotonic() - start)
            for event in self._feed(chunk):
                yield event
        for event in self._end():
            yield event

    def ensure_complete(self, finished: bool) -> None:
        """Raise unless the reply ended with ``[DONE]`` or with every choice ``finished``."""
        if self.done or finished:
            return
        if self.cut is not None:
            raise CutStreamError(f"ended the stream {self.cut}, before [DONE]")
        if not self.events:
            raise MalformedReplyError(
                f"a 200 reply ({self.content_type or 'no content-type'}) without any event"
            )
        raise CutStreamError(
            "ended the stream before [DONE] and before every choice had a finish reason"
        )

    # --- limits -----------------------------------------------------------------------------

    def _arrived(self, waited: float) -> None:
        # Only time spent waiting for bytes counts toward `read`: a caller slow to ask for the
        # next chunk must not look like a stalled server.
        self._waited += waited
        if self.deadline_at is not None and time.monotonic() >= self.deadline_at:
            raise StalledStreamError("was still streaming when the call's total timeout ran out")
        if self._waited > self.read_s:
            raise StalledStreamError(
                f"sent no data event for {self._waited:.1f}s, more than the read timeout of "
                f"{self.read_s:g}s (keep-alive comments do not count)"
            )

    # --- decoding ---------------------------------------------------------------------------

    def _feed(self, chunk: bytes) -> Iterator[Event]:
        # Lazily, one event at a time: an error later in the chunk (a bound) must not keep the
        # events before it from the caller.
        if self._mode == "sniff":
            self._mode = _sniff(chunk, self.content_type)
        if self._mode == "json":
            self._buffer += chunk
            if len(self._buffer) > MAX_BODY_BYTES:
                raise MalformedReplyError(f"a JSON reply over {MAX_BODY_BYTES} bytes")
            return
        for line in self._lines(chunk):
            event = self._line(line)
            if event is not None:
                yield event
        if len(self._buffer) > MAX_LINE_BYTES:
            raise MalformedReplyError(f"a line of the event stream over {MAX_LINE_BYTES} bytes")

    def _lines(self, chunk: bytes) -> Iterator[bytes]:
        """Complete lines (CR, LF or CRLF ends them); the rest waits in the buffer."""
        start = 0
        for match in _LINE_END.finditer(chunk):
            end = match.start()
            if self._skip_lf and end == start and chunk[end] == 0x0A:  # the LF of a CRLF
                self._skip_lf = False
                start = end + 1
                continue
            self._buffer += chunk[start:end]
            line = bytes(self._buffer)
            self._buffer.clear()
            self._skip_lf = chunk[end] == 0x0D
            start = end + 1
            yield line
        if start < len(chunk):
            self._skip_lf = False
            self._buffer += chunk[start:]

    def _line(self, raw: bytes) -> Event | None:
        if len(raw) > MAX_LINE_BYTES:
            raise MalformedReplyError(f"a line of the event stream over {MAX_LINE_BYTES} bytes")
        if not raw:
            return self._dispatch()
        if raw.startswith(b":"):  # a comment, e.g. a keep-alive
            return None
        try:
            name, _, value = raw.decode("utf-8").partition(":")
        except UnicodeDecodeError as exc:
            raise MalformedReplyError(f"an event-stream line that is not UTF-8 ({exc})") from exc
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
            self._data_bytes += len(raw)
            if self._data_bytes > MAX_LINE_BYTES:
                raise MalformedReplyError(f"an event's data over {MAX_LINE_BYTES} bytes")
        elif name == "event":
            self._type = value or None
        return None

    def _dispatch(self) -> Event | None:
        data, kind = self._data, self._type
        self._data, self._data_bytes, self._type = [], 0, None
        if not data or kind == "ping":  # no data, or a ping: a keep-alive, not a data event
            return None
        self._waited = 0.0
        event = Event("\n".join(data), kind)
        if event.data.startswith("[DONE]"):
            self.done = True
            return event
        self.events += 1
        if self.events > self.max_events:
            raise MalformedReplyError(
                f"more than {self.max_events} events, far beyond max_tokens: the server ignored it"
            )
        return event

    def _end(self) -> list[Event]:
        if self._mode == "json":
            return [self._json_event()]
        if self._buffer:
            self.cut = "in the middle of a line"
        elif self._data:  # data lines without the blank line that ends an event: dropped
            self.cut = "in the middle of an event"
        self._buffer.clear()
        self._data.clear()
        return []

    def _json_event(self) -> Event:
        """A plain JSON 200: an error, a whole completion (one event), or not a reply at all."""
        try:
            reply = json.loads(bytes(self._buffer))
        except ValueError as exc:
            raise MalformedReplyError(f"a JSON reply that does not parse ({exc})") from exc
        if isinstance(reply, dict) and reply.get("error"):
            return Event(json.dumps(reply))  # openai's Stream raises it as an APIError
        choices = reply.get("choices") if isinstance(reply, dict) else None
        if not isinstance(choices, list):
            snippet = _snippet(self._buffer)
            raise MalformedReplyError(
                f"a JSON reply without 'choices' instead of an event stream: {snippet}"
            )
        for choice in choices:  # a chat completion's message, read as a chunk's delta
            if isinstance(choice, dict) and "message" in choice:
                choice["delta"] = choice.pop("message")
        self.events, self.done = 1, True
        return Event(json.dumps(reply))


def _mode_for(content_type: str) -> _Mode:
    media = content_type.partition(";")[0].strip().lower()
    if media == "text/event-stream":
        return "sse"
    if media == "application/json" or media.endswith("+json"):
        return "json"
    return "sniff"


def _sniff(chunk: bytes, content_type: str) -> _Mode:
    """An event stream (or JSON) sent under another content-type, or none, still reads as one."""
    start = chunk.lstrip()
    if not start or start.startswith(_SSE_START):  # blank lines are harmless in an event stream
        return "sse"
    if start.startswith((b"{", b"[")):
        return "json"
    raise MalformedReplyError(
        f"a 200 reply of type {content_type or 'unknown'!r} instead of an event stream: "
        f"{_snippet(chunk)}"
    )


def _snippet(data: bytes | bytearray) -> str:
    return repr(bytes(data[:200]).decode("utf-8", "replace"))


def guard(events: Any, request: Request) -> GuardedDecoder:
    """Put a :class:`GuardedDecoder` under ``events``, an openai ``(Async)Stream`` not yet read.

    openai reads ``Stream._decoder`` only once iteration starts, so replacing it here is safe.
    """
    if not hasattr(events, "_decoder"):  # pragma: no cover - an openai release we do not know
        raise BackendUnavailableError(
            "this openai release has no Stream._decoder, through which muse_sdk reads streams: "
            "install an openai release that muse_sdk's requirements allow"
        )
    timeout = request.params.timeout
    params = request.params
    decoder = GuardedDecoder(
        read_s=timeout.read if timeout is not None and timeout.read else DEFAULT_READ_S,
        deadline_at=request.deadline_at,
        max_events=max_events(params.max_tokens, params.n),
        content_type=events.response.headers.get("content-type", ""),
    )
    events._decoder = decoder
    return decoder


def drain_after_done(response: Any) -> None:
    """Make closing a sync SSE body after ``[DONE]`` first read its last bytes.

    openai's sync ``Stream`` closes the response as soon as it sees ``[DONE]``, before the
    chunked body's terminator, so the connection is dropped instead of kept alive (its async
    twin drains the body). Only a body whose bytes ended in ``[DONE]`` is drained, so a stream
    the caller abandons midway is still closed at once.
    """
    if response.http_version == "HTTP/1.1":
        response.stream = _drain_class()(response.stream)


@lru_cache(maxsize=1)
def _drain_class() -> type[Any]:
    # The openai package's HTTP client: httpx2 since openai 3, httpx before.
    try:
        from httpx2 import SyncByteStream
    except ImportError:  # pragma: no cover - older openai releases
        from httpx import SyncByteStream  # type: ignore[assignment]

    class DrainAfterDone(SyncByteStream):
        max_reads = 4

        def __init__(self, inner: SyncByteStream) -> None:
            self._inner = inner
            self._tail = b""

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._inner:
                self._tail = (self._tail + chunk)[-16:]
                yield chunk

        def close(self) -> None:
            try:
                if self._tail.rstrip().endswith(b"[DONE]"):
                    for reads, _ in enumerate(self._inner, 1):
                        if reads >= self.max_reads:
                            break
            except Exception:  # cleanup must never turn a finished stream into an error
                pass
            finally:
                self._inner.close()

    return DrainAfterDone
