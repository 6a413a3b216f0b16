"""``muse code``: only the extracted code goes out; failed checks exit 4."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Invoke


def test_writes_only_the_code_to_stdout(invoke: Invoke, muse_toml: Path) -> None:
    result = invoke("code", "一个能够识别猫和狗的图像分类器", "--language", "python", "-p", "coder")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "print('cats and dogs')\n"


def test_writes_the_code_to_a_file(invoke: Invoke, muse_toml: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.py"
    result = invoke("code", "cats vs dogs", "-o", str(out), "-p", "coder", "-v")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert out.read_text(encoding="utf-8") == "print('cats and dogs')\n"
    assert f"wrote {out}" in result.stderr and "python code, 1 line(s)" in result.stderr


def test_zh_locale_and_sections_shape_the_prompt(invoke: Invoke) -> None:
    # fake:echo replies with the prompt itself: no code in it, but -v shows it on stderr.
    args = ["code", "一个能够识别猫和狗的图像分类器", "--locale", "zh", "-m", "fake:echo", "-v"]
    result = invoke(*args, "--section", "数据集加载和预处理", "--section", "模型定义和训练")
    assert "需求:一个能够识别猫和狗的图像分类器" in result.stderr
    assert "代码应该包括以下内容:\n1. 数据集加载和预处理\n2. 模型定义和训练" in result.stderr
    assert result.exit_code == 4 and result.stdout == ""


def test_syntax_error_exits_4_but_keeps_the_file(
    invoke: Invoke, muse_toml: Path, tmp_path: Path
) -> None:
    out = tmp_path / "broken.py"
    result = invoke("code", "classifier", "-o", str(out), "-p", "broken")
    assert result.exit_code == 4
    assert out.read_text(encoding="utf-8").startswith("def classify(:")
    assert "does not parse: invalid syntax (line 1)" in result.stderr
    assert f"written to {out} anyway" in result.stderr


def test_truncated_reply_exits_4(invoke: Invoke, muse_toml: Path) -> None:
    result = invoke("code", "print the cwd", "-p", "cut")
    assert result.exit_code == 4
    assert result.stdout == "import os\nprint(os.getcwd())\n"
    assert "is truncated" in result.stderr and "--max-tokens" in result.stderr


def test_an_empty_code_block_writes_nothing(
    invoke: Invoke, muse_toml: Path, tmp_path: Path
) -> None:
    out = tmp_path / "none.py"
    result = invoke("code", "anything", "-o", str(out), "-p", "empty")
    assert result.exit_code == 4
    assert not out.exists() and "holds an empty code block" in result.stderr


def test_a_reply_without_code_writes_nothing_and_exits_4(
    invoke: Invoke, muse_toml: Path, tmp_path: Path
) -> None:
    out = tmp_path / "none.py"
    result = invoke("code", "anything", "-o", str(out), "-p", "prose")
    assert result.exit_code == 4, result.stderr
    assert not out.exists() and result.stdout == ""
    assert "holds no code block" in result.stderr and "-v shows the reply" in result.stderr
    shown = invoke("code", "anything", "-p", "prose", "-v")
    assert shown.exit_code == 4 and shown.stdout == ""
    assert "fenced blocks: none" in shown.stderr
    assert "reply: I would rather not write that code." in shown.stderr


COMPLETION = """
[profiles.completion]
provider = "completion"
model = "script"
responses = ["print('primed')\\n```"]
"""


def test_a_completion_model_gets_a_primed_prompt(
    invoke: Invoke, muse_toml: Path, unloadable: str
) -> None:
    with muse_toml.open("a", encoding="utf-8") as config:
        config.write(COMPLETION)
    # The prompt ends inside an opened fence, so the model's reply is the code itself.
    result = invoke("code", "print a word", "-p", "completion")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "print('primed')\n"
    unprimed = invoke("code", "print a word", "-p", "completion", "--no-primed")
    assert unprimed.exit_code == 4 and unprimed.stdout == ""
    # A chat model is not primed by default (its reply would be read wrongly), but can be.
    primed = invoke("code", "print a word", "-m", "fake:echo", "--primed", "-v")
    assert "fenced blocks: python" in primed.stderr


def test_unknown_language_is_a_usage_error_before_loading(
    invoke: Invoke, muse_toml: Path, unloadable: str
) -> None:
    result = invoke("code", "x", "--language", "brainfck", "-m", unloadable)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: unknown language 'brainfck'; muse knows ")
    assert "python" in line and "rust" in line and "py3" in line
    typo = invoke("code", "x", "-l", "pyhton", "-m", unloadable)
    assert typo.exit_code == 2 and "(did you mean 'python'?)" in typo.stderr
    alias = invoke("code", "x", "-l", "py", "-p", "coder")  # aliases are languages muse knows
    assert alias.exit_code == 0 and alias.stdout == "print('cats and dogs')\n"


def test_bad_locale_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("code", "x", "--locale", "fr", "-m", "fake:echo")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: locale must be one of en, zh")


def test_unwritable_output_exits_1(invoke: Invoke, muse_toml: Path, tmp_path: Path) -> None:
    result = invoke("code", "x", "-o", str(tmp_path / "no" / "such" / "dir.py"), "-p", "coder")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: No such file or directory")


def test_docs_list_every_language_muse_knows() -> None:
    from muse_sdk.templates._code import DISPLAY_NAMES
    from muse_sdk.templates._extract import LANGUAGE_ALIASES

    cli_md = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    row = next(line for line in cli_md.splitlines() if line.startswith("| `-l, --language`"))
    for name in [*DISPLAY_NAMES, *LANGUAGE_ALIASES]:
        assert f"`{name}`" in row, name


TESTED = """
[profiles.tested]
provider = "fake"
model = "script"
responses = [
  "```python\\ndef add(a, b):\\n    return a - b\\n```",
  "```python\\ndef add(a, b)\\n    return a + b\\n```",
  "```python\\ndef add(a, b):\\n    return a + b\\n```",
]
"""
ADD_TESTS = "from solution import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def _tested(muse_toml: Path, tmp_path: Path) -> Path:
    with muse_toml.open("a", encoding="utf-8") as config:
        config.write(TESTED)
    tests = tmp_path / "test_add.py"
    tests.write_text(ADD_TESTS, encoding="utf-8")
    return tests


def test_candidates_keep_the_one_that_passes(
    invoke: Invoke, muse_toml: Path, tmp_path: Path
) -> None:
    tests, out = _tested(muse_toml, tmp_path), tmp_path / "solution.py"
    result = invoke(
        "code", "add", "-p", "tested", "--test", str(tests), "--candidates", "3", "-o", str(out)
    )
    assert result.exit_code == 0, result.stderr
    assert out.read_text(encoding="utf-8") == "def add(a, b):\n    return a + b\n"
    lines = sorted(line for line in result.stderr.splitlines() if "candidate " in line)
    assert lines == [
        "info: candidate 1/3: failed 1 of 1 test(s)",
        "info: candidate 2/3: does not parse: expected ':' (line 1)",
        "info: candidate 3/3: passed 1 test(s)",
    ]


def test_failing_tests_exit_4_after_the_repairs(
    invoke: Invoke, muse_toml: Path, tmp_path: Path
) -> None:
    tests = _tested(muse_toml, tmp_path)
    result = invoke("code", "add", "-p", "tested", "--test", str(tests))
    assert result.exit_code == 4
    assert result.stdout == "def add(a, b):\n    return a - b\n"  # written anyway
    assert "fails its tests: 1 of 1 tests failed" in result.stderr
    assert "test_add: AssertionError" in result.stderr
    repaired = invoke("code", "add", "-p", "tested", "--test", str(tests), "--repair", "2")
    assert repaired.exit_code == 0, repaired.stderr
    assert "the code (repair 2): passed 1 test(s)" in repaired.stderr


def test_a_test_command_tests_other_languages(
    invoke: Invoke, muse_toml: Path, tmp_path: Path
) -> None:
    with muse_toml.open("a", encoding="utf-8") as config:
        config.write(
            '\n[profiles.shell]\nprovider = "fake"\nmodel = "script"\n'
            'responses = ["```bash\\nadd() { echo $(( $1 + $2 )); }\\n```"]\n'
        )
    tests = tmp_path / "test_add.sh"
    tests.write_text('. ./solution.sh\n[ "$(add 2 3)" = 5 ]\n', encoding="utf-8")
    args = ["code", "add", "-p", "shell", "-l", "bash", "--test", str(tests)]
    result = invoke(*args, "--test-command", "bash test_solution.sh")
    assert result.exit_code == 0, result.stderr
    assert "the code: passed 1 test(s)" in result.stderr
    missing = invoke(*args)
    assert missing.exit_code == 2 and "test_command" in missing.stderr


def test_go_code_is_syntax_checked(invoke: Invoke, muse_toml: Path) -> None:
    with muse_toml.open("a", encoding="utf-8") as config:
        config.write(
            '\n[profiles.gopher]\nprovider = "fake"\nmodel = "script"\n'
            'responses = ["```go\\npackage main\\n\\nfunc main() {\\n\\tx := \\n}\\n```"]\n'
        )
    result = invoke("code", "a go program", "-p", "gopher", "--language", "go")
    assert result.exit_code == 4 and "does not parse" in result.stderr
