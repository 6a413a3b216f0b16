"""``OpenAIGenerator``: the official ``openai`` client behind the Generator contract."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from muse_sdk.core.generator import Generator, Request
from muse_sdk.core.settings import CallOptions
from muse_sdk.core.streaming import note_reply
from muse_sdk.core.types import GenerationParams, GenerationResult, Prompt, StreamChunk
from muse_sdk.errors import BadRequestError, UnsupportedParameterError
from muse_sdk.providers.openai._clients import LoopClients
from muse_sdk.providers.openai._convert import ChunkAssembler, create_kwargs, to_result
from muse_sdk.providers.openai._errors import ErrorMap
from muse_sdk.providers.openai._settings import (
    CHAT_ONLY_OPTIONS,
    COMPLETIONS_ONLY_OPTIONS,
    PASSTHROUGH_ONLY,
    OpenAIOptions,
    OpenAISettings,
    pick_api,
)
from muse_sdk.providers.openai._sse import drain_after_done, guard
from muse_sdk.providers.openai._structured import Ladder, for_openai

if TYPE_CHECKING:
    import openai

    from muse_sdk.structured import Structure

__all__ = ["OpenAIGenerator"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The openai client insists on a key; for keyless servers it gets this one and every request
# omits the Authorization header, so nothing is sent.
_KEYLESS_PLACEHOLDER = "no-key"


class OpenAIGenerator(Generator):
    """The OpenAI API or any OpenAI-compatible server, via the completions or chat endpoint.

    One sync and one async client per generator, created on first use and reused (keep-alive);
    their own retries are off, so :class:`~muse_sdk.retry.RetryPolicy` is the only retrier.

    A ``schema`` goes as ``response_format`` (stepping down to JSON mode or a prompt instruction
    where a server refuses it), ``tools`` natively; ``_structured`` explains the details.
    """

    provider = "openai"
    Settings = OpenAISettings
    Options = OpenAIOptions
    settings: OpenAISettings
    structured = True

    def __init__(self, model: str, settings: OpenAISettings | None = None, **kwargs: Any) -> None:
        super().__init__(model, settings, **kwargs)
        # Resolving now makes a missing key fail at muse.load(), not at the first request.
        key = self.settings.resolve_api_key(self.provider)
        self.api = pick_api(model, self.settings.api)
        self._keyless = key is None
        self._errors = ErrorMap(self.provider, _display_url(self.settings.base_url), [key])
        self._lock = threading.Lock()
        self._sync: openai.OpenAI | None = None
        self._async = LoopClients(self._new_async_client)
        # Imported here, not in the first call: importing openai takes about half a second,
        # which must not block an event loop inside the first agenerate().
        import openai  # noqa: F401

    def __repr__(self) -> str:
        return f"<OpenAIGenerator openai:{self.model} api={self.api}>"

    # --- clients ---------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        s = self.settings
        return {
            "api_key": s.resolve_api_key(self.provider) or _KEYLESS_PLACEHOLDER,
            "base_url": s.base_url,
            "organization": s.organization,
            "project": s.project,
            "default_headers": s.default_headers,
            "max_retries": 0,
        }

    def _client(self) -> openai.OpenAI:
        client = self._sync
        if client is None:
            with self._lock:
                if self._sync is None:
                    import openai

                    self._sync = openai.OpenAI(**self._client_kwargs())
                client = self._sync
        return client

    def _new_async_client(self) -> openai.AsyncOpenAI:
        import openai

        return openai.AsyncOpenAI(**self._client_kwargs())

    def _aclient(self) -> openai.AsyncOpenAI:
        return self._async.get()  # one per event loop: connections belong to their loop

    def close(self) -> None:
        """Close the sync client's connections (``aclose()`` closes the async one too)."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both clients (the async one of the running event loop)."""
        self.close()
        await self._async.aclose()

    # --- requests --------------------------------------------------------------------------

    def _request_for(
        self,
        prompt: Prompt,
        params: GenerationParams,
        options: CallOptions,
        structure: Structure | None = None,
    ) -> Request:
        # Validation must drop the nulls strict mode makes optional properties send.
        return super()._request_for(prompt, params, options, for_openai(structure))

    def _check_request(self, request: Request) -> None:
        super()._check_request(request)
        structure = request.structure
        if structure is not None and structure.output is not None:
            assert isinstance(request.options, OpenAIOptions)
            if request.options.response_format is not None:
                kind = structure.output.kind
                raise UnsupportedParameterError(
                    self.provider,
                    "response_format",
                    f"pass {'schema' if kind == 'json' else kind}=... or response_format=..., "
                    "not both",
                )
        params = request.params
        for name in sorted(PASSTHROUGH_ONLY):
            if getattr(params, name) is not None:
                raise UnsupportedParameterError(
                    self.provider,
                    name,
                    f"the OpenAI API has no {name!r}; for a server that accepts it (vLLM does), "
                    f"pass extra_body={{{name!r}: ...}} instead",
                )
        if self.api == "completions" and not isinstance(request.prompt, str):
            raise UnsupportedParameterError(
                self.provider,
                "messages",
                "the completions API takes text: pass a str (or render a template to one), "
                "or set api='chat'",
            )
        wrong = CHAT_ONLY_OPTIONS if self.api == "completions" else COMPLETIONS_ONLY_OPTIONS
        for name in sorted(wrong):
            if getattr(request.options, name) is not None:
                raise UnsupportedParameterError(
                    self.provider, name, f"not available on the {self.api} API (api={self.api!r})"
                )

    def _kwargs(self, request: Request, ladder: Ladder, *, stream: bool) -> dict[str, Any]:
        kwargs = create_kwargs(
            request, self.model, self.api, self.settings, stream=stream, level=ladder.level
        )
        if self._keyless:
            import openai

            kwargs["extra_headers"] = {
                **kwargs.get("extra_headers", {}),
                "Authorization": openai.Omit(),
            }
        return kwargs

    def _endpoint(self, client: openai.OpenAI | openai.AsyncOpenAI) -> Any:
        return client.completions if self.api == "completions" else client.chat.completions

    def _result(self, reply: object) -> GenerationResult:
        return to_result(reply, self.api, self.model, self.provider)

    def _ladder(self, request: Request) -> Ladder:
        base_url = self.settings.base_url or DEFAULT_BASE_URL
        return Ladder.plan(request, self.api, base_url, self.model)

    def _create(self, request: Request, *, stream: bool) -> Any:
        """Send ``request``, stepping down the response-format levels while they are refused."""
        ladder = self._ladder(request)
        while True:
            kwargs = self._kwargs(request, ladder, stream=stream)
            try:
                with self._errors(request.params.max_tokens):
                    reply = self._endpoint(self._client()).create(**kwargs)
            except BadRequestError as exc:
                if ladder.step_down(exc):
                    continue
                raise
            ladder.worked()
            return reply

    async def _acreate(self, request: Request, *, stream: bool) -> Any:
        """Async twin of :meth:`_create`."""
        ladder = self._ladder(request)
        while True:
            kwargs = self._kwargs(request, ladder, stream=stream)
            try:
                with self._errors(request.params.max_tokens):
                    reply = await self._endpoint(self._aclient()).create(**kwargs)
            except BadRequestError as exc:
                if ladder.step_down(exc):
                    continue
                raise
            ladder.worked()
            return reply

    def _generate(self, request: Request) -> GenerationResult:
        reply = self._create(request, stream=False)
        with self._errors(request.params.max_tokens):
            return self._result(reply)

    async def _agenerate(self, request: Request) -> GenerationResult:
        reply = await self._acreate(request, stream=False)
        with self._errors(request.params.max_tokens):
            return self._result(reply)

    def _stream(self, request: Request) -> Iterator[StreamChunk]:
        assembler = ChunkAssembler(self.api, request.params.n)
        events = cast("openai.Stream[Any]", self._create(request, stream=True))
        with self._errors(request.params.max_tokens):
            decoder = guard(events, request)
            drain_after_done(events.response)
            try:
                for event in events:
                    yield from assembler.feed(event)
                decoder.ensure_complete(assembler.complete)
                note_reply(model=assembler.model, id=assembler.id)
                yield from assembler.finish()
            finally:
                events.close()

    async def _astream(self, request: Request) -> AsyncIterator[StreamChunk]:
        assembler = ChunkAssembler(self.api, request.params.n)
        events = cast("openai.AsyncStream[Any]", await self._acreate(request, stream=True))
        with self._errors(request.params.max_tokens):
            decoder = guard(events, request)
            try:
                async for event in events:
                    for chunk in assembler.feed(event):
                        yield chunk
                decoder.ensure_complete(assembler.complete)
                note_reply(model=assembler.model, id=assembler.id)
                for chunk in assembler.finish():
                    yield chunk
            finally:
                await events.close()


def _display_url(base_url: str | None) -> str:
    """The server as error messages name it: no user info, no query."""
    parts = urlsplit(base_url or DEFAULT_BASE_URL)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
