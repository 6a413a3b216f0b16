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
    # fake:echo replies with the prompt itself, so the "code" is the rendered prompt.
    args = ["code", "一个能够识别猫和狗的图像分类器", "--locale", "zh", "-m", "fake:echo"]
    result = invoke(*args, "--section", "数据集加载和预处理", "--section", "模型定义和训练")
    assert "需求:一个能够识别猫和狗的图像分类器" in result.stdout
    assert "代码应该包括以下内容:\n1. 数据集加载和预处理\n2. 模型定义和训练" in result.stdout
    assert result.exit_code == 4  # a Chinese prompt is not valid Python


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


def test_no_code_at_all_writes_nothing(invoke: Invoke, muse_toml: Path, tmp_path: Path) -> None:
    out = tmp_path / "none.py"
    result = invoke("code", "anything", "-o", str(out), "-p", "prose")
    assert result.exit_code == 4
    assert not out.exists() and "holds no code" in result.stderr


def test_bad_locale_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("code", "x", "--locale", "fr", "-m", "fake:echo")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: locale must be one of en, zh")


def test_unwritable_output_exits_1(invoke: Invoke, muse_toml: Path, tmp_path: Path) -> None:
    result = invoke("code", "x", "-o", str(tmp_path / "no" / "such" / "dir.py"), "-p", "coder")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: No such file or directory")
