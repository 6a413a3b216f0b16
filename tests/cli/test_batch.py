"""``muse batch``: one JSON line per prompt, failures kept, reruns resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import Invoke

PROMPTS = ["a story", "一首关于秋天的诗", "an ad"]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _prompts_txt(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("a story\n\n一首关于秋天的诗\nan ad\n", encoding="utf-8")
    return path


def test_text_input_gives_one_line_per_prompt(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    result = invoke("batch", str(_prompts_txt(tmp_path)), "-o", str(out), "-m", "fake:echo")
    assert result.exit_code == 0, result.stderr
    lines = _lines(out)
    assert [line["index"] for line in lines] == [0, 1, 2]
    assert [line["prompt"] for line in lines] == PROMPTS
    assert [line["text"] for line in lines] == PROMPTS
    first = lines[0]
    assert first["choices"] == ["a story"] and first["finish_reason"] == "stop"
    assert first["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    assert first["error"] is None and first["model"] == "fake:echo"
    assert isinstance(first["latency_s"], float)
    assert "3 prompts: 3 succeeded" in result.stderr
    assert result.stdout == ""


def test_jsonl_input_with_ids_messages_and_options(invoke: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "prompts.jsonl"
    rows = [
        json.dumps("plain string prompt"),
        json.dumps({"prompt": "with an id here", "id": "a-1"}),
        json.dumps({"prompt": [{"role": "user", "content": "chat message prompt"}]}),
    ]
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["batch", str(source), "-o", str(out), "-m", "fake:echo", "--max-tokens", "2"]
    result = invoke(*args, "--n", "2", "--concurrency", "2")
    assert result.exit_code == 0, result.stderr
    lines = _lines(out)
    assert [line["text"] for line in lines] == ["plain string", "with an", "chat message"]
    assert lines[1]["id"] == "a-1" and "id" not in lines[0]
    assert lines[0]["choices"] == ["plain string", "plain string"]
    assert lines[0]["finish_reason"] == "length"


def test_failures_are_recorded_per_line_and_exit_3(
    invoke: Invoke, muse_toml: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    source = tmp_path / "prompts.jsonl"
    source.write_text('"fine"\n""\n"also fine"\n', encoding="utf-8")
    result = invoke("batch", str(source), "-o", str(out), "-m", "fake:echo")
    assert result.exit_code == 3
    lines = _lines(out)
    assert [line["error"] is None for line in lines] == [True, False, True]
    assert lines[1]["error"]["type"] == "InvalidPromptError" and lines[1]["text"] is None
    assert "1 of 3 prompts failed (first: prompt 1: InvalidPromptError" in result.stderr


def test_rerun_skips_done_prompts_and_retries_failed_ones(
    invoke: Invoke, muse_toml: Path, tmp_path: Path
) -> None:
    source, out = _prompts_txt(tmp_path), tmp_path / "out.jsonl"
    failed = invoke("batch", str(source), "-o", str(out), "-p", "denied")
    assert failed.exit_code == 3
    assert all(line["error"]["type"] == "AuthenticationError" for line in _lines(out))
    retried = invoke("batch", str(source), "-o", str(out), "-p", "echo")
    assert retried.exit_code == 0, retried.stderr
    assert [line["text"] for line in _lines(out)] == PROMPTS  # one line per prompt, no duplicate
    # Everything is done: a provider that would fail is never called.
    again = invoke("batch", str(source), "-o", str(out), "-p", "denied")
    assert again.exit_code == 0
    assert "3 succeeded (3 from an earlier run)" in again.stderr
    assert [line["text"] for line in _lines(out)] == PROMPTS


def test_an_interrupted_file_is_resumed_and_compacted(invoke: Invoke, tmp_path: Path) -> None:
    source, out = _prompts_txt(tmp_path), tmp_path / "out.jsonl"
    done = {"index": 2, "prompt": "an ad", "text": "kept", "error": None}
    out.write_text(json.dumps(done) + "\n" + '{"index": 0, "prompt": "a st', encoding="utf-8")
    result = invoke("batch", str(source), "-o", str(out), "-m", "fake:echo")
    assert result.exit_code == 0, result.stderr
    assert [line["text"] for line in _lines(out)] == ["a story", "一首关于秋天的诗", "kept"]
    assert "(1 from an earlier run)" in result.stderr


def test_results_for_another_input_stop_the_run(invoke: Invoke, tmp_path: Path) -> None:
    source, out = _prompts_txt(tmp_path), tmp_path / "out.jsonl"
    out.write_text(json.dumps({"index": 0, "prompt": "other", "error": None}) + "\n")
    result = invoke("batch", str(source), "-o", str(out), "-m", "fake:echo")
    assert result.exit_code == 2
    assert "holds a result for another input" in result.stderr
    assert json.loads(out.read_text())["prompt"] == "other"  # left untouched


def test_bad_input_files_are_usage_errors(invoke: Invoke, tmp_path: Path) -> None:
    out = str(tmp_path / "out.jsonl")
    bad = tmp_path / "bad.jsonl"
    cases = {
        '"ok"\n{not json\n': "bad.jsonl, line 2: not valid JSON",
        '{"promt": "x"}\n': "expected a JSON string or an object",
        '{"prompt": "x", "idx": 1}\n': "unknown key 'idx' (did you mean 'id'?)",
        '{"prompt": 3}\n': "'prompt' must be text",
    }
    for content, expected in cases.items():
        bad.write_text(content, encoding="utf-8")
        result = invoke("batch", str(bad), "-o", out, "-m", "fake:echo")
        assert result.exit_code == 2, content
        assert expected in result.stderr, result.stderr
    missing = invoke("batch", str(tmp_path / "nope.txt"), "-o", out)
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_bad_generation_options_fail_before_any_work(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = invoke(
        "batch",
        str(_prompts_txt(tmp_path)),
        "-o",
        str(out),
        "-m",
        "fake:echo",
        "--concurrency",
        "0",
    )
    assert result.exit_code == 2 and not out.exists()
    result = invoke("batch", str(_prompts_txt(tmp_path)), "-o", str(out), "-m", "nope:x")
    assert result.exit_code == 2 and not out.exists()


def test_forced_progress_bar_renders_without_a_terminal(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    args = ["batch", str(_prompts_txt(tmp_path)), "-o", str(out), "-m", "fake:echo"]
    assert "3/3" in invoke(*args, "--progress").stderr
    out.unlink()
    assert "3/3" not in invoke(*args).stderr  # not a terminal: only the summary line
