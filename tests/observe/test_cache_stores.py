"""Response cache stores: LRU, TTL, SQLite persistence, concurrency, bad files and cache_from."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

import pytest

from muse_sdk.cache import Cache, MemoryCache, SQLiteCache, cache_from
from muse_sdk.errors import InvalidConfigError, InvalidParameterError


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


Store: TypeAlias = MemoryCache | SQLiteCache
Make: TypeAlias = Callable[..., Store]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Make:
    def build(
        max_entries: int = 100, ttl_s: float | None = None, clock: FakeTime | None = None
    ) -> Store:
        clock = clock or FakeTime()
        if request.param == "memory":
            return MemoryCache(max_entries, ttl_s, clock=clock)
        return SQLiteCache(tmp_path / "cache.db", max_entries, ttl_s, clock=clock)

    return build


def test_get_set_and_replace(make: Make) -> None:
    cache = make()
    assert isinstance(cache, Cache)
    assert cache.get("k") is None
    cache.set("k", '{"text": "a"}')
    assert cache.get("k") == '{"text": "a"}'
    cache.set("k", '{"text": "b"}')
    assert cache.get("k") == '{"text": "b"}'
    assert len(cache) == 1
    cache.clear()
    assert cache.get("k") is None and len(cache) == 0


def test_least_recently_used_entries_are_evicted(make: Make) -> None:
    cache = make(max_entries=3)
    for key in "abc":
        cache.set(key, key)
    assert cache.get("a") == "a"  # now the most recently used
    cache.set("d", "d")
    assert cache.get("b") is None
    assert [cache.get(key) for key in "acd"] == ["a", "c", "d"]
    assert len(cache) == 3


def test_entries_expire_after_ttl(make: Make) -> None:
    clock = FakeTime()
    cache = make(ttl_s=10.0, clock=clock)
    cache.set("k", "v")
    clock.t += 9.9
    assert cache.get("k") == "v"  # a hit does not extend the life of an entry
    clock.t += 0.1
    assert cache.get("k") is None
    assert len(cache) == 0  # an expired entry is deleted, not only hidden
    cache.set("k", "w")
    assert cache.get("k") == "w"


def test_eight_threads_share_a_cache(make: Make) -> None:
    cache = make(max_entries=10_000)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(200):
                cache.set(f"{n}-{i}", str(i))
                assert cache.get(f"{n}-{i}") == str(i)
                cache.get(f"{(n + 1) % 8}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) == 1600


def test_memory_cache_bounds_under_threads() -> None:
    cache = MemoryCache(max_entries=50)

    def work(n: int) -> None:
        for i in range(500):
            cache.set(f"{n}-{i}", "v")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 50


def test_sqlite_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "cache.db"  # parent directories are created
    first = SQLiteCache(path)
    first.set("k", '{"text": "kept"}')
    first.close()
    assert SQLiteCache(path).get("k") == '{"text": "kept"}'
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_ttl_holds_across_instances(tmp_path: Path) -> None:
    clock = FakeTime()
    SQLiteCache(tmp_path / "c.db", ttl_s=5, clock=clock).set("k", "v")
    clock.t += 6
    assert SQLiteCache(tmp_path / "c.db", ttl_s=5, clock=clock).get("k") is None


def test_sqlite_prunes_in_batches(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "c.db", max_entries=100)
    for i in range(110):
        cache.set(str(i), "v")
    assert len(cache) == 110  # within the 10% slack: no prune yet
    cache.set("110", "v")
    assert len(cache) == 100
    assert cache.get("0") is None and cache.get("10") is None
    assert cache.get("11") == "v" and cache.get("110") == "v"


def test_sqlite_expands_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = SQLiteCache("~/.cache/muse/responses.db")
    assert cache.path == tmp_path / ".cache" / "muse" / "responses.db"
    assert cache.path.exists()


def test_a_corrupt_file_is_a_clear_config_error(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InvalidConfigError, match="response cache") as info:
        SQLiteCache(path)
    assert "delete or move" in str(info.value) and info.value.field == "cache"


def test_a_foreign_table_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE muse_cache (id INTEGER)")
    with pytest.raises(InvalidConfigError):
        SQLiteCache(path)


def test_an_unopenable_path_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()
    with pytest.raises(InvalidConfigError):
        SQLiteCache(tmp_path / "a-directory.db")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidConfigError):
        SQLiteCache(tmp_path / "file" / "cache.db")  # its parent is a file


def test_failures_after_opening_are_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SQLiteCache(tmp_path / "c.db")
    cache.set("k", "v")
    cache._db.execute("DROP TABLE muse_cache")  # as if another process broke the file
    with caplog.at_level(logging.WARNING, logger="muse_sdk.cache"):
        assert cache.get("k") is None
        cache.set("k", "v")  # no exception
    assert "treated as a miss" in caplog.text and "not cached" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": 2.5}, "max_entries"),
        ({"ttl_s": 0}, "ttl_s"),
        ({"ttl_s": -1}, "ttl_s"),
        ({"ttl_s": "60"}, "ttl_s"),
    ],
)
def test_bounds_are_validated(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        MemoryCache(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


# --- cache_from ----------------------------------------------------------------------------


def test_cache_from_forms(tmp_path: Path) -> None:
    assert cache_from(None) is None
    memory = cache_from("memory")
    assert isinstance(memory, MemoryCache) and memory.max_entries == 1024 and memory.ttl_s is None
    memory = cache_from("memory?max_entries=100&ttl_s=60")
    assert isinstance(memory, MemoryCache) and (memory.max_entries, memory.ttl_s) == (100, 60.0)
    sqlite = cache_from(f"sqlite:{tmp_path}/c.db")
    assert isinstance(sqlite, SQLiteCache) and sqlite.path == tmp_path / "c.db"
    assert sqlite.max_entries == 100_000
    sqlite = cache_from(f"sqlite:{tmp_path}/d.db?ttl_s=3600&max_entries=1000")
    assert isinstance(sqlite, SQLiteCache) and (sqlite.max_entries, sqlite.ttl_s) == (1000, 3600.0)


def test_cache_from_takes_any_object_with_get_and_set() -> None:
    class DictCache:
        def __init__(self) -> None:
            self.data: dict[str, str] = {}

        def get(self, key: str) -> str | None:
            return self.data.get(key)

        def set(self, key: str, value: str) -> None:
            self.data[key] = value

    store = DictCache()
    assert cache_from(store) is store


@pytest.mark.parametrize(
    "spec",
    [
        "redis://x",
        "sqlite:",
        "memory?size=3",
        "memory?ttl_s=soon",
        "memory?max_entries=0",
        42,
        True,
        {"get": 1},
    ],
)
def test_cache_from_rejects_the_rest(spec: object) -> None:
    with pytest.raises(InvalidParameterError) as info:
        cache_from(spec)  # type: ignore[arg-type]
    if not isinstance(spec, str) or spec.startswith("redis"):
        assert info.value.field == "cache"
        assert "'memory'" in str(info.value) and "sqlite:PATH" in str(info.value)
