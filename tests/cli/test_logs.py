"""``muse logs``: recent calls, search, JSON lines that round trip, and costs by model and day."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from muse_sdk.calllog import CallLog, CallRecord, CostRow
from tests.cli.conftest import Invoke

DAY = 1_780_000_000.0  # 2026-05-28 UTC
EMPTY = "no calls logged yet: turn logging on with MUSE_LOG=1 or log = true in muse.toml"


def record(n: int, **fields: object) -> CallRecord:
    values: dict[str, object] = {
        "id": f"call-{n}",
        "started_at": DAY + n * 60.5,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "profile": "fast" if n % 2 else None,
        "prompt": f"question {n}: " + "why is the sky blue? " * 5,
        "reply": f"answer {n}\nbecause of Rayleigh scattering",
        "params": {"temperature": 0.7, "stop": ["\n\n"], "seed": n},
        "prompt_tokens": 10 + n,
        "completion_tokens": 20 + n,
        "cost": 0.00001 * (n + 1),
        "latency_s": 0.123 * (n + 1),
        "attempts": 1 + n % 3,
        "cached": n == 2,
        "stream": n % 2 == 0,
        "finish_reason": "stop",
    }
    return CallRecord(**{**values, **fields})  # type: ignore[arg-type]


@pytest.fixture
def log_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data" / "logs.db"
    monkeypatch.setenv("MUSE_LOG_PATH", str(path))
    return path


@pytest.fixture
def records(log_path: Path) -> list[CallRecord]:
    made = [record(n) for n in range(5)]
    made.append(
        record(
            5,
            model="gpt-4o",
            prompt='[{"role": "user", "content": "Café ☕"}]',
            reply=None,
            error="RateLimitError: slow down",
            cost=None,
            finish_reason=None,
        )
    )
    with CallLog(log_path) as log:
        for item in made:
            log.record(item)
    return made


def test_json_round_trips(invoke: Invoke, records: list[CallRecord]) -> None:
    result = invoke("logs", "--json")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [CallRecord(**json.loads(line)) for line in lines] == records[::-1]


def test_n_search_and_model(invoke: Invoke, records: list[CallRecord]) -> None:
    def ids(*args: str) -> list[str]:
        result = invoke("logs", "--json", *args)
        assert result.exit_code == 0, result.stderr
        return [json.loads(line)["id"] for line in result.stdout.splitlines()]

    assert ids("-n", "2") == ["call-5", "call-4"]
    assert ids("-q", "ANSWER 3") == ["call-3"]
    assert ids("-q", "café") == ["call-5"]
    assert ids("--model", "openai:gpt-4o") == ["call-5"]
    assert ids("--model", "gpt-4o-mini", "-n", "1") == ["call-4"]


def test_human_output_is_a_compact_table(
    invoke: Invoke, records: list[CallRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = invoke("logs")
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines())
    assert "$0.00005" in narrow.stdout  # the short columns are never the ones cut
    monkeypatch.setenv("COLUMNS", "200")
    result = invoke("logs")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 + len(records)  # a header, then one line per call
    assert "openai:gpt-4o" in lines[1] and "RateLimitError: slow down" in lines[1]
    assert "?" in lines[1]  # its cost is unknown
    assert "question 4" in lines[2] and "answer 4 because" in lines[2]
    assert "34+44" not in result.stdout and "14+24" in lines[2]


def test_cost_by_model_and_day(invoke: Invoke, records: list[CallRecord]) -> None:
    result = invoke("logs", "--cost", "--json")
    assert result.exit_code == 0, result.stderr
    rows = [CostRow(**json.loads(line)) for line in result.stdout.splitlines()]
    assert [(r.day, r.model, r.calls, r.unpriced) for r in rows] == [
        ("2026-05-28", "openai:gpt-4o", 1, 1),
        ("2026-05-28", "openai:gpt-4o-mini", 5, 0),
    ]
    assert rows[0].cost is None and rows[1].cost == pytest.approx(0.00015)
    table = invoke("logs", "--cost")
    assert table.exit_code == 0, table.stderr
    assert "openai:gpt-4o-mini" in table.stdout and "$0.00015" in table.stdout
    assert "total" in table.stdout and "1 calls unpriced" in table.stdout
    only = invoke("logs", "--cost", "--json", "--model", "gpt-4o")
    assert len(only.stdout.splitlines()) == 1


@pytest.mark.parametrize("args", [[], ["--json"], ["--cost"]])
def test_a_missing_log_says_how_to_turn_it_on(
    invoke: Invoke, log_path: Path, args: list[str]
) -> None:
    result = invoke("logs", *args)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert EMPTY in result.stderr
    assert not log_path.exists()  # reading never creates the log


def test_an_empty_log_and_no_match(invoke: Invoke, log_path: Path) -> None:
    CallLog(log_path).recent()  # creates the file, with no calls
    result = invoke("logs")
    assert result.exit_code == 0 and EMPTY in result.stderr
    CallLog(log_path).record(record(0))
    miss = invoke("logs", "-q", "nothing like this")
    assert miss.exit_code == 0 and "no logged call matches" in miss.stderr


def test_path_option_and_errors(invoke: Invoke, tmp_path: Path, records: list[CallRecord]) -> None:
    other = tmp_path / "other.db"
    CallLog(other).record(record(9))
    result = invoke("logs", "--json", "--path", str(other))
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["call-9"]
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"junk" * 1000)
    bad = invoke("logs", "--path", str(junk))
    assert bad.exit_code == 1 and bad.stderr.startswith("error:")
    assert "not a muse call log" in bad.stderr
    both = invoke("logs", "--cost", "-q", "x")
    assert both.exit_code == 2 and "use one or the other" in both.stderr


def test_help(invoke: Invoke) -> None:
    result = invoke("logs", "--help")
    assert result.exit_code == 0
    for flag in ("-n", "--json", "-q", "--model", "--cost", "--path"):
        assert flag in result.stdout
    assert "logs" in invoke("--help").stdout
