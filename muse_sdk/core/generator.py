"""The ``Generator`` contract: one interface, whatever runs the model.

The base class owns everything common: parameter validation, the retry policy, timing, streaming
safety and batching. A provider implements a small protected surface:

- ``_generate(request) -> GenerationResult`` (required)
- ``_stream(request) -> Iterator[StreamChunk]`` (required when ``can_stream``)
- ``_agenerate`` / ``_astream`` where it has a native async path (defaults run the sync ones in a
  worker thread)
- ``_generate_batch(requests)`` where it can run many prompts in one pass (``native_batch = True``)

A call's ``schema``/``regex``/``choices``/``tools`` become ``request.structure``. A provider that
sets ``structured = True`` honours it itself (constrained decoding, a native API); for any other
the prompt gets an instruction instead. Either way the base class validates every reply
(:func:`muse_sdk.structured.finish`) and re-asks up to ``repair_attempts`` times.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import ValidationError

from muse_sdk.core import _running
from muse_sdk.core.batch import BatchResult, OnResult, run_batch, run_batch_async
from muse_sdk.core.features import Features
from muse_sdk.core.settings import CallOptions, ProviderSettings
from muse_sdk.core.streaming import AsyncStream, Stream
from muse_sdk.core.types import (
    GenerationParams,
    GenerationResult,
    Prompt,
    PromptInput,
    StreamChunk,
    normalize_prompt,
    params_error,
)
from muse_sdk.errors import (
    UnsupportedParameterError,
    did_you_mean,
)
from muse_sdk.retry import RetryPolicy
from muse_sdk.structured._names import PARAMS

if TYPE_CHECKING:
    from muse_sdk.structured import Structure

__all__ = ["Generator", "Request"]

NO_FEATURES = Features()


@dataclass(frozen=True, slots=True)
class Request:
    """One validated call: the prompt, the common parameters and the provider's own options."""

    prompt: Prompt
    params: GenerationParams
    options: CallOptions
    #: When the call's ``timeout.total`` runs out, on the ``time.monotonic()`` clock; stamped
    #: when the call starts, so retries, fallbacks and a stream's whole life share one budget.
    deadline_at: float | None = None
    #: What the reply must be beside text: a schema, regex or choices, and tools.
    structure: Structure | None = None
    #: The call's ``cache=``: ``None`` for the generator's own, ``False`` for none, or a cache.
    cache: Any = None

    @property
    def deadline_s(self) -> float | None:
        """Seconds left of the call's total budget (retries and fallbacks included), if any."""
        if self.deadline_at is not None:
            return self.deadline_at - time.monotonic()
        timeout = self.params.timeout
        return timeout.total if timeout is not None else None

    def started(self) -> Request:
        """The request with its deadline stamped from now (unchanged if already stamped)."""
        timeout = self.params.timeout
        if self.deadline_at is not None or timeout is None or timeout.total is None:
            return self
        return dataclasses.replace(self, deadline_at=time.monotonic() + timeout.total)


class Generator:
    """Base class of every provider; see the module docstring for what a provider implements."""

    #: The provider's registry name (``"openai"``, ``"local"``, ...).
    provider: ClassVar[str] = ""
    #: Profile-level settings this provider accepts.
    Settings: ClassVar[type[ProviderSettings]] = ProviderSettings
    #: Per-call options this provider accepts beside the common parameters.
    Options: ClassVar[type[CallOptions]] = CallOptions
    #: Common parameters this provider cannot honour (they raise ``UnsupportedParameterError``).
    unsupported_params: ClassVar[frozenset[str]] = frozenset()
    #: Whether ``_generate_batch`` runs several prompts in one pass.
    native_batch: ClassVar[bool] = False
    #: Whether the provider honours ``request.structure`` itself (else: a prompt instruction).
    structured: ClassVar[bool] = False
    #: Whether hooks, spans, the cache and the log see this generator's calls (a fallback
    #: chain leaves them to its members, so that one call is not reported twice).
    observed: ClassVar[bool] = True

    def __init__(
        self,
        model: str,
        settings: ProviderSettings | None = None,
        *,
        defaults: GenerationParams | None = None,
        retry: RetryPolicy | None = None,
        name: str | None = None,
        features: Features | None = None,
    ) -> None:
        self.model = model
        self.settings = settings if settings is not None else self.Settings()
        self.defaults = defaults if defaults is not None else GenerationParams()
        self.retry = retry if retry is not None else RetryPolicy()
        self.name = name or f"{self.provider}:{model}"
        #: Hooks, tracing, cache, rate limits and the call log (all off by default).
        self.features = features if features is not None else NO_FEATURES

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.provider}:{self.model}>"

    # --- the provider's surface ------------------------------------------------------------

    def _generate(self, request: Request) -> GenerationResult:
        raise NotImplementedError(f"{type(self).__name__} must implement _generate()")

    def _stream(self, request: Request) -> Iterator[StreamChunk]:
        raise UnsupportedParameterError(self.provider, "stream", "this provider cannot stream")

    async def _agenerate(self, request: Request) -> GenerationResult:
        return await asyncio.to_thread(self._generate, request)

    async def _astream(self, request: Request) -> AsyncIterator[StreamChunk]:
        iterator = self._stream(request)
        done = object()
        try:
            while (chunk := await asyncio.to_thread(next, iterator, done)) is not done:
                assert isinstance(chunk, StreamChunk)
                yield chunk
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _generate_batch(self, requests: Sequence[Request]) -> list[GenerationResult]:
        return [self._generate(request) for request in requests]

    def _check_request(self, request: Request) -> None:
        """Raise ``UnsupportedParameterError`` for anything this provider cannot honour."""
        explicit = request.params.explicit()
        for name in sorted(self.unsupported_params & explicit.keys()):
            raise UnsupportedParameterError(self.provider, name)

    @property
    def batch_size(self) -> int:
        """How many prompts one ``_generate_batch`` pass takes."""
        return int(getattr(self.settings, "batch_size", 8))

    # --- validation ------------------------------------------------------------------------

    def make_request(self, prompt: PromptInput, params: dict[str, Any]) -> Request:
        """Validate a prompt and keyword parameters into a :class:`Request`."""
        shaping, params = _shaping(params)
        cache = shaping.pop("cache", None)
        structure = _structure(shaping) if shaping else None
        request = self._request_for(
            normalize_prompt(prompt), *self._split_params(params), structure
        )
        return request if cache is None else dataclasses.replace(request, cache=_call_cache(cache))

    def _split_params(self, params: dict[str, Any]) -> tuple[GenerationParams, CallOptions]:
        common = {k: v for k, v in params.items() if k in GenerationParams.model_fields}
        own = {k: v for k, v in params.items() if k in self.Options.model_fields}
        unknown = params.keys() - common.keys() - own.keys()
        if unknown:
            name = sorted(unknown)[0]
            known = [*GenerationParams.model_fields, *self.Options.model_fields]
            raise UnsupportedParameterError(
                self.provider,
                name,
                f"unknown parameter{did_you_mean(name, known)}; accepted: {', '.join(known)}",
            )
        merged = GenerationParams.build(self.defaults, **common) if common else self.defaults
        return merged, self._options(own)

    def _options(self, own: dict[str, Any]) -> CallOptions:
        if not own:  # the common case: no provider-only options, and the model is immutable
            return _default_options(self.Options)
        try:
            return self.Options.model_validate(own)
        except ValidationError as exc:
            raise params_error(exc) from exc

    def _request_for(
        self,
        prompt: Prompt,
        params: GenerationParams,
        options: CallOptions,
        structure: Structure | None = None,
    ) -> Request:
        request = Request(self._prompt_for(prompt, structure), params, options, None, structure)
        self._check_request(request)
        return request

    def _prompt_for(self, prompt: Prompt, structure: Structure | None) -> Prompt:
        """The prompt this provider gets: with an instruction when it cannot be constrained."""
        if structure is None or self.structured:
            return prompt
        from muse_sdk.structured import with_instruction

        return with_instruction(prompt, structure)

    def rebase(self, request: Request, options: Mapping[str, Any] | None = None) -> Request:
        """Another generator's ``request`` for this one: its parameters over these defaults.

        ``options`` are this provider's own options, validated here. The deadline is kept, so
        the members of a fallback chain share one total budget, and so is the call's ``cache=``.
        """
        given = request.params.model_dump(exclude_unset=True)
        params = GenerationParams.build(self.defaults, **given) if given else self.defaults
        own = self._options(dict(options or {}))
        rebased = self._request_for(request.prompt, params, own, request.structure)
        return dataclasses.replace(rebased, deadline_at=request.deadline_at, cache=request.cache)

    # --- public API ------------------------------------------------------------------------

    def generate(self, prompt: PromptInput, /, **params: Any) -> GenerationResult:
        """Generate a completion for ``prompt`` (text or chat messages)."""
        return self.run(self.make_request(prompt, params))

    def run(self, request: Request) -> GenerationResult:
        """Run an already validated request: retries, timing, repairs and features."""
        return _running.run(self, request)

    async def agenerate(self, prompt: PromptInput, /, **params: Any) -> GenerationResult:
        """Async twin of :meth:`generate`."""
        return await self.arun(self.make_request(prompt, params))

    async def arun(self, request: Request) -> GenerationResult:
        """Async twin of :meth:`run`."""
        return await _running.arun(self, request)

    def stream(self, prompt: PromptInput, /, **params: Any) -> Stream:
        """Stream the reply: iterate the :class:`Stream` for chunks, then read ``.result``.

        The last chunk carries finish reason and usage; ``.result`` is the whole
        :class:`GenerationResult` once the stream has ended. A stream that fails before its
        first chunk is retried; one that fails later raises
        :class:`~muse_sdk.errors.StreamInterruptedError` with the text already yielded.
        """
        return self.run_stream(self.make_request(prompt, params))

    def run_stream(self, request: Request) -> Stream:
        """Stream an already validated request (the streaming twin of :meth:`run`)."""
        request = request.started()
        opener, watch = _running.stream_parts(self, request, is_async=False)
        return Stream(
            opener or functools.partial(self._stream, request),
            self.retry,
            request.deadline_s,
            provider=self.provider,
            model=self.model,
            n=request.params.n,
            watch=watch,
        )

    def astream(self, prompt: PromptInput, /, **params: Any) -> AsyncStream:
        """Async twin of :meth:`stream`: ``async for`` the :class:`AsyncStream`."""
        return self.arun_stream(self.make_request(prompt, params))

    def arun_stream(self, request: Request) -> AsyncStream:
        """Async twin of :meth:`run_stream`."""
        request = request.started()
        opener, watch = _running.stream_parts(self, request, is_async=True)
        return AsyncStream(
            opener or functools.partial(self._astream, request),
            self.retry,
            request.deadline_s,
            provider=self.provider,
            model=self.model,
            n=request.params.n,
            watch=watch,
        )

    def batch(
        self,
        prompts: Sequence[PromptInput],
        /,
        *,
        max_concurrency: int = 8,
        progress: bool = False,
        on_result: OnResult | None = None,
        **params: Any,
    ) -> BatchResult:
        """Generate for every prompt with bounded concurrency, keeping input order.

        One failing item never loses the others: the returned :class:`BatchResult` holds a
        result or an exception per item (``.raise_for_errors()`` turns failures into one error).
        ``on_result(index, item)`` is called in the caller's thread as each item finishes, so
        results can be saved as they arrive.
        """
        shaping, params = _shaping(params)
        common, own = self._split_params(params)
        return run_batch(
            self, prompts, (common, own, shaping), max_concurrency, progress, on_result
        )

    async def abatch(
        self,
        prompts: Sequence[PromptInput],
        /,
        *,
        max_concurrency: int = 8,
        progress: bool = False,
        on_result: OnResult | None = None,
        **params: Any,
    ) -> BatchResult:
        """Async twin of :meth:`batch`; ``on_result`` runs on the event loop."""
        shaping, params = _shaping(params)
        common, own = self._split_params(params)
        return await run_batch_async(
            self, prompts, (common, own, shaping), max_concurrency, progress, on_result
        )

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Release clients, connections or model memory held by this generator."""

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@functools.cache
def _default_options(options: type[CallOptions]) -> CallOptions:
    return options()


_CALL_PARAMS = PARAMS | {"cache"}


def _shaping(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A call's parameters split: those that shape the reply (and ``cache``), and the rest."""
    if not _CALL_PARAMS & params.keys():
        return {}, params
    shaping = {name: value for name, value in params.items() if name in _CALL_PARAMS}
    return shaping, {name: value for name, value in params.items() if name not in _CALL_PARAMS}


def _structure(shaping: dict[str, Any]) -> Structure | None:
    """The call's structure, from its ``schema``/``regex``/``choices``/``tools``/... values."""
    from muse_sdk.structured import Structure

    return Structure.build(shaping)


def _call_cache(value: Any) -> Any:
    """A call's ``cache=``: ``False`` turns the generator's off, anything else is a cache."""
    if value is False:
        return False
    from muse_sdk.cache import cache_from

    return cache_from(value)
