"""Checking replies against a call's :class:`Structure`, and asking again when they fail.

Every provider's reply goes through :func:`finish`: native tool calls are validated against
their tools, a text reply that is a tool call (local and fake models answer in JSON) becomes
one, and the text of the rest is parsed into ``choice.parsed``. Nothing half-valid gets through.
"""

from __future__ import annotations

import json
from typing import Any

from muse_sdk.core.types import Choice, GenerationResult, Message, Prompt, ToolCall
from muse_sdk.errors import StructuredOutputError
from muse_sdk.structured._spec import fingerprint
from muse_sdk.structured._structure import Structure

__all__ = ["finish", "instruction", "repair_prompt", "with_instruction"]


def finish(result: GenerationResult, structure: Structure) -> GenerationResult:
    """``result`` with every choice validated: ``parsed`` and ``tool_calls`` filled in."""
    choices = tuple(_finish_choice(choice, structure) for choice in result.choices)
    return result.model_copy(update={"choices": choices})


def _finish_choice(choice: Choice, structure: Structure) -> Choice:
    calls = choice.tool_calls or (
        _text_tool_calls(choice, structure) if structure.calls_tools else ()
    )
    if calls:
        checked = tuple(_checked_call(call, structure) for call in calls)
        reason = "tool_calls" if choice.finish_reason in (None, "stop") else choice.finish_reason
        return choice.model_copy(update={"tool_calls": checked, "finish_reason": reason})
    if structure.must_call:
        cut = choice.finish_reason == "length"
        raise StructuredOutputError(
            "the reply was cut by max_tokens before its tool call was complete; raise max_tokens"
            if cut
            else f"a tool call was required (tool_choice={structure.tool_choice!r}) but the "
            "model answered in text",
            text=choice.text,
            errors=["cut by max_tokens" if cut else "no tool call"],
            finish_reason=choice.finish_reason,
        )
    if structure.output is None:
        return choice
    parsed = structure.output.parse(choice.text, choice.finish_reason)
    return choice.model_copy(update={"parsed": parsed})


def _checked_call(call: ToolCall, structure: Structure) -> ToolCall:
    tool = structure.tool(call.name)
    if tool is None:
        names = [tool.name for tool in structure.tools]
        raise StructuredOutputError(
            f"the model called {call.name!r}, which is not one of the tools offered: {names}",
            text=json.dumps({"name": call.name}),
            errors=[f"unknown tool {call.name!r}"],
            finish_reason="tool_calls",
        )
    return tool.validate(call)


def _text_tool_calls(choice: Choice, structure: Structure) -> tuple[ToolCall, ...]:
    """The tool calls a text reply makes; none when the text is an answer instead.

    A call is ``{"name", "arguments"}``; a list of them and ``{"tool_calls": [...]}`` work too.
    """
    try:
        value: Any = json.loads(choice.text)
    except ValueError:
        return ()
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        value = value["tool_calls"]
    entries = value if isinstance(value, list) else [value]
    calls = []
    for number, entry in enumerate(entries):
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)):
            return ()
        if structure.tool(entry["name"]) is None and not structure.must_call:
            return ()  # JSON that happens to have a "name": an answer, not a call
        arguments: Any = entry.get("arguments", entry.get("parameters", {}))
        call_id = "call_" + fingerprint(choice.index, number, entry)[:24]
        # Unchecked here: finish() validates the arguments against the tool.
        call = ToolCall.model_construct(id=call_id, name=entry["name"], arguments=arguments)
        calls.append(call)
    return tuple(calls)


def instruction(structure: Structure) -> str:
    """What to tell a model that cannot be constrained, so that its reply can validate."""
    parts = []
    if structure.calls_tools:
        tools = json.dumps([tool.openai_dict()["function"] for tool in structure.tools])
        must = (
            "You must call one of them."
            if structure.must_call
            else ("Call one if it helps; otherwise answer normally.")
        )
        parts.append(
            f"You can call these tools: {tools}\n{must} To call a tool, reply with only a JSON "
            'object: {"name": <tool name>, "arguments": {<arguments>}}.'
        )
    output = structure.output
    if output is not None and not structure.must_call:
        if output.kind == "json":
            schema = json.dumps(output.json_schema, separators=(",", ":"))
            parts.append(
                f"Reply with only a JSON value that is valid under this JSON Schema, "
                f"with no other text: {schema}"
            )
        elif output.kind == "regex":
            parts.append(
                f"Reply with only text that fully matches the regular expression "
                f"{output.pattern}, with no other text."
            )
        else:
            parts.append(
                f"Reply with exactly one of these, and nothing else: "
                f"{json.dumps(list(output.options))}"
            )
    return "\n\n".join(parts)


def with_instruction(prompt: Prompt, structure: Structure) -> Prompt:
    """``prompt`` with :func:`instruction` added: a system message, or a text preamble."""
    text = instruction(structure)
    if not text:
        return prompt
    if isinstance(prompt, str):
        return f"{text}\n\n{prompt}"
    return (Message(role="system", content=text), *prompt)


def repair_prompt(prompt: Prompt, error: StructuredOutputError) -> Prompt:
    """``prompt`` asked again, with the invalid reply and why it failed."""
    problems = "\n".join(f"- {line}" for line in error.errors[:10])
    note = (
        f"That reply was not valid:\n{problems}\nReply again, correcting these errors, "
        "with only the corrected reply."
    )
    if isinstance(prompt, str):
        return f"{prompt}\n\nA previous reply was:\n{error.text}\n\n{note}\n"
    return (
        *prompt,
        Message(role="assistant", content=error.text),
        Message(role="user", content=note),
    )
