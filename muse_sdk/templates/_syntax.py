"""Syntax checks for generated code: Python by ``ast``, other languages by tree-sitter.

:func:`check_code` returns a :class:`SyntaxCheck`: ``"ok"``, ``"error"`` with the first
:class:`SyntaxProblem` (1-based line and column, the column in characters), or ``"not checked"``
with the reason in ``checker``; a language without a checker is never ``"ok"``.

- Python: ``ast.parse`` is the authority (warnings suppressed).
- The languages in :data:`GRAMMARS`: the grammars of ``tree-sitter-language-pack`` (the ``code``
  extra), loaded on first use. The first ERROR or MISSING node in document order is the problem.
  tree-sitter recovers from errors, so the position is where the parser noticed the error, which
  may be a token or two before the mistake.
- SQL with sqlglot in several dialects (:data:`SQL_DIALECTS`); HTML with its grammar after
  :func:`_blank_html_text`. YAML nested past :data:`YAML_MAX_COLUMN` stays unchecked: it crashes
  the yaml grammar.

Blank code is whatever the checker says, and every checker here accepts it (``ast.parse("")``
does): an empty block is the caller's to report.
"""

from __future__ import annotations

import ast
import functools
import re
import warnings
from typing import TYPE_CHECKING, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from tree_sitter import Language, Node

__all__ = ["GRAMMARS", "SQL_DIALECTS", "SyntaxCheck", "SyntaxProblem", "check_code"]

SyntaxStatus = Literal["ok", "error", "not checked"]

#: Language tag -> the tree-sitter grammars to try, in order: the code is ok if one accepts it.
#: (TypeScript replies often hold JSX, which only the ``tsx`` grammar reads.)
GRAMMARS: dict[str, tuple[str, ...]] = {
    "javascript": ("javascript",),
    "jsx": ("javascript",),
    "typescript": ("typescript", "tsx"),
    "ts": ("typescript", "tsx"),
    "tsx": ("tsx",),
    "java": ("java",),
    "go": ("go",),
    "rust": ("rust",),
    "c": ("c",),
    "cpp": ("cpp",),
    "c++": ("cpp",),
    "csharp": ("csharp",),
    "cs": ("csharp",),
    "bash": ("bash",),
    "css": ("css",),
    "json": ("json",),
    "yaml": ("yaml",),
    "yml": ("yaml",),
    "toml": ("toml",),
    "html": ("html",),  # after _blank_html_text
}

#: SQL is checked with sqlglot (tree-sitter's grammar rejects valid T-SQL, PostgreSQL and SQLite):
#: the code is ok if one of these dialects parses it ("" is sqlglot's generic dialect).
SQL_DIALECTS = ("", "postgres", "mysql", "tsql", "sqlite", "bigquery", "snowflake", "oracle")

INSTALL_HINT = "tree-sitter-language-pack is not installed: pip install 'muse-sdk[code]'"
_SNIPPET = 30
#: The yaml grammar's scanner overflows its state buffer (a segfault) past ~253 open block
#: levels. Each level starts further right, so YAML whose blocks start this far is not checked.
YAML_MAX_COLUMN = 120


class SyntaxProblem(BaseModel):
    """Where code stops parsing: a message, and a 1-based line and column (in characters).

    ``str()`` gives ``"message (line N)"``, the form ``CodeResult.syntax_error`` has always had.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: str
    line: int = Field(ge=1)
    column: int = Field(ge=1)

    def __str__(self) -> str:
        return f"{self.message} (line {self.line})"


class SyntaxCheck(BaseModel):
    """The result of :func:`check_code`.

    ``checker`` names what checked (``"python ast"``, ``"tree-sitter rust"``) or, when
    ``status`` is ``"not checked"``, why not. ``problem`` is set exactly when ``status`` is
    ``"error"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: SyntaxStatus
    problem: SyntaxProblem | None = None
    checker: str

    @property
    def checked(self) -> bool:
        """Whether a checker looked at the code."""
        return self.status != "not checked"


def check_code(code: str, language: str | None) -> SyntaxCheck:
    """Check the syntax of ``code`` in ``language`` (a tag as :func:`normalize_language` gives)."""
    tag = language.strip().lower() if language is not None else ""
    if tag == "python":
        return _check_python(code)
    if not tag:
        return SyntaxCheck(status="not checked", checker="no language given")
    if tag == "sql":
        return _check_sql(code)
    if tag not in GRAMMARS:
        return SyntaxCheck(status="not checked", checker=f"no grammar for {tag!r}")
    return _check_tree_sitter(code, tag)


_TOKEN_REPR = re.compile(r"<Token token_type: [\w.]+, text: (.*?), line: \d+.*?>")


def _check_sql(code: str) -> SyntaxCheck:
    """Parse with sqlglot in each of :data:`SQL_DIALECTS`; report the generic dialect's error."""
    try:
        import sqlglot
        from sqlglot.errors import ParseError, TokenError
    except ImportError:
        hint = "sqlglot is not installed: pip install 'muse-sdk[code]'"
        return SyntaxCheck(status="not checked", checker=hint)
    first: Exception | None = None
    for dialect in SQL_DIALECTS:
        try:
            sqlglot.parse(code, read=dialect or None)
        except (ParseError, TokenError) as exc:
            first = first or exc
        else:
            return SyntaxCheck(status="ok", checker="sqlglot")
    return SyntaxCheck(status="error", problem=_sql_problem(first), checker="sqlglot")


def _sql_problem(exc: Exception | None) -> SyntaxProblem:
    details = getattr(exc, "errors", None) or [{}]
    first = details[0]
    message = str(first.get("description") or exc or "invalid SQL").splitlines()[0]
    message = _TOKEN_REPR.sub(lambda m: repr(m.group(1)), message)  # sqlglot's Token repr
    line, column = first.get("line") or 1, first.get("col") or 1
    return SyntaxProblem(message=message, line=max(1, int(line)), column=max(1, int(column)))


def _check_python(code: str) -> SyntaxCheck:
    try:
        # The model's code may hold invalid escapes: their warnings are noise for the caller.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except SyntaxError as exc:
        line, column = exc.lineno, exc.offset
        if line is None:  # null bytes come without a position: find the first one
            line, column = _position(code, code.find("\0"))
        problem = SyntaxProblem(message=exc.msg, line=line, column=max(column or 1, 1))
        return SyntaxCheck(status="error", problem=problem, checker="python ast")
    except (ValueError, RecursionError, MemoryError) as exc:
        # Null bytes (ValueError on some versions) or absurd nesting (the parser's stack
        # overflows into RecursionError or MemoryError): no position given.
        line, column = _position(code, code.find("\0"))
        problem = SyntaxProblem(message=f"{type(exc).__name__}: {exc}", line=line, column=column)
        return SyntaxCheck(status="error", problem=problem, checker="python ast")
    return SyntaxCheck(status="ok", checker="python ast")


def _position(code: str, index: int) -> tuple[int, int]:
    """The 1-based line and column of ``code[index]``; line 1, column 1 for ``index`` -1."""
    if index < 0:
        return 1, 1
    line_start = code.rfind("\n", 0, index) + 1
    return code.count("\n", 0, index) + 1, index - line_start + 1


@functools.cache
def _language(grammar: str) -> Language:
    """The tree-sitter grammar, loaded once; parsers are per call (they are not thread-safe)."""
    from tree_sitter_language_pack import SupportedLanguage, get_language

    return get_language(cast("SupportedLanguage", grammar))


def _check_tree_sitter(code: str, tag: str) -> SyntaxCheck:
    if "yaml" in GRAMMARS[tag] and _yaml_too_deep(code):
        reason = f"YAML nested past column {YAML_MAX_COLUMN} would crash the yaml grammar"
        return SyntaxCheck(status="not checked", checker=reason)
    data = code.encode("utf-8", "surrogatepass")
    if "html" in GRAMMARS[tag]:  # same length: positions still point into ``data``
        source = _blank_html_text(code).encode("utf-8", "surrogatepass")
    else:
        source = data
    # Code blocks lose their last newline, which Go statements and C directives end with.
    source = source if source.endswith(b"\n") else source + b"\n"
    errors: list[SyntaxCheck] = []
    for grammar in GRAMMARS[tag]:
        try:
            language = _language(grammar)
        except ImportError:
            return SyntaxCheck(status="not checked", checker=INSTALL_HINT)
        except (LookupError, ValueError) as exc:  # a grammar missing from, or too new for, the pack
            return SyntaxCheck(status="not checked", checker=f"no grammar for {tag!r}: {exc}")
        check = _parse(language, grammar, source, data)
        if check.status == "ok":
            return check
        errors.append(check)
    return errors[0]


_ENTITY = re.compile(r"&#?\w+;")


def _blank_html_text(code: str) -> str:
    """Blank the bare ``&``, ``<`` and ``>`` of text and comments.

    HTML allows them (``5 > 3``, ``AT&T``) but the tree-sitter grammar rejects them; tags, quoted
    values and entities stay as they are.
    """
    out = list(code)
    i = 0
    while i < len(code):
        if code.startswith("<!--", i):
            end = code.find("-->", i + 4)
            i = len(code) if end < 0 else end + 3
        elif (
            code[i] == "<" and i + 1 < len(code) and (code[i + 1].isalpha() or code[i + 1] in "/!?")
        ):
            i = _tag_end(code, i + 1)
        else:
            if code[i] in "<>" or (code[i] == "&" and not _ENTITY.match(code, i)):
                out[i] = " "
            i += 1
    return "".join(out)


def _tag_end(code: str, i: int) -> int:
    """Index after the ``>`` that closes the tag whose name starts at ``i`` (quotes respected)."""
    quote = ""
    for j in range(i, len(code)):
        char = code[j]
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == ">":
            return j + 1
    return len(code)


def _yaml_too_deep(code: str) -> bool:
    """Whether a line's block structure (indentation, then ``-``, ``?``, ``:``) is too wide."""
    return any(
        len(line) - len(line.lstrip(" \t-?:")) >= YAML_MAX_COLUMN for line in code.split("\n")
    )


def _parse(language: Language, grammar: str, source: bytes, data: bytes) -> SyntaxCheck:
    """Parse ``source``: the code's bytes ``data``, with a newline added where it had none."""
    from tree_sitter import Parser  # installed with the pack, which _language has just loaded

    root = Parser(language).parse(source).root_node
    checker = f"tree-sitter {grammar}"
    if not root.has_error:
        return SyntaxCheck(status="ok", checker=checker)
    problem = _problem(_first_problem(root), data)
    return SyntaxCheck(status="error", problem=problem, checker=checker)


def _first_problem(root: Node) -> Node:
    """The first ERROR or MISSING node in document order, under a root that has an error.

    A node that has an error in no visible child holds a hidden MISSING token: it is returned.
    """
    node = root
    while not (node.is_error or node.is_missing):
        child = next((child for child in node.children if child.has_error), None)
        if child is None:
            return node
        node = child
    return node


def _problem(node: Node, data: bytes) -> SyntaxProblem:
    """The problem at ``node``, placed in ``data`` (never past its end: the added newline)."""
    incomplete = not (node.is_error or node.is_missing) and node.start_byte < node.end_byte
    # A hidden MISSING token's place is unknown: the end of the node that lacks it is nearest.
    byte = min(node.end_byte if incomplete else node.start_byte, len(data))
    line_start = data.rfind(b"\n", 0, byte) + 1
    line = data.count(b"\n", 0, byte) + 1
    column = len(data[line_start:byte].decode("utf-8", "replace")) + 1
    kind = node.type.replace("_", " ") if node.is_named else repr(node.type)
    if incomplete:
        message = f"incomplete {kind}"
    elif node.start_byte == node.end_byte:
        message = f"missing {kind}"
    else:
        text = data[node.start_byte : node.end_byte].decode("utf-8", "replace")
        snippet = text.strip().split("\n", 1)[0].strip()
        if len(snippet) > _SNIPPET:
            snippet = snippet[:_SNIPPET] + "..."
        message = f"syntax error near {snippet!r}" if snippet else "syntax error"
    return SyntaxProblem(message=message, line=line, column=column)
