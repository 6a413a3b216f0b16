"""Structured output and tool calls: specs, validation and repair, provider-independent.

Providers read ``request.structure`` (a :class:`Structure`); the core validates every reply
against it (:func:`finish`), so a hosted API, a local model and the fake provider all give the
same typed ``result.parsed`` and ``result.tool_calls``. Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from muse_sdk.structured._names import PARAMS

if TYPE_CHECKING:
    from muse_sdk.structured._finish import finish, instruction, repair_prompt, with_instruction
    from muse_sdk.structured._loop import ToolRun, arun_tools, run_tools
    from muse_sdk.structured._spec import OutputSpec
    from muse_sdk.structured._structure import Structure, per_row
    from muse_sdk.structured._tools import Tool, as_tool, as_tools

__all__ = [
    "PARAMS",
    "OutputSpec",
    "Structure",
    "Tool",
    "ToolRun",
    "arun_tools",
    "as_tool",
    "as_tools",
    "finish",
    "instruction",
    "per_row",
    "repair_prompt",
    "run_tools",
    "with_instruction",
]

_WHERE = {
    **dict.fromkeys(("finish", "instruction", "repair_prompt", "with_instruction"), "_finish"),
    **dict.fromkeys(("ToolRun", "arun_tools", "run_tools"), "_loop"),
    "OutputSpec": "_spec",
    **dict.fromkeys(("Structure", "per_row"), "_structure"),
    **dict.fromkeys(("Tool", "as_tool", "as_tools"), "_tools"),
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'muse_sdk.structured' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"muse_sdk.structured.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
