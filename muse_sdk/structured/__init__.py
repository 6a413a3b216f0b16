"""Structured output and tool calls: specs, validation and repair, provider-independent.

Providers read ``request.structure`` (a :class:`Structure`); the core validates every reply
against it (:func:`finish`), so a hosted API, a local model and the fake provider all give the
same typed ``result.parsed`` and ``result.tool_calls``.
"""

from muse_sdk.structured._finish import finish, instruction, repair_prompt, with_instruction
from muse_sdk.structured._loop import ToolRun, arun_tools, run_tools
from muse_sdk.structured._spec import OutputSpec
from muse_sdk.structured._structure import PARAMS, Structure, per_row
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
