"""``muse generate``: streaming, options, stdin, and every error path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Invoke


def test_streams_the_reply_to_stdout(invoke: Invoke) -> None:
    result = invoke("generate", "Once upon a time", "-m", "fake:echo")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Once upon a time\n"
    assert result.stderr == ""


def test_generation_options_reach_the_generator(invoke: Invoke) -> None:
    args = ["generate", "one two three four", "-m", "fake:echo", "--max-tokens", "2"]
    extra = ["--temperature", "0.7", "--top-k", "50", "--top-p", "0.95", "--seed", "1"]
    result = invoke(*args, *extra)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "one two\n"


def test_stop_is_repeatable(invoke: Invoke) -> None:
    result = invoke("generate", "a b c d", "-m", "fake:echo", "--stop", " d", "--stop", " c")
    assert result.stdout == "a b\n"


def test_no_stream_and_several_choices(invoke: Invoke) -> None:
    single = invoke("generate", "hello there", "-m", "fake:echo", "--no-stream")
    assert single.exit_code == 0 and single.stdout == "hello there\n"
    many = invoke("generate", "hello there", "-m", "fake:echo", "--n", "2")
    assert many.exit_code == 0
    assert many.stdout.count("hello there\n") == 2
    assert "--- choice 2 of 2 ---" in many.stdout


def test_json_prints_the_whole_result(invoke: Invoke) -> None:
    result = invoke("generate", "写一首关于秋天的诗", "-m", "fake:echo", "--json", "--n", "2")
    data = json.loads(result.stdout)
    assert data["text"] == "写一首关于秋天的诗"
    assert len(data["choices"]) == 2 and data["provider"] == "fake"
    assert data["usage"]["completion_tokens"] > 0


def test_verbose_reports_usage_and_latency_on_stderr(invoke: Invoke) -> None:
    for extra in ([], ["--no-stream"]):
        result = invoke("generate", "Once upon a time", "-m", "fake:echo", "-v", *extra)
        assert result.stdout == "Once upon a time\n"
        assert "fake:echo" in result.stderr and "finish=stop" in result.stderr
        assert "4 prompt + 4 completion = 8" in result.stderr and "latency" in result.stderr


def test_dash_reads_the_prompt_from_stdin(invoke: Invoke) -> None:
    result = invoke("generate", "-", "-m", "fake:echo", input="从标准输入读取\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "从标准输入读取\n"


def test_default_and_profile_come_from_the_config(invoke: Invoke, muse_toml: Path) -> None:
    assert invoke("generate", "via default").stdout == "via default\n"
    assert invoke("generate", "x", "--profile", "coder").stdout.startswith("Here is the code")
    assert invoke("generate", "x", "-m", "coder").stdout.startswith("Here is the code")


def test_config_option_names_the_file(invoke: Invoke, muse_toml: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere.toml"
    muse_toml.rename(moved)
    result = invoke("--config", str(moved), "generate", "x", "-p", "coder")
    assert result.exit_code == 0 and result.stdout.startswith("Here is the code")


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unknown_provider_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("generate", "x", "-m", "nope:model")
    assert result.exit_code == 2
    assert "unknown provider 'nope'" in _one_error_line(result.stderr)
    assert "Traceback" not in result.output


def test_bad_parameters_and_prompts_are_usage_errors(invoke: Invoke) -> None:
    echo = ["-m", "fake:echo"]
    cases = [
        (["x", *echo, "--temperature", "5"], "--temperature"),
        (["x", *echo, *[arg for s in "abcde" for arg in ("--stop", s)]], "stop"),
        (["   ", *echo], "the prompt is empty"),
        (["-", *echo], "the prompt is empty"),
        (["x", "-m", "no-colon-no-profile"], "no profile named"),
    ]
    for args, expected in cases:
        result = invoke("generate", *args)
        assert result.exit_code == 2, (args, result.output)
        assert expected in _one_error_line(result.stderr)


def test_missing_argument_is_one_line_with_a_hint(invoke: Invoke) -> None:
    result = invoke("generate")
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert "Missing argument" in line and "muse generate --help" in line


def test_provider_error_exits_1_and_debug_shows_the_traceback(
    invoke: Invoke, muse_toml: Path
) -> None:
    result = invoke("generate", "x", "-p", "denied")
    assert result.exit_code == 1
    assert "scripted auth failure" in _one_error_line(result.stderr)
    debug = invoke("--debug", "generate", "x", "-p", "denied")
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "AuthenticationError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("error: ")


def test_interrupted_stream_keeps_the_partial_text(invoke: Invoke, muse_toml: Path) -> None:
    result = invoke("generate", "x", "-p", "interrupted")
    assert result.exit_code == 1
    assert result.stdout.startswith("one two")
    assert "error: " in result.stderr


def test_input_is_checked_before_the_model_loads(
    invoke: Invoke, unloadable: str, tmp_path: Path
) -> None:
    prompts, out = tmp_path / "prompts.txt", tmp_path / "out.jsonl"
    prompts.write_text("a story\n", encoding="utf-8")
    batch = ["batch", str(prompts), "-o", str(out), "-m", unloadable]
    stops = [arg for s in "abcde" for arg in ("--stop", s)]
    cases = [
        (["generate", "", "-m", unloadable], "the prompt is empty"),
        (["generate", "x", "-m", unloadable, "--top-p", "0"], "invalid parameter 'top_p'"),
        (["generate", "x", "-m", unloadable, *stops], "invalid parameter 'stop'"),
        (["generate", "x", "-m", unloadable, "--max-tokens", "2000000"], "'max_tokens'"),
        (["generate", "x", "-m", unloadable, "--stop", ""], "must not be empty strings"),
        (["code", " ", "-m", unloadable], "requirement must be a non-empty str"),
        (["code", "x", "-m", unloadable, "--top-p", "0"], "invalid parameter 'top_p'"),
        ([*batch, *stops], "invalid parameter 'stop'"),
        ([*batch, "--top-p", "0"], "invalid parameter 'top_p'"),
    ]
    for args, expected in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert expected in _one_error_line(result.stderr), args
    piped = invoke("generate", "-", "-m", unloadable, input="\n")
    assert piped.exit_code == 2 and "the prompt is empty" in piped.stderr
    assert not out.exists()


def test_an_empty_prompt_fails_without_importing_the_backend() -> None:
    code = (
        "import sys; from muse_sdk.cli import main; "
        "rc = main(['generate', '', '-m', 'local:gpt2']); "
        "print(rc, [m for m in ('torch', 'transformers') if m in sys.modules])"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.stdout.strip().endswith("2 []"), run.stdout + run.stderr
    assert "the prompt is empty" in run.stderr


def test_truncate_is_a_usage_error_for_providers_without_it(
    invoke: Invoke, muse_toml: Path, tmp_path: Path
) -> None:
    result = invoke("generate", "x", "-m", "fake:echo", "--truncate", "left")
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert "--truncate applies to" in line and "provider 'fake'" in line
    coded = invoke("code", "x", "-p", "coder", "--truncate", "error")
    assert coded.exit_code == 2 and "--truncate applies to" in coded.stderr
    source = tmp_path / "prompts.txt"
    source.write_text("a\n", encoding="utf-8")
    args = ["batch", str(source), "-o", str(tmp_path / "out.jsonl"), "--truncate", "left"]
    assert "--truncate applies to" in invoke(*args).stderr
    bad = invoke("generate", "x", "-m", "fake:echo", "--truncate", "middle")
    assert bad.exit_code == 2 and "'middle'" in bad.stderr


@pytest.mark.slow
def test_truncate_left_makes_a_long_prompt_fit(invoke: Invoke) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    prompt = "word " * 600  # muse-tiny attends to 512 tokens
    args = ["generate", prompt, "-m", "local:muse-tiny", "--max-tokens", "2", "--no-stream"]
    too_long = invoke(*args)
    assert too_long.exit_code == 2
    line = _one_error_line(too_long.stderr)
    assert "exceeds the model's context length of 512 tokens" in line
    assert "--truncate left" in line  # the hint names what a command-line user can do
    fitted = invoke(*args, "--truncate", "left")
    assert fitted.exit_code == 0, fitted.stderr
    assert fitted.stdout.strip()


def test_token_counts_are_pluralised(invoke: Invoke, muse_toml: Path) -> None:
    result = invoke("generate", "hello", "-p", "tiny", "--max-tokens", "1")
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert "prompt (1 token) + max_tokens (1)" in line and "context length of 1 token:" in line


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def test_schema_prints_the_validated_json(invoke: Invoke, tmp_path: Path) -> None:
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps(SCHEMA))
    reply = '{"name": "李雷", "age": 12}'
    result = invoke("generate", reply, "-m", "fake:echo", "--schema", str(schema))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "李雷", "age": 12}
    whole = invoke("generate", reply, "-m", "fake:echo", "--schema", str(schema), "--json")
    assert json.loads(whole.stdout)["choices"][0]["parsed"] == {"name": "李雷", "age": 12}


def test_a_reply_that_does_not_validate_exits_1_with_the_errors(
    invoke: Invoke, tmp_path: Path
) -> None:
    schema = tmp_path / "person.json"
    schema.write_text(json.dumps(SCHEMA))
    result = invoke("generate", '{"name": "Ann"}', "-m", "fake:echo", "--schema", str(schema))
    assert result.exit_code == 1
    assert "'age' is a required property" in result.stderr
    assert "Traceback" not in result.stderr


def test_regex_and_choice_options(invoke: Invoke) -> None:
    dated = invoke("generate", "2026-12-05", "-m", "fake:echo", "--regex", r"\d{4}-\d{2}-\d{2}")
    assert dated.exit_code == 0 and dated.stdout == "2026-12-05\n"
    chosen = invoke("generate", "no", "-m", "fake:echo", "--choice", "yes", "--choice", "no")
    assert chosen.exit_code == 0 and chosen.stdout == "no\n"


@pytest.mark.parametrize(
    ("content", "message"), [(None, "cannot read the schema file"), ("{not json", "is not JSON")]
)
def test_a_bad_schema_file_is_a_usage_error(
    invoke: Invoke, tmp_path: Path, content: str | None, message: str
) -> None:
    schema = tmp_path / "schema.json"
    if content is not None:
        schema.write_text(content)
    result = invoke("generate", "x", "-m", "fake:echo", "--schema", str(schema))
    assert result.exit_code == 2
    assert message in result.stderr
