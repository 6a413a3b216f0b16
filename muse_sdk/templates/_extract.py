r"""Code extraction from a model's reply: the fence rules of docs/templates.md, exactly.

1. A fence opens on a line of 3+ backticks or 3+ tildes indented by at most 3 spaces; the first
   word after the run is the language tag (lowercased, aliases folded, attributes ignored). It
   closes on a line (indented by at most 3 spaces) of the same character, at least as long as the
   opening run, with only whitespace after it. The opening line's indentation is removed from
   each content line.
2. ``\r\n`` and ``\r`` become ``\n``; a block's code has no trailing newline (trailing blank
   lines are dropped) and keeps its inner blank lines.
3. A fence still open at the end of the text runs to the end, and ``truncated`` is set.
4. ``code``: the blocks in the requested language, else the untagged blocks, else the first block,
   joined by one blank line; with no language, every block; with no fence, the whole text,
   stripped.
5. ``primed``: the text starts inside a block of the requested language, closed by the first
   closing fence line of either character.
6. ``syntax``: the :func:`check_code` result for ``code`` in the result's language (Python by
   ``ast``, many others by tree-sitter, the rest "not checked"); ``syntax_error``: its problem
   as ``"message (line N)"``, else ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from muse_sdk.core.types import GenerationResult
from muse_sdk.errors import InputError
from muse_sdk.templates._result import CodeResult
from muse_sdk.templates._syntax import check_code

__all__ = ["LANGUAGE_ALIASES", "extract_code", "has_fence", "normalize_language"]

#: Tags that name the same language as another, more common tag.
LANGUAGE_ALIASES: dict[str, str] = {
    "py": "python",
    "py3": "python",
    "python3": "python",
    "js": "javascript",
    "sh": "bash",
    "shell": "bash",
    "zsh": "bash",
}

MAX_FENCE_INDENT = 3
_OPENING = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")

Block = tuple[str | None, str]


@dataclass(frozen=True, slots=True)
class _Fence:
    char: str
    length: int
    indent: int


def normalize_language(tag: str | None) -> str | None:
    """Lowercase a language tag and fold its aliases (``py3`` -> ``python``); blank -> ``None``."""
    if tag is None:
        return None
    word = tag.strip().lower()
    return LANGUAGE_ALIASES.get(word, word) if word else None


def _opening(line: str) -> tuple[_Fence, str | None] | None:
    match = _OPENING.match(line)
    if match is None:
        return None
    indent, run, rest = match.groups()
    words = rest.split()
    tag = normalize_language(words[0]) if words else None
    return _Fence(run[0], len(run), len(indent)), tag


def _closing_run(line: str) -> tuple[str, int] | None:
    """The fence character and run length of a closing-fence-shaped line, else ``None``."""
    body = line.lstrip(" ")
    if len(line) - len(body) > MAX_FENCE_INDENT or body[:1] not in ("`", "~"):
        return None
    char = body[0]
    run = len(body) - len(body.lstrip(char))
    if run < 3 or body[run:].strip():
        return None
    return char, run


def _closes(fence: _Fence) -> Callable[[str], bool]:
    def check(line: str) -> bool:
        found = _closing_run(line)
        return found is not None and found[0] == fence.char and found[1] >= fence.length

    return check


def _dedent(line: str, indent: int) -> str:
    present = len(line) - len(line.lstrip(" "))
    return line[min(present, indent) :]


def _join_block(lines: list[str]) -> str:
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[:end])


def _collect(
    lines: list[str], start: int, closes: Callable[[str], bool], indent: int
) -> tuple[str, int, bool]:
    """Read a block's content from ``start``: (code, index after the closing line, closed)."""
    for index in range(start, len(lines)):
        if closes(lines[index]):
            body = [_dedent(line, indent) for line in lines[start:index]]
            return _join_block(body), index + 1, True
    body = [_dedent(line, indent) for line in lines[start:]]
    return _join_block(body), len(lines), False


def _scan(text: str, primed_language: str | None, primed: bool) -> tuple[list[Block], bool]:
    """Every fenced block in order, and whether the text ended inside one."""
    lines = text.split("\n")
    blocks: list[Block] = []
    truncated = False
    index = 0
    if primed:
        code, index, closed = _collect(lines, 0, lambda line: _closing_run(line) is not None, 0)
        blocks.append((primed_language, code))
        truncated = not closed
    while index < len(lines):
        opened = _opening(lines[index])
        if opened is None:
            index += 1
            continue
        fence, tag = opened
        code, index, closed = _collect(lines, index + 1, _closes(fence), fence.indent)
        blocks.append((tag, code))
        truncated = truncated or not closed
    return blocks, truncated


def _select(blocks: list[Block], language: str | None) -> str:
    if language is None:
        chosen = [code for _, code in blocks]
    else:
        chosen = (
            [code for tag, code in blocks if tag == language]
            or [code for tag, code in blocks if tag is None]
            or [blocks[0][1]]
        )
    return "\n\n".join(chosen)


def has_fence(text: str | GenerationResult) -> bool:
    """Whether a reply holds a fenced block (rule 1); without one, ``code`` is the whole reply."""
    lines = _reply_text(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return any(_OPENING.match(line) for line in lines)


def _reply_text(reply: object) -> str:
    if isinstance(reply, GenerationResult):
        return reply.text
    if isinstance(reply, str):
        return reply
    raise InputError(
        f"extract_code() takes the reply as str or GenerationResult, got {type(reply).__name__}"
    )


def extract_code(
    text: str | GenerationResult, language: str | None = None, primed: bool = False
) -> CodeResult:
    """Extract the code from a model's reply (``text``) by the rules in this module's docstring.

    ``language`` selects the blocks to keep (aliases such as ``py`` accepted); ``primed=True`` says
    the prompt ended inside an opened fence, so the reply starts inside a block of ``language``.
    """
    wanted = normalize_language(language)
    reply = _reply_text(text).replace("\r\n", "\n").replace("\r", "\n")
    blocks, truncated = _scan(reply, wanted, primed)
    if not blocks:
        blocks = [(None, reply.strip())]
    code = _select(blocks, wanted)
    result_language = wanted if wanted is not None else blocks[0][0]
    syntax = check_code(code, result_language)
    return CodeResult(
        code=code,
        language=result_language,
        blocks=tuple(blocks),
        truncated=truncated,
        syntax_error=None if syntax.problem is None else str(syntax.problem),
        syntax=syntax,
        raw=text,
    )
