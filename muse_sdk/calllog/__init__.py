"""An opt-in log of every call, in SQLite under the user's data directory.

Turn it on with ``log = true`` in muse.toml or ``MUSE_LOG=1`` (:func:`log_enabled`); read it with
``muse logs``. Each call is one :class:`CallRecord`: prompt, reply, parameters, model, usage, cost,
latency, attempts, error and time. Keys are never recorded: every text is redacted before it is
written (see :class:`CallLog`).

The file is ``$MUSE_LOG_PATH``, else ``$XDG_DATA_HOME/muse/logs.db`` (``~/.local/share/muse``;
``%LOCALAPPDATA%/muse`` on Windows). Its schema is versioned and migrated when opened.

Importing this package does not import :mod:`sqlite3`: that waits for :class:`CallLog`.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from muse_sdk.errors import InvalidConfigError, MuseError

if TYPE_CHECKING:
    from muse_sdk.calllog._store import CallLog

__all__ = [
    "ENV_LOG",
    "ENV_LOG_PATH",
    "CallLog",
    "CallLogError",
    "CallRecord",
    "CostRow",
    "default_log_path",
    "log_enabled",
    "new_call_id",
]

#: ``1``, ``true``, ``yes`` or ``on`` turns the log on, ``0``, ``false``, ``no`` or ``off`` off;
#: either wins over the config's ``log``.
ENV_LOG = "MUSE_LOG"
#: Where the log is kept, instead of the user's data directory.
ENV_LOG_PATH = "MUSE_LOG_PATH"
_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"0", "false", "no", "off"})


class CallLogError(MuseError):
    """The call log cannot be opened or read: not a muse log, damaged, or from a newer muse."""


@dataclass(frozen=True)
class CallRecord:
    """One logged call.

    ``prompt`` is the prompt text, or the JSON of the chat messages; ``reply`` the first choice's
    text (``None`` when the call failed, and then ``error`` is ``"ErrorType: message"``).
    ``started_at`` is Unix time; ``cost`` is USD, ``None`` when the model's price is unknown.
    """

    id: str
    started_at: float
    provider: str
    model: str
    profile: str | None = None
    prompt: str = ""
    reply: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    latency_s: float = 0.0
    attempts: int = 1
    error: str | None = None
    cached: bool = False
    stream: bool = False
    finish_reason: str | None = None

    @property
    def spec(self) -> str:
        """``provider:model``."""
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class CostRow:
    """The calls of one model on one day (UTC), and what they cost.

    ``cost`` sums the calls whose cost is known; ``unpriced`` counts the others (a model with no
    price), so a partial total is never mistaken for a whole one. ``cost`` is ``None`` only when
    no call of the row has a known cost.
    """

    day: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    unpriced: int = 0


def new_call_id() -> str:
    """A fresh, unique id for a :class:`CallRecord`."""
    return uuid.uuid4().hex


def default_log_path(env: Mapping[str, str] | None = None) -> Path:
    """``$MUSE_LOG_PATH``, else ``logs.db`` in the user's data directory under ``muse``."""
    env = os.environ if env is None else env
    if env.get(ENV_LOG_PATH):
        return Path(env[ENV_LOG_PATH]).expanduser()
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        base = Path(env["LOCALAPPDATA"])
    else:
        base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "muse" / "logs.db"


def log_enabled(setting: bool | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Whether calls are logged: ``$MUSE_LOG`` if set, else ``setting`` (config), else off."""
    env = os.environ if env is None else env
    value = env.get(ENV_LOG, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    if value:
        raise InvalidConfigError(
            f"{ENV_LOG}={env[ENV_LOG]!r} is not understood: set it to 1 (log every call) "
            "or 0 (log nothing), or unset it"
        )
    return bool(setting)


def __getattr__(name: str) -> Any:
    if name == "CallLog":  # imported on use: it brings sqlite3
        from muse_sdk.calllog._store import CallLog

        return CallLog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
