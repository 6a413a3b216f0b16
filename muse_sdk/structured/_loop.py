"""``run_tools``: call the model, run the tools it asks for, feed back results, until it answers."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from muse_sdk.core.types import (
    GenerationResult,
    Message,
    PromptInput,
    ToolCall,
    Usage,
    normalize_prompt,
)
from muse_sdk.errors import InvalidParameterError, InvalidPromptError
from muse_sdk.structured._tools import Tool, as_tools

if TYPE_CHECKING:
    from muse_sdk.core.generator import Generator

__all__ = ["ToolRun", "arun_tools", "run_tools"]

logger = logging.getLogger("muse_sdk.tools")


@dataclass(frozen=True)
class ToolRun:
    """The outcome of :func:`run_tools`: the final reply and the whole conversation."""

    #: The model's last reply: its answer (no tool calls left).
    result: GenerationResult
    #: Every message: the ones passed in, each assistant turn and each tool result.
    messages: tuple[Message, ...]
    #: How many times the model was called.
    turns: int
    #: Every turn's reply, in order (the last one is ``result``).
    replies: tuple[GenerationResult, ...] = ()

    @property
    def text(self) -> str:
        """The final answer's text."""
        return self.result.text

    @property
    def total_usage(self) -> Usage:
        """Every billed request of every turn."""
        return sum((reply.total_usage for reply in self.replies), Usage())

    @property
    def cost(self) -> float | None:
        """What every turn cost in USD; ``None`` when a model's price is unknown."""
        costs = [reply.cost for reply in self.replies]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)


def run_tools(
    gen: Generator,
    messages: PromptInput,
    /,
    *,
    tools: Sequence[Any],
    max_turns: int = 5,
    tool_choice: Any = None,
    **params: Any,
) -> ToolRun:
    """Let the model call ``tools`` until it answers; the result holds the whole conversation.

    At most ``max_turns`` calls may use tools, then one with ``tool_choice="none"`` asks for the
    answer. ``tool_choice`` applies to the first turn.

    A tool that raises does not stop the loop: the model gets the error as the tool's result.
    """
    offered, transcript = _start(messages, tools, max_turns)
    replies: list[GenerationResult] = []
    for turn in range(max_turns + 1):
        choice = _turn_choice(turn, max_turns, tool_choice)
        result = gen.generate(transcript, tools=offered, tool_choice=choice, **params)
        replies.append(result)
        transcript.append(_assistant(result))
        if not result.tool_calls:
            break
        for call in result.tool_calls:
            transcript.append(_tool_message(call, _call(_tool(offered, call), call)))
    return ToolRun(result, tuple(transcript), len(replies), tuple(replies))


async def arun_tools(
    gen: Generator,
    messages: PromptInput,
    /,
    *,
    tools: Sequence[Any],
    max_turns: int = 5,
    tool_choice: Any = None,
    **params: Any,
) -> ToolRun:
    """Async twin of :func:`run_tools`; async tool functions are awaited."""
    offered, transcript = _start(messages, tools, max_turns)
    replies: list[GenerationResult] = []
    for turn in range(max_turns + 1):
        choice = _turn_choice(turn, max_turns, tool_choice)
        result = await gen.agenerate(transcript, tools=offered, tool_choice=choice, **params)
        replies.append(result)
        transcript.append(_assistant(result))
        if not result.tool_calls:
            break
        for call in result.tool_calls:
            output = await _acall(_tool(offered, call), call)
            transcript.append(_tool_message(call, output))
    return ToolRun(result, tuple(transcript), len(replies), tuple(replies))


def _start(
    messages: PromptInput, tools: Sequence[Any], max_turns: int
) -> tuple[tuple[Tool, ...], list[Message]]:
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
        raise InvalidParameterError("max_turns", f"must be an integer >= 1, got {max_turns!r}")
    offered = as_tools(tools)
    if not offered:
        raise InvalidParameterError("tools", "run_tools needs at least one tool")
    for tool in offered:
        if tool.function is None:
            raise InvalidParameterError(
                "tools", f"tool {tool.name!r} has no Python function for run_tools to call"
            )
    prompt = normalize_prompt(messages)
    if isinstance(prompt, str):
        raise InvalidPromptError("run_tools needs chat messages, e.g. [{'role': 'user', ...}]")
    return offered, list(prompt)


def _turn_choice(turn: int, max_turns: int, first: Any) -> Any:
    if turn == max_turns:
        return "none"  # out of turns: ask for an answer
    return first if turn == 0 and first is not None else "auto"


def _assistant(result: GenerationResult) -> Message:
    return Message(role="assistant", content=result.text, tool_calls=result.tool_calls)


def _tool(offered: tuple[Tool, ...], call: ToolCall) -> Tool:
    return next(tool for tool in offered if tool.name == call.name)  # finish() checked the name


def _tool_message(call: ToolCall, output: str) -> Message:
    return Message(role="tool", content=output, tool_call_id=call.id, name=call.name)


def _call(tool: Tool, call: ToolCall) -> str:
    try:
        value = tool(call)
        if inspect.isawaitable(value):
            value = asyncio.run(_awaited(value))
    except Exception as exc:
        return _failed(tool, exc)
    return _as_text(value)


async def _acall(tool: Tool, call: ToolCall) -> str:
    try:
        value = tool(call)
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        return _failed(tool, exc)
    return _as_text(value)


async def _awaited(value: Any) -> Any:
    return await value


def _failed(tool: Tool, exc: Exception) -> str:
    logger.info("tool %s raised %s: %s", tool.name, type(exc).__name__, exc)
    return f"Error: the tool raised {type(exc).__name__}: {exc}"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "model_dump_json"):
        return str(value.model_dump_json())
    return json.dumps(value, default=str, ensure_ascii=False)
