"""Keeping API keys out of messages and out of the exception chains muse raises.

A muse error's own message is redacted when it is built; but ``raise mapped from exc`` also hands
the caller the backend's exception (``__cause__``), whatever it caused or was caused by, and their
notes: ``traceback.format_exc()`` prints them all. :func:`scrub_chain` redacts that whole chain in
place, and swaps in a stand-in for any exception whose text cannot be rewritten.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable

__all__ = ["MIN_SECRET_LENGTH", "RedactedError", "Redactor", "scrub_chain"]

#: Values shorter than this are not substring-redacted: they are too short to be secrets, and
#: replacing every "e" in a message would garble it (and so reveal the "key" anyway).
MIN_SECRET_LENGTH = 8
# OpenAI masks keys in 401 messages as "sk-abc***xyz"; even the visible ends are not repeated.
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_*\-]{4,}")


class Redactor:
    """Replaces known secrets, and anything shaped like an OpenAI key, with ``***``."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        self._secrets = tuple(sorted(unique, key=len, reverse=True))  # longest first

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._secrets)} secret(s)>"

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _KEY_LIKE.sub("sk-***", text)


class RedactedError(Exception):
    """Stands in a chain for an exception whose text held a secret and could not be rewritten."""

    def __init__(self, original: BaseException, text: str) -> None:
        self.original_type = f"{type(original).__module__}.{type(original).__qualname__}"
        super().__init__(f"{self.original_type}: {text}")


def _rewrite(exc: BaseException, redact: Callable[[str], str]) -> bool:
    """Redact ``exc``'s arguments and text attributes in place; return whether it is clean now."""
    exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)
    for name in ("message", "msg", "body"):
        value = getattr(exc, name, None)
        if isinstance(value, str | dict):
            with contextlib.suppress(AttributeError, TypeError):  # a read-only property
                setattr(exc, name, _redact_json(value, redact))
    notes = getattr(exc, "__notes__", None)
    if notes:
        exc.__notes__ = [redact(note) for note in notes]
    text = f"{exc}{exc!r}"
    return redact(text) == text


def _redact_json(value: object, redact: Callable[[str], str]) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_json(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v, redact) for v in value]
    return value


def _clean(exc: BaseException, redact: Callable[[str], str]) -> BaseException:
    if _rewrite(exc, redact):
        return exc
    stand_in = RedactedError(exc, redact(str(exc)))
    stand_in.__cause__, stand_in.__context__ = exc.__cause__, exc.__context__
    stand_in.__suppress_context__ = exc.__suppress_context__
    stand_in.__traceback__ = exc.__traceback__
    return stand_in


def scrub_chain(error: BaseException, redact: Callable[[str], str]) -> None:
    """Redact ``error``'s notes and every exception reachable through its cause and context."""
    seen = {id(error)}
    notes = getattr(error, "__notes__", None)
    if notes:
        error.__notes__ = [redact(note) for note in notes]
    pending = [error]
    while pending:
        node = pending.pop()
        for attr in ("__cause__", "__context__"):
            linked = getattr(node, attr)
            if linked is None or id(linked) in seen:
                continue
            seen.add(id(linked))
            cleaned = _clean(linked, redact)
            if cleaned is not linked:
                suppress = node.__suppress_context__  # assigning __cause__ would set it
                setattr(node, attr, cleaned)
                node.__suppress_context__ = suppress
            pending.append(cleaned)
