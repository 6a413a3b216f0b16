"""Templates from files: one template per text file, or several named ones in a TOML file.

A TOML file holds one table per template::

    [poem]
    template = "写一首关于{topic}的诗"
    description = "A short poem"        # optional
    strict = true                       # optional (default true)
    metadata = { author = "muse" }      # optional, free-form
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from muse_sdk.errors import TemplateError, did_you_mean
from muse_sdk.templates._prompt import PromptTemplate
from muse_sdk.templates._values import normalize_newlines

__all__ = ["load_templates", "read_text"]

_KEYS = ("template", "description", "strict", "metadata")


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 file (a BOM is dropped; CRLF and lone CR become LF)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError as exc:
        raise TemplateError(
            f"template file {str(file)!r} not found: check the path (relative to {os.getcwd()})"
        ) from exc
    except OSError as exc:
        raise TemplateError(f"cannot read template file {str(file)!r}: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TemplateError(
            f"template file {str(file)!r} is not valid UTF-8 (byte {exc.start}): save it as UTF-8"
        ) from exc
    return normalize_newlines(text)


def _expect(value: object, kind: type, what: str, where: str) -> None:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise TemplateError(
            f"{where}: {what} must be a {kind.__name__}, got {type(value).__name__}"
        )


def _template_from(name: str, table: object, source: str) -> PromptTemplate:
    where = f"{source}, template {name!r}"
    if not isinstance(table, dict):
        raise TemplateError(
            f"{source}: top-level key {name!r} is not a table; write each template as "
            f'[{name}] with template = "..."'
        )
    for key in table:
        if key not in _KEYS:
            raise TemplateError(
                f"{where}: unknown key {key!r}{did_you_mean(key, _KEYS)}; allowed keys: "
                f"{', '.join(_KEYS)} (put free-form data in metadata = {{...}})"
            )
    if "template" not in table:
        raise TemplateError(f"{where}: missing key 'template'; add template = \"...\"")
    text, description = table["template"], table.get("description", "")
    strict, metadata = table.get("strict", True), table.get("metadata", {})
    _expect(text, str, "'template'", where)
    _expect(description, str, "'description'", where)
    _expect(strict, bool, "'strict'", where)
    _expect(metadata, dict, "'metadata'", where)
    try:
        return PromptTemplate(
            normalize_newlines(text),
            strict=strict,
            name=name,
            description=description,
            metadata=metadata,
        )
    except TemplateError as exc:
        exc.add_note(f"in {where}")
        raise


def load_templates(path: str | os.PathLike[str]) -> dict[str, PromptTemplate]:
    """Load every template of a TOML file, keyed by table name (see the module docstring)."""
    source = str(path)
    try:
        document: dict[str, Any] = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"template file {source!r} is not valid TOML: {exc}") from exc
    if not document:
        raise TemplateError(
            f'template file {source!r} holds no templates; add [name] tables with template = "..."'
        )
    return {name: _template_from(name, table, source) for name, table in document.items()}
