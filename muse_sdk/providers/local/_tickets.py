"""A call's state inside the engine: its :class:`Ticket`, its rows, and how prompts are grouped."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from muse_sdk.providers.local._decode import Tracker
from muse_sdk.providers.local._sampling import Job, RowSampling
from muse_sdk.providers.local._timeouts import AnyChannel

__all__ = ["PAD_RATIO", "Choices", "Seq", "Ticket", "grammar_mask", "length_groups"]

#: Prompts prefilled in one pass are padded to the longest: at most this much padded work per
#: real token (a 500-token prompt is not batched with ten 5-token ones).
PAD_RATIO = 1.5


class Choices(Tracker):
    """A call's rows, fed one token at a time by the engine instead of by ``generate``."""

    def feed(self, index: int, token: int) -> bool:
        """Add row ``index``'s new token; whether the row is finished (EOS or stop string)."""
        row = self.rows[index]
        self._step(index, row, token)
        return row.finish_reason is not None

    def end(self, index: int) -> None:
        """Row ``index`` ran out of tokens: flush it, finish reason ``"length"``."""
        self._close(index, self.rows[index], "length")


class Ticket:
    """A submitted job: its rows as they grow, and :meth:`cancel` to drop it.

    The underscored fields belong to the engine thread.
    """

    def __init__(self, job: Job, channel: AnyChannel, choices: Choices) -> None:
        self.job = job
        self.channel = channel
        self.choices = choices
        self.cancelled = False
        #: Engine steps at submission, admission and first token (for tests and metrics).
        self.submitted_step = self.admitted_step = self.first_token_step = -1
        self._waiting = job.n  # choices not admitted yet
        self._live: list[Seq] = []  # choices in the batch now
        self._first_logits: Any = None  # the prefill's, until every choice is admitted
        self._ended = False  # failed: nothing more runs

    @property
    def rows(self) -> list[Any]:
        """The call's :class:`~muse_sdk.providers.local._decode.Row` objects, one per choice."""
        return self.choices.rows

    def cancel(self) -> None:
        """Drop the call: its rows leave the batch at the next step (idempotent, any thread)."""
        self.cancelled = True

    @property
    def _gone(self) -> bool:
        """Cancelled, failed or past its deadline: nobody reads its rows any more."""
        deadline = self.job.deadline_at
        return (
            self.cancelled or self._ended or (deadline is not None and time.monotonic() >= deadline)
        )


@dataclass(eq=False, slots=True)
class Seq:
    """One row (a choice) in the batch."""

    ticket: Ticket
    index: int
    slot: int
    position: int  # where ``token`` goes in the slot's cache
    token: int
    sampling: RowSampling


def length_groups(items: list[tuple[Ticket, int]]) -> list[list[tuple[Ticket, int]]]:
    """Prompts grouped by length so that padding to a group's longest stays under PAD_RATIO."""
    ordered = sorted(items, key=lambda item: len(item[0].job.prompt))
    groups: list[list[tuple[Ticket, int]]] = []
    group: list[tuple[Ticket, int]] = []
    real = 0
    for item in ordered:
        length = len(item[0].job.prompt)
        if group and (len(group) + 1) * length > PAD_RATIO * (real + length):
            groups.append(group)
            group, real = [], 0
        group.append(item)
        real += length
    if group:
        groups.append(group)
    return groups


def grammar_mask(seqs: list[Seq], limit: int) -> Any:
    """The rows' grammar mask (numpy ``[B, vocab]``); ``None`` when none is constrained."""
    constraints = [seq.ticket.choices.rows[seq.index].constraint for seq in seqs]
    if all(c is None for c in constraints):
        return None
    from muse_sdk.providers.local._constraint import allowed

    remaining = [
        min(
            seq.ticket.job.max_new - len(seq.ticket.rows[seq.index].token_ids),
            limit - seq.position,
        )
        for seq in seqs
    ]
    return allowed(constraints, remaining)
