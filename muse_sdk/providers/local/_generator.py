"""``LocalGenerator``: a GPT-2-family causal LM run in-process.

GPT-2 checkpoints run on the lean model through its shared
:class:`~muse_sdk.providers.local._engine.Engine`: every call, from any thread or event loop,
joins one decode loop (continuous batching), and the async calls await it natively. Other
architectures run ``model.generate`` from transformers, one call at a time, in a worker thread.
Both honour ``request.structure`` with constrained decoding (``_constraint``): every row follows
its own call's grammar, whatever else shares the batch.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import aclosing, closing, nullcontext
from typing import Any, NamedTuple

from muse_sdk.core.generator import Generator, Request
from muse_sdk.core.types import Choice, GenerationParams, GenerationResult, StreamChunk, Usage
from muse_sdk.errors import (
    BackendUnavailableError,
    ContextLengthExceededError,
    UnsupportedParameterError,
)
from muse_sdk.providers.local._constraint import failure_of
from muse_sdk.providers.local._decode import Row, Tracker
from muse_sdk.providers.local._device import resolve_device, resolve_dtype
from muse_sdk.providers.local._hub import check_hub_model
from muse_sdk.providers.local._loading import (
    CacheKey,
    LoadedModel,
    acquire,
    import_torch,
    release,
    resolve_source,
)
from muse_sdk.providers.local._params import (
    SAMPLING_LOCK,
    backend_errors,
    generation_kwargs,
    left_pad,
)
from muse_sdk.providers.local._settings import DEFAULT_MAX_TOKENS, LocalSettings
from muse_sdk.providers.local._structured import chat_text, grammar_for
from muse_sdk.providers.local._timeouts import (
    AsyncChannel,
    AsyncTextEvents,
    Budget,
    Channel,
    TextEvents,
    Watch,
    afollow,
    follow,
)

__all__ = ["LocalGenerator", "generation_kwargs"]


class LocalGenerator(Generator):
    """Runs a GPT-2-family model in-process: a hub id, a local directory, or ``muse-tiny``.

    The model is loaded when the generator is built (errors surface at ``muse.load``), shared
    with every generator of the same (model, device, dtype, backend), and freed by the last
    ``close()``; so is its engine, which batches the calls of all of them together.
    ``timeout.read`` bounds the wait for each token and ``timeout.total`` the whole call, the
    wait for a busy model (all slots taken, or another call's turn) included (see ``_timeouts``).
    """

    provider = "local"
    Settings = LocalSettings
    native_batch = True
    structured = True
    settings: LocalSettings

    def __init__(self, model: str, settings: LocalSettings | None = None, **kwargs: Any) -> None:
        super().__init__(model, settings, **kwargs)
        s = self.settings
        source, is_dir = resolve_source(model)
        if not is_dir:  # before importing torch (seconds): weights that cannot be had fail now
            check_hub_model(source, s.revision)
        self._torch = import_torch()  # transformers too, but only for non-GPT-2 checkpoints
        self.device = resolve_device(self._torch, s.device)
        self.dtype = resolve_dtype(self._torch, s.dtype, self.device)
        self._key: CacheKey = (
            source,
            s.revision,
            str(self.device),
            str(self.dtype),
            s.trust_remote_code,
            s.backend,
        )
        self._loaded: LoadedModel | None = acquire(self._key, self.device, self.dtype, s.max_batch)
        # Runs once: on close(), or when a generator nobody closed is garbage-collected.
        self._release = weakref.finalize(self, release, self._torch, self._key)

    def __repr__(self) -> str:
        return f"<LocalGenerator local:{self.model} on {self.device} ({self.dtype})>"

    # --- the model ---------------------------------------------------------------------------

    def _model(self) -> LoadedModel:
        loaded = self._loaded
        if loaded is None:
            raise BackendUnavailableError(
                f"{self.name} was closed, which freed its model; load a new generator"
            )
        return loaded

    @property
    def context_length(self) -> int:
        """Prompt plus new tokens the model can attend to."""
        return self._model().context_length

    @property
    def hf_model(self) -> Any:
        """The ``transformers`` model; calls made on it directly bypass the lock.

        On the lean path generation does not use it: it is loaded on first access (a second
        copy of the weights), for comparison or for what only transformers offers.
        """
        return self._model().reference(self.device, self.dtype)

    @property
    def engine(self) -> Any:
        """The shared decode loop (an ``Engine``) on the lean path, else ``None``."""
        return self._model().engine

    @property
    def tokenizer(self) -> Any:
        """The tokenizer: the lean one (``tokenizers``) or transformers'."""
        return self._model().tokenizer

    def close(self) -> None:
        """Drop this generator's hold on the shared model; the last holder frees it."""
        self._loaded = None
        self._release()

    # --- prompts -----------------------------------------------------------------------------

    def _check_request(self, request: Request) -> None:
        super()._check_request(request)
        if not isinstance(request.prompt, str) and not self._has_chat_template():
            raise UnsupportedParameterError(
                self.provider,
                "chat messages",
                f"{self.model!r} is a plain text-completion model with no chat template; "
                "pass the prompt as a str (a PromptTemplate renders one)",
            )

    def _has_chat_template(self) -> bool:
        return bool(getattr(self._model().tokenizer, "chat_template", None))

    def _encode(self, loaded: LoadedModel, request: Request, budget: Budget) -> list[int]:
        """Tokenise the prompt and make it fit the context (or raise)."""
        prompt = request.prompt
        tokenizer = loaded.tokenizer
        # transformers' fast tokenizers are not safe to share across threads; the lean one never
        # changes after loading, and the engine holds the lock for every step.
        lock = budget.hold(loaded.lock) if loaded.engine is None else nullcontext()
        with lock:
            if isinstance(prompt, str):
                ids = list(tokenizer(prompt)["input_ids"])
            else:
                text = chat_text(tokenizer, prompt, request)
                ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._fit(ids, request.params.max_tokens or DEFAULT_MAX_TOKENS, loaded)

    def _fit(self, ids: list[int], max_new: int, loaded: LoadedModel) -> list[int]:
        context = loaded.context_length
        if len(ids) + max_new <= context:
            return ids
        if self.settings.truncate == "left" and max_new < context:
            return ids[len(ids) + max_new - context :]
        # With truncate='left' already, max_tokens alone does not fit: no hint to give then.
        hint = "set truncate='left' (in the profile, in muse.load(), or --truncate left)"
        raise ContextLengthExceededError(
            len(ids), max_new, context, hint="" if self.settings.truncate == "left" else hint
        )

    # --- generation --------------------------------------------------------------------------

    def _watched(
        self,
        loaded: LoadedModel,
        prompts: Sequence[list[int]],
        params: GenerationParams,
        budget: Budget,
        stream: bool,
        grammars: Sequence[Any] = (),
    ) -> tuple[Tracker, TextEvents]:
        """Start generating in a worker; iterate the events (streamed text) to wait for it.

        ``grammars[i]`` (if any) constrains the rows of ``prompts[i]``.
        """
        watch = Watch(budget)
        constraints = [
            g.start() if g is not None else None for g in grammars for _ in range(params.n)
        ]
        tracker = Tracker(
            len(prompts) * params.n,
            loaded.token_text,
            loaded.eos_ids,
            params.stop or (),
            watch.text if stream else None,
            on_step=watch.step,
            constraints=constraints,
        )
        work = functools.partial(self._run, loaded, prompts, params, tracker, watch)
        return tracker, watch.run(work, tracker.cancel)

    def _run(
        self,
        loaded: LoadedModel,
        prompts: Sequence[list[int]],
        params: GenerationParams,
        tracker: Tracker,
        watch: Watch,
    ) -> None:
        """One ``model.generate`` pass over every prompt, each repeated ``n`` times."""
        torch = self._torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        rows = [ids for ids in prompts for _ in range(params.n)]
        input_ids, mask = left_pad(torch, rows, loaded.pad_id, self.device)
        kwargs = generation_kwargs(params, loaded)
        if any(row.constraint is not None for row in tracker.rows):
            from muse_sdk.providers.local._constraint import LogitsMasker

            masker = LogitsMasker(tracker, kwargs["max_new_tokens"])
            kwargs["logits_processor"] = LogitsProcessorList([masker])
        budget = watch.budget
        sampling = budget.hold(SAMPLING_LOCK) if kwargs["do_sample"] else nullcontext()
        with sampling, budget.hold(loaded.lock), backend_errors(torch):
            if tracker.cancelled:
                return  # the caller gave up while this call waited for the model
            watch.started()
            if kwargs["do_sample"] and params.seed is not None:
                torch.manual_seed(params.seed)
            with torch.inference_mode():
                loaded.model.generate(
                    input_ids=input_ids,
                    attention_mask=mask,
                    stopping_criteria=StoppingCriteriaList([tracker]),
                    **kwargs,
                )
        for row in tracker.rows:  # the grammar engine gave up on a token: no valid reply
            failure = failure_of(row.constraint)
            if failure is not None:
                raise failure
        tracker.finish()

    def _result(self, rows: Sequence[Row], prompt_tokens: int) -> GenerationResult:
        choices = tuple(
            Choice(index=i, text=row.text, finish_reason=row.finish_reason)
            for i, row in enumerate(rows)
        )
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=sum(len(row.token_ids) for row in rows),
        )
        raw = {"token_ids": [list(row.token_ids) for row in rows]}
        return GenerationResult(
            choices=choices, usage=usage, provider=self.provider, model=self.model, raw=raw
        )

    def _job(self, loaded: LoadedModel, request: Request, prompt: list[int], stream: bool) -> Any:
        """The engine's job for a request: the same parameters as the transformers path."""
        from muse_sdk.providers.local._engine import job_for

        kwargs = generation_kwargs(request.params, loaded)
        return job_for(
            prompt,
            request.params,
            kwargs,
            stream=stream,
            deadline_at=request.deadline_at,
            grammar=grammar_for(loaded, request),
        )

    def _start(
        self, loaded: LoadedModel, request: Request, stream: bool, prompt: list[int] | None = None
    ) -> _Started:
        """Tokenise (unless given) and start one request."""
        budget = Budget.of([request])
        prompt = self._encode(loaded, request, budget) if prompt is None else prompt
        if loaded.engine is None:
            grammars = [grammar_for(loaded, request)]
            tracker, events = self._watched(
                loaded, [prompt], request.params, budget, stream, grammars
            )
            return _Started(lambda: tracker.rows, prompt, events, tracker.cancel)
        channel = Channel()
        ticket = loaded.engine.submit(self._job(loaded, request, prompt, stream), channel)
        events = follow(channel.queue, budget, ticket.cancel)
        return _Started(lambda: ticket.rows, prompt, events, ticket.cancel)

    def _generate(self, request: Request) -> GenerationResult:
        rows, prompt, events, _ = self._start(self._model(), request, stream=False)
        with closing(events), backend_errors(self._torch):
            for _ in events:  # no text events: this waits for the end, within the budget
                pass
        return self._result(rows(), len(prompt))

    def _generate_batch(self, requests: Sequence[Request]) -> list[GenerationResult]:
        """Submit every request to the engine; else run those that share parameters together."""
        requests = [request.started() for request in requests]  # one clock for the unit
        loaded = self._model()
        if loaded.engine is None:
            return self._generate_groups(loaded, requests)
        # Every prompt and grammar is checked before any runs: a bad one fails the unit at no
        # cost (the grammars are cached: starting each call below finds its own compiled).
        prompts = [self._encode(loaded, r, Budget.of([r])) for r in requests]
        for request in requests:
            grammar_for(loaded, request)
        started = [self._start(loaded, r, False, p) for r, p in zip(requests, prompts, strict=True)]
        try:
            for run in started:
                with backend_errors(self._torch):
                    for _ in run.events:
                        pass
        finally:
            for run in started:
                run.cancel()  # after a failure, the others leave the batch too
        return [self._result(run.rows(), len(run.prompt)) for run in started]

    def _generate_groups(
        self, loaded: LoadedModel, requests: Sequence[Request]
    ) -> list[GenerationResult]:
        """The transformers path: one left-padded ``generate`` per group of equal parameters."""
        results: dict[int, GenerationResult] = {}
        groups: dict[GenerationParams, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.params, []).append(index)
        for params, indices in groups.items():
            budget = Budget.of([requests[i] for i in indices])
            prompts = [self._encode(loaded, requests[i], budget) for i in indices]
            grammars = [grammar_for(loaded, requests[i]) for i in indices]
            tracker, events = self._watched(loaded, prompts, params, budget, False, grammars)
            for _ in events:
                pass
            n = params.n
            for k, (index, prompt) in enumerate(zip(indices, prompts, strict=True)):
                results[index] = self._result(tracker.rows[k * n : (k + 1) * n], len(prompt))
        return [results[i] for i in range(len(requests))]

    def _stream(self, request: Request) -> Iterator[StreamChunk]:
        rows, prompt, events, _ = self._start(self._model(), request, stream=True)
        with closing(events), backend_errors(self._torch):  # leaving early frees the row
            for index, text in events:
                yield StreamChunk(text=text, index=index)
        yield from _final_chunks(self._result(rows(), len(prompt)))

    # --- async: awaits the engine's events, no thread blocked per call ----------------------

    def _astart(
        self, loaded: LoadedModel, request: Request, stream: bool
    ) -> tuple[Any, list[int], AsyncTextEvents]:
        budget = Budget.of([request])
        prompt = self._encode(loaded, request, budget)  # the lean tokenizer: no lock, ~µs
        channel = AsyncChannel(asyncio.get_running_loop())
        ticket = loaded.engine.submit(self._job(loaded, request, prompt, stream), channel)
        return ticket, prompt, afollow(channel.queue, budget, ticket.cancel)

    async def _agenerate(self, request: Request) -> GenerationResult:
        loaded = self._model()
        if loaded.engine is None:
            return await super()._agenerate(request)
        ticket, prompt, events = self._astart(loaded, request, stream=False)
        async with aclosing(events):
            with backend_errors(self._torch):
                async for _ in events:
                    pass
        return self._result(ticket.rows, len(prompt))

    async def _astream(self, request: Request) -> AsyncIterator[StreamChunk]:
        loaded = self._model()
        if loaded.engine is None:
            async for chunk in super()._astream(request):
                yield chunk
            return
        ticket, prompt, events = self._astart(loaded, request, stream=True)
        async with aclosing(events):
            with backend_errors(self._torch):
                async for index, text in events:
                    yield StreamChunk(text=text, index=index)
        for chunk in _final_chunks(self._result(ticket.rows, len(prompt))):
            yield chunk


class _Started(NamedTuple):
    """A request under way: its rows (complete once ``events`` ends), prompt, events."""

    rows: Callable[[], list[Row]]
    prompt: list[int]
    events: TextEvents
    cancel: Callable[[], None]


def _final_chunks(result: GenerationResult) -> Iterator[StreamChunk]:
    last = len(result.choices) - 1
    for choice in result.choices:
        yield StreamChunk(
            index=choice.index,
            finish_reason=choice.finish_reason,
            usage=result.usage if choice.index == last else None,
        )
