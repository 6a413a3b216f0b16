"""The SQLite file behind :class:`CallLog`: writing records safely, and reading them back."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from muse_sdk._redact import Redactor
from muse_sdk.calllog import CallLogError, CallRecord, CostRow, default_log_path
from muse_sdk.calllog._schema import migrate

__all__ = ["CallLog"]

logger = logging.getLogger("muse_sdk")

_FIELDS = tuple(f.name for f in dataclasses.fields(CallRecord))
_INSERT = (
    f"INSERT OR REPLACE INTO calls ({', '.join(_FIELDS)}) "
    f"VALUES ({', '.join(':' + name for name in _FIELDS)})"
)
_SELECT = f"SELECT {', '.join(_FIELDS)} FROM calls"
# Parameter names whose values are credentials ("hf_token", not "max_tokens").
_SECRET_NAME = re.compile(
    r"(?i)(api[_-]?key|secret|passw(or)?d|authorization|bearer|credential|(^|[_-])token$)"
)
_MODEL_MATCH = "(model = :model OR provider || ':' || model = :model)"
_TEXT_MATCH = (
    "(muse_contains(prompt, :text) OR muse_contains(reply, :text) OR muse_contains(error, :text))"
)


def _contains(haystack: str | None, needle: str) -> int:
    """Case-insensitive search for any script (SQLite's own LIKE only folds ASCII)."""
    return int(haystack is not None and needle.casefold() in haystack.casefold())


def _scrub(value: Any, redact: Redactor) -> Any:
    """``value`` made JSON-able, with secret-named entries masked and every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            str(k): "***" if _SECRET_NAME.search(str(k)) else _scrub(v, redact)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, redact) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))  # not JSON-able: its text, so that recording never fails


def _row(record: CallRecord, redact: Redactor) -> dict[str, Any]:
    """The record as column values, with every text redacted."""
    row = {name: getattr(record, name) for name in _FIELDS}
    for name in ("provider", "model", "profile", "prompt", "reply", "error", "finish_reason"):
        if row[name] is not None:
            row[name] = redact(str(row[name]))
    row["params"] = json.dumps(_scrub(record.params, redact), ensure_ascii=False)
    row["cached"], row["stream"] = int(record.cached), int(record.stream)
    return row


def _record(row: sqlite3.Row) -> CallRecord:
    values = dict(zip(_FIELDS, row, strict=True))
    values["params"] = json.loads(values["params"])
    values["cached"], values["stream"] = bool(values["cached"]), bool(values["stream"])
    return CallRecord(**values)


class CallLog:
    """The call log: one SQLite file, safe to share between threads and processes.

    The file is opened (created, migrated) on first use, not by the constructor. :meth:`record`
    never raises: a log that cannot be written costs a warning on the ``muse_sdk`` logger (the
    first time; later failures are logged at debug level), never the call. :meth:`recent` and
    :meth:`cost_by_day` raise :class:`~muse_sdk.calllog.CallLogError`.

    Nothing that looks like an API key is written: every text (prompt, reply, error, parameters)
    goes through muse's redaction, and parameters named like credentials are masked.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_log_path()
        # One connection behind a lock: SQLite serialises writers anyway, and WAL lets other
        # processes read while this one writes.
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._warned = False

    def __repr__(self) -> str:
        return f"CallLog({str(self.path)!r})"

    def __enter__(self) -> CallLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _connect(self) -> sqlite3.Connection:
        """The open connection (call with the lock held); a forked child opens its own."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL survives an application crash and avoids an fsync per call.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.create_function("muse_contains", 2, _contains, deterministic=True)
            migrate(conn, self.path)
        except sqlite3.Error as exc:
            conn.close()
            if getattr(exc, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise CallLogError(
                    f"{str(self.path)!r} is not a muse call log, or it is damaged ({exc}): "
                    "move it aside, or point MUSE_LOG_PATH at another file"
                ) from exc
            raise CallLogError(f"cannot open the call log {str(self.path)!r}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, with SQLite errors as :class:`CallLogError`."""
        with self._lock:
            try:
                yield self._connect()
            except sqlite3.Error as exc:
                raise CallLogError(f"cannot read the call log {str(self.path)!r}: {exc}") from exc

    def record(self, record: CallRecord, *, secrets: Iterable[str | None] = ()) -> None:
        """Write ``record`` (replacing any with its id), redacting ``secrets`` and key-like text.

        Never raises: a failure is logged and the caller goes on.
        """
        redact = Redactor(secrets)
        try:
            row = _row(record, redact)
            with self._cursor() as conn:
                conn.execute(_INSERT, row)
        except Exception as exc:
            message = redact(f"could not write the call log {str(self.path)!r}: {exc}")
            if self._warned:
                logger.debug("%s", message)
            else:
                self._warned = True
                logger.warning("%s (the call itself is unaffected)", message)

    def recent(
        self, n: int | None = 20, *, text: str | None = None, model: str | None = None
    ) -> list[CallRecord]:
        """The latest ``n`` calls (all when ``None``), newest first.

        ``text`` keeps calls whose prompt, reply or error contains it (any case); ``model``
        those of that model, given as ``provider:model`` or the bare model name.
        """
        if n is not None and n <= 0:
            return []
        where, params = self._filters(text=text, model=model)
        sql = f"{_SELECT}{where} ORDER BY started_at DESC, rowid DESC"
        if n is not None:
            sql += " LIMIT :limit"
            params["limit"] = n
        with self._cursor() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_record(row) for row in rows]

    def cost_by_day(self, model: str | None = None) -> list[CostRow]:
        """Calls, tokens and cost by UTC day and ``provider:model``, the latest day first.

        A day's ``cost`` sums the calls with a known cost; ``unpriced`` counts the others.
        """
        where, params = self._filters(model=model)
        sql = (
            "SELECT strftime('%Y-%m-%d', started_at, 'unixepoch') AS day,"
            " provider || ':' || model AS spec, COUNT(*), SUM(prompt_tokens),"
            " SUM(completion_tokens), SUM(cost), SUM(cost IS NULL)"
            f" FROM calls{where} GROUP BY day, spec ORDER BY day DESC, spec"
        )
        with self._cursor() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [
            CostRow(
                day=day,
                model=spec,
                calls=calls,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost=cost,
                unpriced=unpriced,
            )
            for day, spec, calls, prompt_tokens, completion_tokens, cost, unpriced in rows
        ]

    @staticmethod
    def _filters(
        *, text: str | None = None, model: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        if text:
            clauses.append(_TEXT_MATCH)
            params["text"] = text
        if model:
            clauses.append(_MODEL_MATCH)
            params["model"] = model
        return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params

    def close(self) -> None:
        """Close the file; the log reopens it if used again."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
