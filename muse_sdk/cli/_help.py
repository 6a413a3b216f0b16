"""Help that reads right: a flag is shown as a flag, with no value placeholder after it."""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand, TyperGroup

__all__ = ["MuseCommand", "PlainFlagsGroup", "plain_flags"]


def plain_flags(params: list[Any]) -> list[Any]:
    """Blank the type column of flags: typer shows ``--debug <bool>``, as if it took a value."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class MuseCommand(TyperCommand):
    """A command whose help shows flags as plain flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters, help option included, with flags shown without a value."""
        return plain_flags(super().get_params(ctx))


class PlainFlagsGroup(TyperGroup):
    """A group whose help shows flags as plain flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters, help option included, with flags shown without a value."""
        return plain_flags(super().get_params(ctx))
