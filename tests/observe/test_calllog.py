"""The call log: what it keeps, what it never keeps, and how it survives threads and upgrades."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from muse_sdk.calllog import (
    CallLog,
    CallLogError,
    CallRecord,
    CostRow,
    default_log_path,
    log_enabled,
    new_call_id,
)
from muse_sdk.calllog._schema import MIGRATIONS, SCHEMA_VERSION
from muse_sdk.errors import InvalidConfigError

KEY = "sk-proj-" + "A1b2C3d4" * 5
DAY = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC


def make(n: int = 0, **fields: object) -> CallRecord:
    values: dict[str, object] = {
        "id": new_call_id(),
        "started_at": DAY + n,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "prompt": f"prompt {n}",
        "reply": f"reply {n}",
        "params": {"temperature": 0.5, "max_tokens": 16, "stop": ["\n"]},
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "cost": 0.000123,
        "latency_s": 0.25,
        "finish_reason": "stop",
    }
    return CallRecord(**{**values, **fields})  # type: ignore[arg-type]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[CallLog]:
    with CallLog(tmp_path / "logs.db") as opened:
        yield opened


def test_records_round_trip_newest_first(log: CallLog) -> None:
    first = make(0, profile="fast", attempts=3, cached=True, stream=True)
    failed = make(1, reply=None, error="RateLimitError: slow down", cost=None, finish_reason=None)
    log.record(first)
    log.record(failed)
    assert log.recent() == [failed, first]
    assert log.recent(1) == [failed]
    assert log.recent(0) == []
    assert log.recent(None) == [failed, first]


def test_search_by_text_and_model(log: CallLog) -> None:
    log.record(make(0, prompt="Tell me about CATS", reply="meow"))
    log.record(make(1, prompt="dogs", reply="Woof"))
    log.record(make(2, model="gpt-4o", prompt="Ünïcode", error="TimeoutError: took too long"))
    assert [r.prompt for r in log.recent(text="cats")] == ["Tell me about CATS"]
    assert [r.reply for r in log.recent(text="WOOF")] == ["Woof"]
    assert [r.prompt for r in log.recent(text="ünï")] == ["Ünïcode"]
    assert [r.prompt for r in log.recent(text="timeout")] == ["Ünïcode"]
    assert [r.model for r in log.recent(model="gpt-4o")] == ["gpt-4o"]
    assert len(log.recent(model="openai:gpt-4o-mini")) == 2
    assert log.recent(model="local:gpt-4o") == []
    assert log.recent(text="cats", model="gpt-4o") == []
    assert log.recent(text="%") == []  # a literal, not a LIKE pattern


def test_cost_by_day_sums_known_costs_and_counts_the_unpriced(log: CallLog) -> None:
    log.record(make(0, cost=0.5))
    log.record(make(1, cost=0.25))
    log.record(make(2, cost=None))
    log.record(make(86_400, cost=1.0))  # the next day
    log.record(make(3, provider="openai", model="mystery", cost=None))
    rows = log.cost_by_day()
    assert rows == [
        CostRow("2026-05-29", "openai:gpt-4o-mini", 1, 3, 4, 1.0, 0),
        CostRow("2026-05-28", "openai:gpt-4o-mini", 3, 9, 12, 0.75, 1),
        CostRow("2026-05-28", "openai:mystery", 1, 3, 4, None, 1),
    ]
    assert log.cost_by_day("mystery") == rows[2:]
    assert log.cost_by_day("openai:gpt-4o-mini") == rows[:2]


def test_keys_are_never_written(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    secret = "my-own-server-token-123"
    with CallLog(path) as log:
        log.record(
            make(
                0,
                prompt=f"my key is {KEY}",
                reply=f"echo {KEY}",
                error=f"AuthenticationError: bad key {KEY} / {secret}",
                params={"temperature": 1.0, "api_key": "plain", "extra": {"note": KEY}},
            ),
            secrets=[secret],
        )
        (stored,) = log.recent()
    assert KEY not in repr(stored) and secret not in repr(stored)
    assert stored.prompt == "my key is sk-***"
    assert stored.params == {"temperature": 1.0, "api_key": "***", "extra": {"note": "sk-***"}}
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the WAL file too
    assert KEY.encode() not in raw and secret.encode() not in raw and b"plain" not in raw


def test_unjsonable_params_are_recorded_as_text(log: CallLog) -> None:
    log.record(make(0, params={"when": Path("x"), "pair": (1, 2)}))
    assert log.recent()[0].params == {"when": "x", "pair": [1, 2]}


def test_record_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    log = CallLog(blocker / "logs.db")
    with caplog.at_level(logging.DEBUG, logger="muse_sdk"):
        log.record(make(0, prompt=KEY))
        log.record(make(1))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not write the call log" in warnings[0].getMessage()
    assert KEY not in caplog.text


def test_threads_lose_no_records(log: CallLog) -> None:
    def write(thread: int) -> None:
        for i in range(50):
            log.record(make(thread * 100 + i, prompt=f"t{thread} i{i}"))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = log.recent(None)
    assert len(records) == 400 and len({r.prompt for r in records}) == 400


def test_processes_share_one_log(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    code = (
        "import sys\n"
        "from muse_sdk.calllog import CallLog, CallRecord, new_call_id\n"
        "log = CallLog(sys.argv[1])\n"
        "for i in range(30):\n"
        "    log.record(CallRecord(new_call_id(), float(i), 'fake', 'echo', prompt=str(i)))\n"
        "log.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)]) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert len(CallLog(path).recent(None)) == 90


def _v1_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(MIGRATIONS[0][0])
    conn.execute(
        "INSERT INTO calls (id, started_at, provider, model, prompt, reply, params,"
        " prompt_tokens, completion_tokens, cost, latency_s, attempts, cached, stream)"
        " VALUES ('old', 1.5, 'openai', 'gpt-4o', 'hi', 'hello', '{\"n\": 1}', 1, 2, 0.1, 0.2,"
        " 1, 0, 0)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_a_v1_log_is_migrated_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    _v1_database(path)
    with CallLog(path) as log:
        assert log.recent() == [
            CallRecord(
                "old", 1.5, "openai", "gpt-4o", None, "hi", "hello", {"n": 1}, 1, 2, 0.1, 0.2
            )
        ]
        log.record(make(0))
        assert len(log.recent()) == 2
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    indexes = {row[1] for row in conn.execute("PRAGMA index_list(calls)")}
    assert {"calls_by_time", "calls_by_model"} <= indexes
    conn.close()


def test_a_failed_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "logs.db"
    _v1_database(path)
    broken = (MIGRATIONS[0], (*MIGRATIONS[1], "CREATE TABLE oops (x"))
    monkeypatch.setattr("muse_sdk.calllog._schema.MIGRATIONS", broken)
    with pytest.raises(CallLogError):
        CallLog(path).recent()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    columns = {row[1] for row in conn.execute("PRAGMA table_info(calls)")}
    assert "finish_reason" not in columns
    assert conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 1
    conn.close()


def test_a_log_from_a_newer_muse_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CallLogError, match="upgrade muse"):
        CallLog(path).recent()


def test_a_file_that_is_not_a_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(CallLogError, match="not a muse call log"):
        CallLog(path).recent()


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path)}
    assert default_log_path(env) == tmp_path / "muse" / "logs.db"
    assert default_log_path({**env, "MUSE_LOG_PATH": "~/x.db"}) == Path.home() / "x.db"
    if sys.platform != "win32":
        assert default_log_path({}) == Path.home() / ".local" / "share" / "muse" / "logs.db"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("MUSE_LOG_PATH", raising=False)
    log = CallLog()
    log.record(make(0))
    assert (tmp_path / "muse" / "logs.db").is_file()  # the directory is created
    log.close()


@pytest.mark.parametrize(
    ("env", "setting", "expected"),
    [
        (None, None, False),
        (None, True, True),
        ("1", None, True),
        ("yes", False, True),
        ("TRUE", None, True),
        ("0", True, False),
        ("off", True, False),
        ("", True, True),
    ],
)
def test_log_enabled(env: str | None, setting: bool | None, expected: bool) -> None:
    assert log_enabled(setting, {} if env is None else {"MUSE_LOG": env}) is expected


def test_log_enabled_rejects_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSE_LOG", "maybe")
    with pytest.raises(InvalidConfigError, match="MUSE_LOG"):
        log_enabled(True)


def test_import_is_light() -> None:
    code = (
        "import sys, muse_sdk, muse_sdk.calllog\n"
        "assert 'muse_sdk.calllog._store' not in sys.modules\n"
        "muse_sdk.calllog.CallLog\n"
        "assert 'muse_sdk.calllog._store' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_recording_is_quick(log: CallLog) -> None:
    start = time.perf_counter()
    for i in range(200):
        log.record(make(i))
    assert (time.perf_counter() - start) / 200 < 0.05  # generous: CI disks are slow


def test_a_log_that_cannot_be_opened_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(conn: sqlite3.Connection, path: Path) -> int:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr("muse_sdk.calllog._store.migrate", read_only)
    with pytest.raises(CallLogError, match=r"cannot open the call log .*readonly"):
        CallLog(tmp_path / "logs.db").recent()
