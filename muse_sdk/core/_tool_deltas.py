"""Streamed tool calls, reassembled.

OpenAI sends a call's id and name once, then its arguments in pieces; the assembled calls equal
those of the same reply unstreamed.
"""

from __future__ import annotations

from collections.abc import Iterable

from muse_sdk.core.types import ToolCall, ToolCallDelta

__all__ = ["ToolCallParts"]


class ToolCallParts:
    """One choice's tool calls as their deltas arrive."""

    __slots__ = ("_arguments", "_ids", "_names")

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self._arguments: dict[int, list[str]] = {}

    def add(self, deltas: Iterable[ToolCallDelta]) -> None:
        """Fold in a chunk's deltas."""
        for delta in deltas:
            if delta.id:
                self._ids[delta.index] = delta.id
            if delta.name:
                known = self._names.get(delta.index, "")
                # OpenAI sends the name once; some servers repeat it whole in every delta.
                whole = not known or delta.name.startswith(known)
                self._names[delta.index] = delta.name if whole else known + delta.name
            self._arguments.setdefault(delta.index, []).append(delta.arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        """The calls so far, their arguments still JSON text."""
        return tuple(
            ToolCall.model_construct(  # arguments as text: the core validates them
                id=self._ids.get(index, f"call_{index}"),
                name=self._names.get(index, ""),
                arguments="".join(self._arguments.get(index, [])),  # type: ignore[arg-type]
            )
            for index in sorted(self._ids.keys() | self._names.keys() | self._arguments.keys())
        )
