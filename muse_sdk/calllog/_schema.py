"""The call log's schema, versioned with ``PRAGMA user_version`` and migrated in order.

Migration ``i`` (0-based) takes a database from version ``i`` to ``i + 1``. Migrations are only
ever appended: a released one never changes, since databases in the wild were made by it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from muse_sdk.calllog import CallLogError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: one row per call.
    (
        """
        CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            started_at REAL NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            profile TEXT,
            prompt TEXT NOT NULL,
            reply TEXT,
            params TEXT NOT NULL DEFAULT '{}',
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cost REAL,
            latency_s REAL NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 1,
            error TEXT,
            cached INTEGER NOT NULL DEFAULT 0,
            stream INTEGER NOT NULL DEFAULT 0
        )
        """,
    ),
    # v2: why each call stopped, and indexes for "recent calls" and "--model".
    (
        "ALTER TABLE calls ADD COLUMN finish_reason TEXT",
        "CREATE INDEX calls_by_time ON calls (started_at)",
        "CREATE INDEX calls_by_model ON calls (model, started_at)",
    ),
)
#: The version this muse writes; a database at a higher one is refused.
SCHEMA_VERSION = len(MIGRATIONS)


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise CallLogError(
            f"the call log {str(path)!r} has schema version {version}, but this muse only knows "
            f"up to {SCHEMA_VERSION}: upgrade muse (pip install -U muse-sdk), or point "
            "MUSE_LOG_PATH at another file"
        )


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring ``conn``'s database to :data:`SCHEMA_VERSION`; return the version it was at.

    ``conn`` must be in autocommit mode (``isolation_level=None``): the migrations run in one
    ``BEGIN IMMEDIATE`` transaction, so a failure leaves the database as it was, and two processes
    opening an old log at once migrate it once.
    """
    before = _version(conn)
    _refuse_newer(before, path)
    if before == SCHEMA_VERSION:
        return before
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = _version(conn)  # another process may have migrated it while we waited
        _refuse_newer(before, path)
        for version in range(before, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        # PRAGMA takes no parameters; the value is our own int.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return before
