"""``muse batch`` files: prompts in (``.txt`` or ``.jsonl``), one JSON line per result out.

The output file is append-only while a run goes on, so an interrupted run loses nothing; at the
end it is rewritten with exactly one line per prompt, in input order. A rerun skips every prompt
whose line (matched by ``index`` and ``prompt``) holds no ``error``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from muse_sdk.cli._errors import UsageError

if TYPE_CHECKING:
    from muse_sdk.core.batch import BatchItem

__all__ = ["Item", "compact", "make_record", "read_items", "read_previous", "write_record"]

JSONL_SUFFIXES = (".jsonl", ".ndjson")
_KEYS = ("prompt", "id")


@dataclass(frozen=True, slots=True)
class Item:
    """One prompt of the input: its position, the prompt (text or messages), an optional id."""

    index: int
    prompt: str | list[Any]
    id: Any = None


def read_items(path: Path) -> list[Item]:
    """Read ``.jsonl`` (a JSON string or ``{"prompt": ..., "id": ...}`` per line) or text.

    In a text file every non-blank line is one prompt.
    """
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if path.suffix.lower() not in JSONL_SUFFIXES:
        prompts = [line for line in lines if line.strip()]
        return [Item(index, prompt) for index, prompt in enumerate(prompts)]
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    return [_json_item(index, path, n, line) for index, (n, line) in enumerate(numbered)]


def _json_item(index: int, path: Path, number: int, line: str) -> Item:
    where = f"{path}, line {number}"
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc.msg})") from exc
    if isinstance(value, str):
        return Item(index, value)
    if not isinstance(value, dict) or "prompt" not in value:
        raise UsageError(
            f'{where}: expected a JSON string or an object {{"prompt": ..., "id": ...}}'
        )
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        from muse_sdk.errors import did_you_mean

        raise UsageError(
            f"{where}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], _KEYS)}; "
            "a line holds 'prompt' (text or a list of chat messages) and an optional 'id'"
        )
    if not isinstance(value["prompt"], str | list):
        raise UsageError(f"{where}: 'prompt' must be text or a list of chat messages")
    return Item(index, value["prompt"], value.get("id"))


def make_record(item: Item, outcome: BatchItem, model: str) -> dict[str, Any]:
    """The output line of one prompt: its result, or its error."""
    from muse_sdk.core.types import GenerationResult

    record: dict[str, Any] = {"index": item.index, "prompt": item.prompt}
    if item.id is not None:
        record["id"] = item.id
    if isinstance(outcome, GenerationResult):
        usage = outcome.usage
        record.update(
            text=outcome.text,
            choices=outcome.texts,
            finish_reason=outcome.finish_reason,
            usage={
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            model=f"{outcome.provider}:{outcome.model}",
            latency_s=round(outcome.latency_s, 4),
            attempts=outcome.attempts,
            error=None,
        )
        return record
    record.update(
        text=None,
        choices=[],
        finish_reason=None,
        usage=None,
        model=model,
        latency_s=None,
        attempts=None,
        error={"type": type(outcome).__name__, "message": str(outcome)},
    )
    return record


def write_record(stream: TextIO, record: dict[str, Any]) -> None:
    """Append one line and flush it, so that an interrupted run keeps it."""
    stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    stream.flush()


def read_previous(path: Path, items: list[Item]) -> dict[int, dict[str, Any]]:
    """The lines of an earlier run, by index: a success wins over failures, else the latest.

    A line for another input (an index out of range or a different prompt) stops the run, so
    that a result is never matched with the wrong prompt. A half-written last line is dropped.
    """
    if not path.exists():
        return {}
    found: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        record = _parse(line)
        if record is None:
            continue
        index = record["index"]
        if index >= len(items) or record.get("prompt") != items[index].prompt:
            raise UsageError(
                f"{path}, line {number}: holds a result for another input (index {index} has a "
                "different prompt); choose another --output file or delete this one"
            )
        if found.get(index, {}).get("error", True) is not None:
            found[index] = record
    return found


def _parse(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None  # an interrupted write: that prompt simply runs again
    ok = isinstance(record, dict) and isinstance(record.get("index"), int)
    return record if ok and record["index"] >= 0 else None


def compact(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Rewrite ``path`` atomically with one line per prompt, in input order."""
    ordered = sorted(records, key=lambda record: int(record["index"]))
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as stream:
        for record in ordered:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(temporary, path)
