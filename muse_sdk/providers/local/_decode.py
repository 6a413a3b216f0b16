"""Turning generated token ids into text, one token at a time, the same way for every path.

``generate``, ``batch`` and ``stream`` all run ``model.generate`` with a :class:`Tracker` as a
stopping criterion. The tracker sees each new token, decodes it without ever splitting a UTF-8
character (GPT-2's byte-level BPE cuts Chinese characters and emoji across tokens), trims stop
strings, and decides when a row is finished. Because the streamed and the returned text come out
of the same code, the concatenated stream always equals the non-streamed text.
"""

from __future__ import annotations

import codecs
import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from muse_sdk.providers.local._constraint import RowConstraint

__all__ = ["Row", "StopMatcher", "TokenText", "Tracker"]


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable-unicode alphabet back to raw bytes (the inverse of bytes_to_unicode)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    mapping = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = 256 + extra
            extra += 1
    return {chr(code): byte for byte, code in mapping.items()}


class RowDecoder(Protocol):
    """Decodes one sequence token by token; ``feed`` never returns half a character."""

    def feed(self, token_id: int) -> str: ...
    def flush(self) -> str: ...


class _BytesDecoder:
    """Byte-level tokenizers: join token bytes through an incremental UTF-8 decoder."""

    def __init__(self, table: Sequence[bytes]) -> None:
        self._table = table
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        data = self._table[token_id] if 0 <= token_id < len(self._table) else b""
        return str(self._utf8.decode(data))

    def flush(self) -> str:
        return str(self._utf8.decode(b"", final=True))


class _TextDecoder:
    """Other tokenizers: decode the whole sequence, hold back a trailing replacement char."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._sent = 0

    def feed(self, token_id: int) -> str:
        self._ids.append(token_id)
        text = self._decode(self._ids)
        if text.endswith("\ufffd"):
            return ""
        return self._take(text)

    def flush(self) -> str:
        return self._take(self._decode(self._ids))

    def _take(self, text: str) -> str:
        new, self._sent = text[self._sent :], len(text)
        return new


class TokenText:
    """How one tokenizer's ids become text; builds a per-row :class:`RowDecoder`."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._table = _byte_table(tokenizer) if _is_byte_level(tokenizer) else None

    def decoder(self) -> RowDecoder:
        """A fresh decoder for one generated sequence."""
        if self._table is not None:
            return _BytesDecoder(self._table)
        return _TextDecoder(lambda ids: str(self._tokenizer.decode(ids, skip_special_tokens=True)))


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    from tokenizers import decoders

    return isinstance(backend.decoder, decoders.ByteLevel)


def _byte_table(tokenizer: Any) -> list[bytes]:
    """Every id's bytes; special tokens decode to nothing, as with ``skip_special_tokens``."""
    alphabet = _byte_decoder()
    special = set(tokenizer.all_special_ids)
    added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
    table: list[bytes] = []
    for token_id, token in enumerate(tokenizer.convert_ids_to_tokens(range(len(tokenizer)))):
        if token_id in special or token is None:
            table.append(b"")
        elif token_id in added:
            table.append(added[token_id].encode("utf-8"))
        elif all(char in alphabet for char in token):
            table.append(bytes(alphabet[char] for char in token))
        else:
            table.append(token.encode("utf-8"))
    return table


class StopMatcher:
    """Cuts text at the first stop string, holding back what could still become one.

    With ``accept``, a stop string only counts where ``accept(text before it)`` is true: a
    constrained reply ends at a stop string only where what comes before it is complete.
    """

    def __init__(self, stops: Iterable[str], accept: Callable[[str], bool] | None = None) -> None:
        self._stops = tuple(stops)
        self._pending = ""
        self._accept = accept

    def feed(self, text: str) -> tuple[str, bool]:
        """Add text; return what is safe to emit and whether a stop string was reached."""
        pending = self._pending + text
        for hit in self._hits(pending):
            if self._accept is None or self._accept(pending[:hit]):
                self._pending = ""
                return pending[:hit], True
        keep = self._held_back(pending)
        self._pending = pending[len(pending) - keep :] if keep else ""
        return pending[: len(pending) - keep], False

    def _hits(self, text: str) -> list[int]:
        """Where stop strings start in ``text``: the first, or every one when some may not count."""
        if self._accept is None:
            first = [i for i in (text.find(stop) for stop in self._stops) if i != -1]
            return [min(first)] if first else []
        hits = set()
        for stop in self._stops:
            at = text.find(stop)
            while at != -1:
                hits.add(at)
                at = text.find(stop, at + 1)
        return sorted(hits)

    def flush(self) -> str:
        """The held-back text, once nothing more will come."""
        pending, self._pending = self._pending, ""
        return pending

    def _held_back(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that starts some stop string."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest


@dataclass
class Row:
    """One generated sequence (a choice) as it is produced."""

    decoder: RowDecoder
    matcher: StopMatcher
    token_ids: list[int] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    #: The row's grammar state when the call constrains its output (``schema=`` etc.).
    constraint: RowConstraint | None = None

    @property
    def text(self) -> str:
        """The text produced so far, stop string trimmed."""
        return "".join(self.parts)


Sink = Callable[[int, str], None]


def _complete(row: Row, before: str) -> bool:
    """Whether a constrained row would be complete with ``before`` as its last text."""
    assert row.constraint is not None
    return row.constraint.accepts(row.text + before)


class Tracker:
    """A ``model.generate`` stopping criterion that decodes, trims and streams every row.

    ``sink(row, text)`` receives text as soon as it is final (streaming); ``on_step()`` is
    called after every decode step (the caller's read timeout); ``cancel()`` makes every row
    stop at the next step (a stream closed early, a call past its timeout). A row with a
    ``constraints`` entry advances it with every token and ends (``"stop"``) as soon as its
    grammar is complete.
    """

    def __init__(
        self,
        rows: int,
        token_text: TokenText,
        eos_ids: frozenset[int],
        stops: Sequence[str],
        sink: Sink | None = None,
        on_step: Callable[[], None] | None = None,
        constraints: Sequence[RowConstraint | None] | None = None,
    ) -> None:
        self.rows = [Row(token_text.decoder(), StopMatcher(stops)) for _ in range(rows)]
        for row, constraint in zip(self.rows, constraints or (), strict=False):
            row.constraint = constraint
            if constraint is not None and stops:
                row.matcher = StopMatcher(stops, functools.partial(_complete, row))
        self._eos = eos_ids
        self._sink = sink
        self._on_step = on_step
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop every row at the next step."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled.is_set()

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        new_tokens = input_ids[:, -1].tolist()
        for index, (row, token_id) in enumerate(zip(self.rows, new_tokens, strict=True)):
            if row.finish_reason is None:
                self._step(index, row, int(token_id))
        cancelled = self._cancelled.is_set()
        done = [cancelled or row.finish_reason is not None for row in self.rows]
        if self._on_step is not None:
            self._on_step()
        return input_ids.new_tensor(done).bool()

    def _step(self, index: int, row: Row, token_id: int) -> None:
        row.token_ids.append(token_id)
        if token_id in self._eos:
            self._close(index, row, "stop")
            return
        text, stopped = row.matcher.feed(row.decoder.feed(token_id))
        self._emit(index, row, text)
        if stopped:
            row.finish_reason = "stop"
        elif row.constraint is not None and row.constraint.advance(token_id):
            self._close(index, row, "stop")  # the grammar is complete: nothing more may follow

    def _emit(self, index: int, row: Row, text: str) -> None:
        if text:
            row.parts.append(text)
            if self._sink is not None:
                self._sink(index, text)

    def finish(self) -> None:
        """Flush every row that ran out of tokens: its finish reason is ``"length"``."""
        for index, row in enumerate(self.rows):
            if row.finish_reason is None:
                self._close(index, row, "length")

    def _close(self, index: int, row: Row, reason: str) -> None:
        """End a row: release held-back bytes and text; a stop string found there wins."""
        text, stopped = row.matcher.feed(row.decoder.flush())
        self._emit(index, row, text if stopped else text + row.matcher.flush())
        row.finish_reason = "stop" if stopped else reason
