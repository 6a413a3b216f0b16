"""The code-extraction contract (docs/templates.md, rules 1-6), one table per rule."""

from __future__ import annotations

import pytest

import muse_sdk as muse
from muse_sdk.errors import InputError
from muse_sdk.templates import CodeResult, extract_code, normalize_language

FENCE = "```"

# (id, reply, language, expected code, expected blocks)
RULE_1 = [
    (
        "english-prose",
        "Here is the code:\n```python\nprint('hi')\n```\nIt prints hi.",
        "python",
        "print('hi')",
        [("python", "print('hi')")],
    ),
    (
        "chinese-prose",
        "下面是实现代码：\n```python\nprint('你好，世界')\n```\n希望对你有帮助！",
        "python",
        "print('你好，世界')",
        [("python", "print('你好，世界')")],
    ),
    (
        "tildes",
        "Code:\n~~~python\nx = 1\n~~~\n",
        "python",
        "x = 1",
        [("python", "x = 1")],
    ),
    (
        "longer-outer-fence-keeps-inner-fences",
        "````markdown\nUse:\n```python\nx = 1\n```\n````\nafter",
        None,
        "Use:\n```python\nx = 1\n```",
        [("markdown", "Use:\n```python\nx = 1\n```")],
    ),
    (
        "shorter-run-is-content",
        "````python\ns = '''\n```\n'''\n````",
        "python",
        "s = '''\n```\n'''",
        [("python", "s = '''\n```\n'''")],
    ),
    (
        "other-character-is-content",
        "```python\nx = 1\n~~~\n```",
        "python",
        "x = 1\n~~~",
        [("python", "x = 1\n~~~")],
    ),
    (
        "closing-run-may-be-longer",
        "```python\nx = 1\n``````\ntext",
        "python",
        "x = 1",
        [("python", "x = 1")],
    ),
    (
        "closing-line-with-text-is-content",
        "```python\nx = 1\n``` not a close\ny = 2\n```",
        "python",
        "x = 1\n``` not a close\ny = 2",
        [("python", "x = 1\n``` not a close\ny = 2")],
    ),
    (
        "opening-line-inside-block-is-content",
        "```\n```python\nx = 1\n```\n",
        None,
        "```python\nx = 1",
        [(None, "```python\nx = 1")],
    ),
    (
        "closing-with-trailing-whitespace",
        "```python\nx = 1\n```   \t\nafter",
        "python",
        "x = 1",
        [("python", "x = 1")],
    ),
    (
        "indented-fences-in-a-list",
        "Steps:\n1. Install:\n   ```bash\n   pip install muse\n   ```\n2. Run:\n   ```python\n"
        "   import muse\n   if muse:\n       print(1)\n   ```\n",
        "python",
        "import muse\nif muse:\n    print(1)",
        [("bash", "pip install muse"), ("python", "import muse\nif muse:\n    print(1)")],
    ),
    (
        "indent-removed-only-where-present",
        "  ```python\nx = 1\n y = 2\n    z = 3\n  ```",
        "python",
        "x = 1\ny = 2\n  z = 3",
        [("python", "x = 1\ny = 2\n  z = 3")],
    ),
    (
        "four-space-indent-is-not-a-fence",
        "Example:\n    ```python\n    x = 1\n    ```\n",
        "python",
        "Example:\n    ```python\n    x = 1\n    ```",
        [(None, "Example:\n    ```python\n    x = 1\n    ```")],
    ),
    (
        "attributes-ignored",
        '```python title="a.py" linenums="1"\nx = 1\n```',
        "python",
        "x = 1",
        [("python", "x = 1")],
    ),
    (
        "space-before-tag",
        "``` Python\nx = 1\n```",
        "python",
        "x = 1",
        [("python", "x = 1")],
    ),
    (
        "empty-block",
        "```python\n```",
        "python",
        "",
        [("python", "")],
    ),
]


@pytest.mark.parametrize(
    ("reply", "language", "code", "blocks"),
    [case[1:] for case in RULE_1],
    ids=[case[0] for case in RULE_1],
)
def test_rule_1_fences(reply, language, code, blocks):
    result = extract_code(reply, language)
    assert result.code == code
    assert list(result.blocks) == blocks
    assert result.truncated is False


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("py", "python"),
        ("py3", "python"),
        ("python3", "python"),
        ("Python", "python"),
        ("PY3", "python"),
        ("python", "python"),
        ("js", "javascript"),
        ("JavaScript", "javascript"),
        ("sh", "bash"),
        ("shell", "bash"),
        ("bash", "bash"),
        ("zsh", "bash"),
        ("rust", "rust"),
        ("C++", "c++"),
        ("typescript", "typescript"),
    ],
)
def test_rule_1_language_tags(tag, expected):
    result = extract_code(f"```{tag}\ncode\n```")
    assert result.blocks == ((expected, "code"),)
    assert normalize_language(tag) == expected


def test_rule_1_requested_language_alias():
    reply = "```bash\nls\n```\n```py\nx = 1\n```"
    assert extract_code(reply, "python3").code == "x = 1"
    assert extract_code(reply, "zsh").code == "ls"


RULE_2 = [
    ("crlf", "```python\r\nx = 1\r\n\r\ny = 2\r\n```\r\n", "x = 1\n\ny = 2"),
    ("lone-cr", "```python\rx = 1\r\ry = 2\r```\r", "x = 1\n\ny = 2"),
    ("mixed", "```python\r\nx = 1\ry = 2\n```", "x = 1\ny = 2"),
    ("inner-blank-lines-kept", "```python\nx = 1\n\n\ny = 2\n```", "x = 1\n\n\ny = 2"),
    ("trailing-blank-lines-dropped", "```python\nx = 1\n\n   \n\n```", "x = 1"),
    ("crlf-in-list", "1. Run:\r\n   ```python\r\n   x = 1\r\n   ```\r\n", "x = 1"),
    ("no-fence-crlf-stripped", "  x = 1\r\ny = 2\r\n\r\n", "x = 1\ny = 2"),
]


@pytest.mark.parametrize(
    ("reply", "code"), [case[1:] for case in RULE_2], ids=[case[0] for case in RULE_2]
)
def test_rule_2_newlines(reply, code):
    result = extract_code(reply, "python")
    assert result.code == code
    assert "\r" not in result.code
    assert not result.code.endswith("\n")


RULE_3 = [
    ("open-at-end", "Sure:\n```python\ndef f():\n    return 1\n", "def f():\n    return 1"),
    ("open-no-newline", "```python\nx = [1,", "x = [1,"),
    ("shorter-close-does-not-close", "````python\nx = 1\n```\ny = 2", "x = 1\n```\ny = 2"),
    ("other-char-does-not-close", "~~~python\nx = 1\n```", "x = 1\n```"),
    ("second-block-open", "```bash\nls\n```\n```python\nx = 1", "x = 1"),
    ("中文-truncated", "代码如下：\n```python\nprint('未完", "print('未完"),
]


@pytest.mark.parametrize(
    ("reply", "code"), [case[1:] for case in RULE_3], ids=[case[0] for case in RULE_3]
)
def test_rule_3_truncation(reply, code):
    result = extract_code(reply, "python")
    assert result.truncated is True
    assert result.code == code


def test_rule_3_closed_reply_is_not_truncated():
    assert extract_code("```python\nx = 1\n```").truncated is False
    assert extract_code("no code at all").truncated is False


MULTI = (
    "Install:\n```bash\npip install x\n```\nThen:\n```python\na = 1\n```\n"
    "```\nraw\n```\n```python\nb = 2\n```\n"
)
RULE_4 = [
    ("matching-blocks-joined", MULTI, "python", "a = 1\n\nb = 2"),
    ("single-match", MULTI, "bash", "pip install x"),
    ("no-match-takes-untagged", MULTI, "rust", "raw"),
    (
        "no-match-no-untagged-takes-first",
        "```bash\nls\n```\n```sql\nselect 1\n```",
        "python",
        "ls",
    ),
    (
        "untagged-joined",
        "```\na\n```\ntext\n```\nb\n```\n```js\nc\n```",
        "python",
        "a\n\nb",
    ),
    ("no-language-joins-all", MULTI, None, "pip install x\n\na = 1\n\nraw\n\nb = 2"),
    ("no-fence-whole-text", "\n  x = 1\n  print(x)  \n", "python", "x = 1\n  print(x)"),
    ("no-fence-no-language", "just prose", None, "just prose"),
    ("inline-backticks-are-not-fences", "Use `x = 1` or ``y``.", "python", "Use `x = 1` or ``y``."),
]


@pytest.mark.parametrize(
    ("reply", "language", "code"),
    [case[1:] for case in RULE_4],
    ids=[case[0] for case in RULE_4],
)
def test_rule_4_selection(reply, language, code):
    assert extract_code(reply, language).code == code


def test_rule_4_blocks_in_order():
    result = extract_code(MULTI, "python")
    assert result.blocks == (
        ("bash", "pip install x"),
        ("python", "a = 1"),
        (None, "raw"),
        ("python", "b = 2"),
    )


def test_rule_4_no_fence_is_one_untagged_block():
    result = extract_code("  print(1)\n", "python")
    assert result.blocks == ((None, "print(1)"),)
    assert result.language == "python"


def test_rule_4_language_of_result():
    assert extract_code(MULTI, "py").language == "python"
    assert extract_code(MULTI).language == "bash"  # no language asked: the first block's
    assert extract_code("```\nx\n```").language is None


RULE_5 = [
    ("closes-at-first-fence", "x = 1\n```\nThis sets x.", "python", "x = 1", False),
    ("tilde-close", "x = 1\n~~~~\nafter", "python", "x = 1", False),
    (
        "later-blocks-parsed",
        "x = 1\n```\nAlso run:\n```bash\nls\n```\n",
        "python",
        "x = 1",
        False,
    ),
    ("truncated", "def f():\n    return", "python", "def f():\n    return", True),
    (
        "fence-with-tag-does-not-close",
        "x = 1\n```python\ny = 2\n```",
        "python",
        "x = 1\n```python\ny = 2",
        False,
    ),
    ("crlf", "x = 1\r\n```\r\n", "python", "x = 1", False),
]


@pytest.mark.parametrize(
    ("reply", "language", "code", "truncated"),
    [case[1:] for case in RULE_5],
    ids=[case[0] for case in RULE_5],
)
def test_rule_5_primed(reply, language, code, truncated):
    result = extract_code(reply, language, primed=True)
    assert result.code == code
    assert result.truncated is truncated
    assert result.blocks[0] == ("python", code)


def test_rule_5_primed_blocks_and_untagged_language():
    result = extract_code("x = 1\n```\n```bash\nls\n```", primed=True)
    assert result.blocks == ((None, "x = 1"), ("bash", "ls"))
    assert extract_code("x = 1\n```\n```bash\nls\n```", "bash", primed=True).code == "x = 1\n\nls"


def test_rule_5_unprimed_reads_differently():
    assert extract_code("x = 1\n```\ncomment", "python").code == "comment"


RULE_6 = [
    ("valid", "```python\ndef f():\n    return 1\n```", "python", None),
    ("invalid", "```python\nx = 1\ndef f(:\n```", "python", "line 2"),
    ("indentation", "```python\ndef f():\nreturn 1\n```", "python", "line 2"),
    ("alias-checked", "```py\nx = (\n```", None, "line 1"),
    ("unchecked-language", "```kotlin\nfun f( {\n```", "kotlin", None),
    ("untagged-without-language", "```\ndef f(:\n```", None, None),
    ("untagged-as-python", "```\ndef f(:\n```", "python", "line 1"),
    ("null-byte", "```python\nx = '\0'\n```", "python", "null bytes"),
]


@pytest.mark.parametrize(
    ("reply", "language", "error"),
    [case[1:] for case in RULE_6],
    ids=[case[0] for case in RULE_6],
)
def test_rule_6_syntax_error(reply, language, error):
    result = extract_code(reply, language)
    if error is None:
        assert result.syntax_error is None
    else:
        assert result.syntax_error is not None
        assert error in result.syntax_error


def test_result_keeps_raw_reply_and_generation_result():
    reply = "```python\nx = 1\n```"
    assert extract_code(reply).raw == reply
    gen = muse.load("fake:script", responses=[reply])
    generated = gen.generate("code please")
    result = extract_code(generated, "python")
    assert result.raw is generated
    assert result.code == "x = 1"
    assert isinstance(result, CodeResult)
    assert str(result) == "x = 1"
    assert result.ok


def test_result_is_frozen():
    result = extract_code("x")
    with pytest.raises(ValueError, match="frozen"):
        result.code = "y"  # type: ignore[misc]


def test_bad_reply_type():
    with pytest.raises(InputError, match="str or GenerationResult"):
        extract_code(b"```python\nx\n```")  # type: ignore[arg-type]
