"""The call parameters that shape a reply (kept apart so the core can read them for free)."""

__all__ = ["PARAMS"]

#: The call parameters a :class:`~muse_sdk.structured.Structure` is built from.
PARAMS = frozenset({"schema", "regex", "choices", "tools", "tool_choice", "repair_attempts"})
