"""Response cache stores: an in-memory LRU, a SQLite file, and the protocol any store follows."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl

from muse_sdk.errors import InvalidConfigError, InvalidParameterError

__all__ = ["Cache", "MemoryCache", "SQLiteCache", "cache_from"]

logger = logging.getLogger("muse_sdk.cache")

_FORMS = (
    "'memory', 'memory?max_entries=N&ttl_s=S', 'sqlite:PATH', 'sqlite:PATH?max_entries=N&ttl_s=S', "
    "an object with get(key) -> str | None and set(key, value), or None for no cache"
)


@runtime_checkable
class Cache(Protocol):
    """The small protocol of a response cache: JSON text values under string keys.

    A store may forget anything at any time; ``get`` returns ``None`` for a miss.
    """

    def get(self, key: str) -> str | None:
        """The value stored under ``key``, or ``None``."""
        ...

    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing any older value."""
        ...


class MemoryCache:
    """A thread-safe in-process LRU cache of at most ``max_entries``, each kept ``ttl_s`` at most.

    ``clock`` (seconds, :func:`time.monotonic` by default) dates the entries; tests inject one.
    """

    def __init__(
        self,
        max_entries: int = 1024,
        ttl_s: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = _check_max_entries(max_entries)
        self.ttl_s = _check_ttl(ttl_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()  # oldest use first

    def get(self, key: str) -> str | None:
        """The value under ``key``, or ``None`` when absent or expired; a hit becomes the newest."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, created = entry
            if self.ttl_s is not None and self._clock() - created >= self.ttl_s:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``; the least recently used entries beyond the bound go."""
        with self._lock:
            self._entries[key] = (value, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryCache(max_entries={self.max_entries}, ttl_s={self.ttl_s})"


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS muse_cache ("
    "key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL, used REAL NOT NULL)"
)


class SQLiteCache:
    """A thread-safe LRU cache in a SQLite file, shared across runs and processes.

    ``~`` in ``path`` expands and missing parent directories are created. Entries expire
    ``ttl_s`` after they were stored (``clock``: wall-clock seconds by default, since the file
    outlives the process). Least recently used entries beyond ``max_entries`` are evicted in
    batches: the file may hold up to 10% more between two prunes. A file that cannot be opened
    raises :class:`~muse_sdk.errors.InvalidConfigError` here; a failure later is logged and
    treated as a miss, since a cache must never break a call.
    """

    def __init__(
        self,
        path: str | Path,
        max_entries: int = 100_000,
        ttl_s: float | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path).expanduser()
        self.max_entries = _check_max_entries(max_entries)
        self.ttl_s = _check_ttl(ttl_s)
        self._clock = clock
        self._slack = self.max_entries // 10
        self._lock = threading.Lock()
        self._last_stamp = float("-inf")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit (isolation_level=None): every statement is its own short transaction,
            # so that other processes sharing the file are never locked out for long.
            self._db = sqlite3.connect(
                self.path, timeout=5.0, check_same_thread=False, isolation_level=None
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._unusable(exc) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # Safe from corruption under WAL; a crash may only lose the last writes of a cache.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.execute("CREATE INDEX IF NOT EXISTS muse_cache_used ON muse_cache (used)")
            # Fails on a table of that name but another shape, as the statements above do not.
            self._db.execute("SELECT key, value, created, used FROM muse_cache LIMIT 1")
            (self._count,) = self._db.execute("SELECT count(*) FROM muse_cache").fetchone()
        except sqlite3.Error as exc:
            self._db.close()
            raise self._unusable(exc) from exc

    def get(self, key: str) -> str | None:
        """The value under ``key``, or ``None`` when absent, expired or unreadable."""
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT value, created FROM muse_cache WHERE key = ?", (key,)
                ).fetchone()
                if row is None:
                    return None
                value, created = row
                now = self._clock()
                if self.ttl_s is not None and now - created >= self.ttl_s:
                    self._db.execute("DELETE FROM muse_cache WHERE key = ?", (key,))
                    return None
                self._db.execute(
                    "UPDATE muse_cache SET used = ? WHERE key = ?", (self._stamp(now), key)
                )
                return str(value)
            except sqlite3.Error as exc:
                logger.warning(
                    "response cache %s: read failed, treated as a miss: %s", self.path, exc
                )
                return None

    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``; a failure is logged and the value is not cached."""
        with self._lock:
            try:
                now = self._clock()
                self._db.execute(
                    "INSERT INTO muse_cache (key, value, created, used) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                    "created = excluded.created, used = excluded.used",
                    (key, value, now, self._stamp(now)),
                )
                self._count += 1  # an upper bound: a replaced key does not add a row
                if self._count > self.max_entries + self._slack:
                    self._prune(now)
            except sqlite3.Error as exc:
                logger.warning("response cache %s: write failed, not cached: %s", self.path, exc)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._db.execute("DELETE FROM muse_cache")
            self._count = 0

    def close(self) -> None:
        """Close the file; the cache must not be used afterwards."""
        with self._lock:
            self._db.close()

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM muse_cache").fetchone()
            return int(count)

    def __repr__(self) -> str:
        return (
            f"SQLiteCache({str(self.path)!r}, max_entries={self.max_entries}, ttl_s={self.ttl_s})"
        )

    def _prune(self, now: float) -> None:
        """Drop expired entries, then the least recently used beyond ``max_entries``."""
        if self.ttl_s is not None:
            self._db.execute("DELETE FROM muse_cache WHERE created <= ?", (now - self.ttl_s,))
        # The real count: other processes may write to the same file, and replaces add no row.
        (count,) = self._db.execute("SELECT count(*) FROM muse_cache").fetchone()
        if count > self.max_entries:
            self._db.execute(
                "DELETE FROM muse_cache WHERE key IN "
                "(SELECT key FROM muse_cache ORDER BY used, rowid LIMIT ?)",
                (count - self.max_entries,),
            )
            count = self.max_entries
        self._count = count

    def _stamp(self, now: float) -> float:
        # Strictly increasing within the process, so that LRU order holds even when the clock
        # does not move between two calls.
        self._last_stamp = max(now, self._last_stamp + 1e-6)
        return self._last_stamp

    def _unusable(self, exc: BaseException) -> InvalidConfigError:
        return InvalidConfigError(
            f"cannot use {str(self.path)!r} as the response cache ({exc}): delete or move the "
            "file if it is not a cache muse made, make its directory writable, or choose "
            "another path with cache='sqlite:PATH'",
            field="cache",
        )


def cache_from(spec: str | Cache | None) -> Cache | None:
    """The cache a ``cache=`` option names: ``None``, ``"memory"``, ``"sqlite:PATH"``, or a store.

    Both string forms accept ``?max_entries=N&ttl_s=S`` options (``"sqlite:~/c.db?ttl_s=3600"``).
    An object with ``get`` and ``set`` methods is used as it is.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        head, _, query = spec.partition("?")
        max_entries, ttl_s = _options(spec, query)
        if head.strip() == "memory":
            return MemoryCache(1024 if max_entries is None else max_entries, ttl_s)
        if head.startswith("sqlite:"):
            path = head.removeprefix("sqlite:").strip()
            if not path:
                raise InvalidParameterError("cache", f"{spec!r} names no file; use 'sqlite:PATH'")
            return SQLiteCache(path, 100_000 if max_entries is None else max_entries, ttl_s)
        raise InvalidParameterError("cache", f"unknown cache {spec!r}; use {_FORMS}")
    if callable(getattr(spec, "get", None)) and callable(getattr(spec, "set", None)):
        return spec
    raise InvalidParameterError("cache", f"expected {_FORMS}; got {type(spec).__name__}")


def _options(spec: str, query: str) -> tuple[int | None, float | None]:
    """The ``max_entries`` and ``ttl_s`` of a cache spec's query (``None`` where not given)."""
    max_entries: int | None = None
    ttl_s: float | None = None
    for name, text in parse_qsl(query, keep_blank_values=True):
        try:
            if name == "max_entries":
                max_entries = int(text)
            elif name == "ttl_s":
                ttl_s = float(text)
            else:
                raise InvalidParameterError(
                    "cache",
                    f"unknown option {name!r} in {spec!r}; the options are max_entries, ttl_s",
                )
        except ValueError:
            raise InvalidParameterError(
                "cache", f"option {name}={text!r} in {spec!r} is not a number"
            ) from None
    return max_entries, ttl_s


def _check_max_entries(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidParameterError("max_entries", f"must be a positive integer, got {value!r}")
    return value


def _check_ttl(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidParameterError(
            "ttl_s", f"must be a positive number of seconds or None, got {value!r}"
        )
    return float(value)
