"""A griffe extension for the API pages (named in mkdocs.yml; not a page of the site).

Docstrings hold doctests (``>>> ...`` lines and their output) as plain text. Markdown would render
them as a paragraph, and read an output line such as ``['a', 'b']`` after ``>>> [...]`` as a
reference link. This extension fences every doctest as a ``pycon`` code block instead.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """Wrap each run of doctest lines (``>>>`` up to the next blank line) in a code fence."""
    out: list[str] = []
    inside = False
    for line in text.split("\n"):
        stripped = line.strip()
        if not inside and stripped.startswith(">>>"):
            out.append("```pycon")
            inside = True
        elif inside and not stripped:
            out.append("```")
            inside = False
        out.append(line)
    if inside:
        out.append("```")
    return "\n".join(out)


def _inside_fence(text: str) -> bool:
    return "```" in text


class FenceDoctests(griffe.Extension):
    """Fence doctests in every docstring that is not already fenced."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the object's docstring in place."""
        docstring = obj.docstring
        if (
            docstring is not None
            and ">>>" in docstring.value
            and not _inside_fence(docstring.value)
        ):
            docstring.value = fence_doctests(docstring.value)
