"""``CodeResult``: code extracted from a reply, with the checks made on it."""

from __future__ import annotations

import ast
import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CodeResult", "check_syntax"]


class CodeResult(BaseModel):
    """Code extracted from a model's reply.

    ``code`` is the selected code, ``blocks`` every fenced block as ``(language, code)`` (language
    ``None`` when untagged), ``truncated`` whether the reply ended inside an open fence, and
    ``syntax_error`` the ``SyntaxError`` message with its line number (Python only, else ``None``).
    ``raw`` is what was parsed: the reply text or the :class:`GenerationResult`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    code: str
    language: str | None = None
    blocks: tuple[tuple[str | None, str], ...] = ()
    truncated: bool = False
    syntax_error: str | None = None
    #: How many repair prompts ``CodeGenerationTemplate.run`` sent before this result.
    repairs: int = Field(default=0, ge=0)
    raw: Any = Field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when the code is complete and (for Python) parses."""
        return not self.truncated and self.syntax_error is None

    def __str__(self) -> str:
        return self.code


def check_syntax(code: str, language: str | None) -> str | None:
    """Return the ``SyntaxError`` message with its line number for Python code, else ``None``."""
    if language != "python":
        return None
    try:
        # The model's code may hold invalid escapes: their warnings are noise for the caller.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except SyntaxError as exc:
        return f"{exc.msg} (line {exc.lineno})"
    except (ValueError, RecursionError) as exc:
        # Null bytes (ValueError on 3.11) or absurd nesting: no line number to give.
        return f"{type(exc).__name__}: {exc}"
    return None
