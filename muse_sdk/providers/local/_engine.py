"""In-flight (continuous) batching: every call on a loaded model feeds one decode loop.

One :class:`Engine` per loaded model owns it from a background thread. Callers, from any thread
or event loop, :meth:`Engine.submit` a :class:`Job` and read its events from a channel. Each
step of the loop, under the model's lock:

1. drop the rows whose call was cancelled or ran past its deadline (their slots come free);
2. admit waiting rows, first come first served, while slots are free: prefill the prompt into
   a slot (the other choices of an ``n > 1`` call copy that slot) and pick each first token;
3. run ONE ``decode`` over every active row, each at its own position, and pick each row's
   next token with its own sampling parameters;
4. feed every token to its row's text logic (EOS, stop strings, ``max_tokens``); finished rows
   leave at once, and the step's events (text, progress, the end) go out, one wake-up per
   event loop.

A call that arrives while others run gets its first token from its prefill, in the next step;
it never waits for the batch to drain. See ``docs/engine.md``.
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from muse_sdk.errors import BackendUnavailableError
from muse_sdk.providers.local._constraint import failure_of
from muse_sdk.providers.local._decode import TokenText
from muse_sdk.providers.local._sampling import (
    Job,
    RowSampling,
    SeenTokens,
    job_for,
    pick,
    process,
    row_rng,
)
from muse_sdk.providers.local._tickets import Choices, Seq, Ticket, grammar_mask, length_groups
from muse_sdk.providers.local._timeouts import (
    STARTED,
    STEP,
    AnyChannel,
    AsyncChannel,
    Channel,
    Event,
    deliver,
)

__all__ = ["AsyncChannel", "BatchModel", "Channel", "Engine", "Job", "Ticket", "job_for"]

#: Prompt tokens prefilled per step at most (one call always gets in): a burst of long prompts
#: then delays the running rows' next token by a bounded amount, not by every prefill at once.
PREFILL_TOKENS_PER_STEP = 4096


class BatchModel(Protocol):
    """What the engine needs of a model: a slotted KV cache, prefill, batched decode."""

    context_length: int
    vocab_size: int
    device: Any
    slots: int

    def allocate(self, slots: int, length: int | None = None) -> None: ...
    def prefill_many(self, slots: Sequence[int], prompts: Sequence[Any]) -> Any: ...
    def decode(self, slots: Any, tokens: Any, positions: Any) -> Any: ...
    def copy_slot(self, src: int, dst: int, length: int) -> None: ...


class Engine:
    """The decode loop of one model; thread-safe :meth:`submit`, one background thread."""

    def __init__(
        self,
        model: BatchModel,
        token_text: TokenText,
        eos_ids: frozenset[int],
        *,
        max_batch: int,
        lock: threading.Lock | None = None,
        name: str = "model",
    ) -> None:
        self.model = model
        self.max_batch = max_batch
        self._token_text = token_text
        self._eos = eos_ids
        self._lock = lock if lock is not None else threading.Lock()
        self._name = name
        self._cond = threading.Condition()
        self._incoming: list[Ticket] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        # Owned by the engine thread:
        self._queue: deque[Ticket] = deque()  # calls with choices not admitted yet, FIFO
        self._active: list[Seq] = []
        self._free: list[int] = []
        self._seen: SeenTokens | None = None
        self._outbox: list[tuple[AnyChannel, Event]] = []
        self._touched: dict[int, Ticket] = {}  # calls that got a token this step
        #: Steps run so far (each admits and/or decodes once).
        self.steps = 0

    # --- the callers' side ---------------------------------------------------------------------

    def submit(self, job: Job, channel: AnyChannel) -> Ticket:
        """Queue ``job``; its events arrive on ``channel`` and end with ``None`` (or an error)."""
        sink = None
        if job.stream:

            def sink(index: int, text: str) -> None:  # runs on the engine thread
                self._outbox.append((channel, (index, text)))

        grammar = job.grammar
        constraints = [grammar.start() for _ in range(job.n)] if grammar is not None else None
        choices = Choices(
            job.n, self._token_text, self._eos, job.stops, sink, constraints=constraints
        )
        ticket = Ticket(job, channel, choices)
        with self._cond:
            if self._closed:
                raise BackendUnavailableError(f"{self._name} was closed, which freed its model")
            ticket.submitted_step = self.steps
            self._incoming.append(ticket)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"muse-engine-{self._name}", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return ticket

    def close(self, wait_s: float = 10.0) -> None:
        """Stop the loop; calls still queued or running get ``BackendUnavailableError``.

        Waits (up to ``wait_s``) for the step under way to end: a thread still inside torch
        when the interpreter exits aborts the process.
        """
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait_s)

    def counts(self) -> dict[str, int]:
        """Rows running, calls waiting, free slots (a snapshot, for tests and diagnostics)."""
        with self._cond:
            return {
                "active": len(self._active),
                "queued": len(self._queue) + len(self._incoming),
                "free": len(self._free),
                "slots": self.model.slots,
                "outbox": len(self._outbox),
            }

    # --- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._incoming or self._queue or self._active or self._closed):
                    self._cond.wait()
                if self._closed:
                    break
                self._queue.extend(self._incoming)
                self._incoming.clear()
            try:
                with self._lock:
                    self._step()
            except BaseException as exc:  # the model failed: every running call gets the error
                running = [seq.ticket for seq in self._active]
                # No cache (allocation failed): the waiting calls cannot run either.
                self._fail(exc, running if self.model.slots else [*running, *self._queue])
                self._touched = {}
            self._flush()
        closed = BackendUnavailableError(f"{self._name} was closed, which freed its model")
        with self._cond:
            self._queue.extend(self._incoming)
            self._incoming.clear()
        self._fail(closed, [*self._queue, *(seq.ticket for seq in self._active)])
        self._flush()

    def _step(self) -> None:
        if self.model.slots == 0:  # the cache is made on first use: loading stays quick
            self.model.allocate(self.max_batch)
            self._free = list(range(self.model.slots))  # a heap: lowest slot first
            self._seen = SeenTokens(self.model.slots, self.model.vocab_size, self.model.device)
        self._drop_gone()
        planned = self._plan()
        if planned:
            self._flush()  # their callers switch from "waiting for the model" to the read limit
            admitted = self._prefill(planned)
            if admitted:
                # Rows in slot order, slots lowest first: the model reads runs of neighbouring
                # slots as one view (see LeanGPT2.decode), so a compact sorted batch is fastest.
                self._active.sort(key=lambda seq: seq.slot)
                logits = torch.stack([seq.ticket._first_logits for seq in admitted])
                for seq in admitted:
                    if seq.ticket._waiting == 0:
                        seq.ticket._first_logits = None  # every choice is in: free them
                self._choose(admitted, logits)
                self._flush()  # first tokens out now, not after the batch's decode
        if self._active:
            active = self._active
            slots = torch.tensor([seq.slot for seq in active], dtype=torch.long)
            tokens = torch.tensor([seq.token for seq in active], dtype=torch.long)
            positions = torch.tensor([seq.position for seq in active], dtype=torch.long)
            logits = self.model.decode(slots, tokens, positions)
            for seq in active:
                seq.position += 1
            self._choose(active, logits)
        self.steps += 1
        touched, self._touched = self._touched, {}  # holds no call past its step
        for ticket in touched.values():
            if ticket.job.steps:
                self._outbox.append((ticket.channel, STEP))

    def _drop_gone(self) -> None:
        """Free the slots of rows nobody waits for any more (cancelled, past the deadline)."""
        keep = []
        for seq in self._active:
            if seq.ticket._gone:
                heapq.heappush(self._free, seq.slot)
                seq.ticket._live.clear()
            else:
                keep.append(seq)
        self._active = keep
        for ticket in [t for t in self._queue if t._gone]:
            self._queue.remove(ticket)

    def _plan(self) -> list[tuple[Ticket, int, int]]:
        """Give free slots to waiting choices in arrival order: (call, choice, slot)."""
        planned: list[tuple[Ticket, int, int]] = []
        budget = PREFILL_TOKENS_PER_STEP
        prefilling: set[int] = set()
        while self._queue and self._free:
            ticket = self._queue[0]
            job = ticket.job
            if not ticket._live and id(ticket) not in prefilling:
                if planned and len(job.prompt) > budget:
                    break  # the next step prefills it
                budget -= len(job.prompt)
                prefilling.add(id(ticket))
            planned.append((ticket, job.n - ticket._waiting, heapq.heappop(self._free)))
            ticket._waiting -= 1
            if ticket._waiting == 0:
                self._queue.popleft()
            if ticket.admitted_step < 0:
                ticket.admitted_step = self.steps
                self._outbox.append((ticket.channel, STARTED))
        return planned

    def _prefill(self, planned: list[tuple[Ticket, int, int]]) -> list[Seq]:
        """Fill each planned slot: new prompts prefilled together, siblings copied from them."""
        self._prefill_new(planned)
        admitted: list[Seq] = []
        seen = self._seen
        assert seen is not None
        for ticket, index, slot in planned:
            job = ticket.job
            if ticket._gone:  # cancelled, or its prefill failed
                heapq.heappush(self._free, slot)
                continue
            if ticket._live:
                try:
                    self.model.copy_slot(ticket._live[0].slot, slot, len(job.prompt))
                except Exception as exc:  # out of memory?: fail this call only
                    heapq.heappush(self._free, slot)
                    self._fail(exc, [ticket])
                    continue
            sampling = RowSampling(job.sampling, job.prompt, row_rng(job.seed, index))
            seq = Seq(ticket, index, slot, len(job.prompt), -1, sampling)
            if job.sampling.repetition_penalty != 1.0:
                seen.start(slot, job.prompt)
            ticket._live.append(seq)
            self._active.append(seq)
            admitted.append(seq)
        return [seq for seq in admitted if not seq.ticket._ended]

    def _prefill_new(self, planned: list[tuple[Ticket, int, int]]) -> None:
        """Prefill the prompt of each call starting this step, in as few passes as pad well.

        One pass for many prompts costs far less than one each (16 short prompts: a third of
        the time on CPU). A pass that fails is retried prompt by prompt, so that a bad prompt
        fails its own call only.
        """
        first: dict[int, tuple[Ticket, int]] = {}
        for ticket, _, slot in planned:
            if not ticket._gone and not ticket._live and id(ticket) not in first:
                first[id(ticket)] = (ticket, slot)
        for group in length_groups(list(first.values())):
            try:
                self._prefill_group(group)
            except Exception as exc:
                if len(group) == 1:
                    self._fail(exc, [group[0][0]])
                    continue
                for one in group:
                    try:
                        self._prefill_group([one])
                    except Exception as single:
                        self._fail(single, [one[0]])

    def _prefill_group(self, group: list[tuple[Ticket, int]]) -> None:
        prompts = [torch.tensor(list(t.job.prompt), dtype=torch.long) for t, _ in group]
        logits = self.model.prefill_many([slot for _, slot in group], prompts)
        for (ticket, _), row in zip(group, logits, strict=True):
            ticket._first_logits = row

    def _choose(self, seqs: list[Seq], logits: Any) -> None:
        """Pick each row's next token, feed it to the row's text, retire finished rows."""
        limit = self.model.context_length
        legal = grammar_mask(seqs, limit)
        if legal is not None:
            seqs, logits, legal = self._drop_broken(seqs, logits, legal)
            if not seqs:
                return
        rows = [seq.sampling for seq in seqs]
        seen = self._seen
        assert seen is not None
        device = seen.mask.device
        slots = torch.tensor([seq.slot for seq in seqs], dtype=torch.long, device=device)
        penalised = any(row.params.repetition_penalty != 1.0 for row in rows)
        scores = process(
            logits,
            rows,
            seen.mask[slots] if penalised else None,
            None if legal is None else torch.from_numpy(legal).to(device),
        )
        tokens = pick(scores, rows)
        if penalised:
            seen.add(slots, torch.tensor(tokens, dtype=torch.long, device=device))
        finished: list[Seq] = []
        broken: dict[int, tuple[Ticket, Exception]] = {}
        for seq, token in zip(seqs, tokens, strict=True):
            ticket = seq.ticket
            self._touched[id(ticket)] = ticket
            seq.sampling.add(token)
            seq.token = token
            if ticket.first_token_step < 0:
                ticket.first_token_step = self.steps
            choices = ticket.choices
            if choices.feed(seq.index, token):
                failure = failure_of(seq.ticket.rows[seq.index].constraint)
                if failure is not None:  # the grammar engine gave up on the token: no reply
                    broken[id(ticket)] = (ticket, failure)
                finished.append(seq)
            elif len(choices.rows[seq.index].token_ids) >= ticket.job.max_new or (
                seq.position + 1 >= limit  # no position left for the next token
            ):
                choices.end(seq.index)
                finished.append(seq)
        finished = [seq for seq in finished if id(seq.ticket) not in broken]
        if finished:
            self._retire(finished)
        for ticket, failure in broken.values():
            self._fail(failure, [ticket])

    def _drop_broken(self, seqs: list[Seq], logits: Any, legal: Any) -> tuple[list[Seq], Any, Any]:
        """Fail the calls whose grammar the engine gave up on (a limit hit); keep the others."""
        broken: dict[int, tuple[Ticket, Exception]] = {}
        for seq in seqs:
            failure = failure_of(seq.ticket.rows[seq.index].constraint)
            if failure is not None:
                broken[id(seq.ticket)] = (seq.ticket, failure)
        if not broken:
            return seqs, logits, legal
        for ticket, exc in broken.values():
            self._fail(exc, [ticket])
        keep = [i for i, seq in enumerate(seqs) if id(seq.ticket) not in broken]
        return [seqs[i] for i in keep], logits[keep], legal[keep]

    def _retire(self, finished: list[Seq]) -> None:
        done = {id(seq) for seq in finished}
        self._active = [seq for seq in self._active if id(seq) not in done]
        for seq in finished:
            heapq.heappush(self._free, seq.slot)
            ticket = seq.ticket
            ticket._live.remove(seq)
            if not ticket._live and ticket._waiting == 0:
                self._outbox.append((ticket.channel, None))  # the call is complete

    def _fail(self, exc: BaseException, tickets: Sequence[Ticket]) -> None:
        """End calls with ``exc``: their rows leave, their slots come free."""
        failed = {id(t): t for t in tickets}
        for seq in self._active:
            if id(seq.ticket) in failed:
                heapq.heappush(self._free, seq.slot)
        self._active = [seq for seq in self._active if id(seq.ticket) not in failed]
        for ticket in failed.values():
            if ticket in self._queue:
                self._queue.remove(ticket)
            ticket._live.clear()
            ticket._first_logits = None
            ticket._ended = True
            self._outbox.append((ticket.channel, exc))

    def _flush(self) -> None:
        """Deliver the step's events; a call whose event loop is closed is cancelled."""
        outbox, self._outbox = self._outbox, []
        for channel in deliver(outbox):
            for ticket in [*self._queue, *(seq.ticket for seq in self._active)]:
                if ticket.channel is channel:
                    ticket.cancel()
