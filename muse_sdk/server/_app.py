"""The ASGI application: OpenAI's endpoints over the served generators.

``GET /health``, ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/completions`` and
``POST /v1/chat/completions``. Plain replies run the muse call under a disconnect watch; streams
answer errors that happen before the first token with an HTTP status (a too-long prompt is a 400,
not a 200 with an error inside) and later ones as an error event, after which the stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeGuard

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from muse_sdk.core.generator import Generator
from muse_sdk.core.generator import Request as MuseRequest
from muse_sdk.core.streaming import AsyncStream
from muse_sdk.core.types import GenerationResult, StreamChunk, Usage
from muse_sdk.errors import StructuredOutputError
from muse_sdk.server._errors import ApiError, from_exception, logger
from muse_sdk.server._limits import Admission, read_json
from muse_sdk.server._models import Loader, ModelTable, ServedModel
from muse_sdk.server._replies import DONE, Endpoint, Held, Replier, sse
from muse_sdk.server._requests import Call, parse_chat, parse_completion
from muse_sdk.server._settings import ServeSettings
from muse_sdk.server._streams import ClientDisconnectedError, EventStream, merged, until_disconnect

__all__ = ["create_app"]

_PARSERS = {"completions": parse_completion, "chat": parse_chat}
_PROMPT_PARAM = {"completions": "prompt", "chat": "messages"}


def create_app(
    settings: ServeSettings | None = None,
    *,
    loader: Loader | None = None,
    on_load_failed: Callable[[], None] | None = None,
) -> Starlette:
    """The ASGI app serving ``settings.models``; they load in the background after startup.

    ``loader`` builds a generator from a spec (default :func:`muse_sdk.load`; pass one that
    reads your own config). ``on_load_failed`` runs when a model cannot be loaded (``muse
    serve`` uses it to exit with the error).
    """
    if loader is None:
        from muse_sdk.loader import load

        loader = load
    server = _Server(
        settings or ServeSettings(), ModelTable(settings.models if settings else (), loader)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loading = asyncio.ensure_future(server.load(on_load_failed))
        try:
            yield
        finally:
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await server.table.aclose()

    app = Starlette(routes=server.routes(), lifespan=lifespan)
    app.state.muse = server
    return app


class _Server:
    """The routes' shared state: settings, the model table and the queue."""

    def __init__(self, settings: ServeSettings, table: ModelTable) -> None:
        self.settings = settings
        self.table = table
        self.admission = Admission(settings.max_queue)
        key = settings.api_key
        self._key = key.get_secret_value().encode() if key is not None else None

    def routes(self) -> list[Route]:
        """The URL table."""
        return [
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.get_model, methods=["GET"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
        ]

    async def load(self, on_failed: Callable[[], None] | None) -> None:
        """Load the models; report a failure to ``on_failed``."""
        await self.table.load()
        if self.table.state == "failed" and on_failed is not None:
            on_failed()

    # --- small endpoints ---------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """200 once the models are loaded; 503 while loading or after a failed load."""
        body: dict[str, Any] = {"status": self.table.state}
        if self.table.state == "ready":
            body["status"] = "ok"
            body["models"] = [m.id for m in self.table.models]
            body["in_flight"] = self.admission.in_flight
            return JSONResponse(body)
        if self.table.error is not None:
            body["error"] = self.table.error
        return JSONResponse(body, status_code=503, headers={"retry-after": "2"})

    async def list_models(self, request: Request) -> Response:
        """``GET /v1/models``."""
        return await self._answer(request, lambda: self.table.listing())

    async def get_model(self, request: Request) -> Response:
        """``GET /v1/models/{id}``."""
        name = request.path_params["model"]
        return await self._answer(request, lambda: self.table.describe(self.table.get(name)))

    async def _answer(self, request: Request, body: Callable[[], dict[str, Any]]) -> Response:
        request_id = _request_id()
        try:
            self._authorize(request)
            return JSONResponse(body(), headers={"x-request-id": request_id})
        except ApiError as exc:
            return _error_response(exc, request_id)

    def _authorize(self, request: Request) -> None:
        if self._key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            token = request.headers.get("api-key", "")  # Azure-style clients
        if not hmac.compare_digest(token.strip().encode(), self._key):
            raise ApiError(
                401,
                "missing or wrong API key: send it as 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )

    # --- generation --------------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        """``POST /v1/completions``."""
        return await self._generate(request, "completions")

    async def chat(self, request: Request) -> Response:
        """``POST /v1/chat/completions``."""
        return await self._generate(request, "chat")

    async def _generate(self, request: Request, endpoint: Endpoint) -> Response:
        request_id = _request_id()
        prompt_param = _PROMPT_PARAM[endpoint]
        try:
            served, call = await self._accept(request, endpoint)
        except Exception as exc:
            return _error_response(
                from_exception(exc, request_id, prompt_param=prompt_param), request_id
            )
        headers = {"x-request-id": request_id}
        if call.ignored:
            headers["x-muse-ignored-fields"] = ",".join(call.ignored)
        replier = Replier(endpoint, served.id)
        weight = len(call.requests)
        if call.stream:
            return await self._stream(request, served, call, replier, headers)
        try:
            work = _run_all(served.generator, call.requests)
            results = await until_disconnect(work, request.receive)
        except ClientDisconnectedError:
            logger.info("request %s: the client disconnected; its work was cancelled", request_id)
            return Response(status_code=499)
        except Exception as exc:
            if _cut(exc, call):
                return JSONResponse(replier.cut(exc), headers=headers)
            return _error_response(
                from_exception(exc, request_id, prompt_param=prompt_param), request_id
            )
        finally:
            self.admission.leave(weight)
        return JSONResponse(replier.whole(results, call.n), headers=headers)

    async def _accept(self, request: Request, endpoint: Endpoint) -> tuple[ServedModel, Call]:
        """Authorize, read and parse the request, and admit it to the queue."""
        self._authorize(request)
        body = await read_json(
            request.headers.get("content-length"), request.stream(), self.settings.max_body_bytes
        )
        served = self.table.get(body.get("model"))
        call = _PARSERS[endpoint](body, served.generator)
        self.admission.enter(len(call.requests))
        return served, call

    async def _stream(
        self,
        request: Request,
        served: ServedModel,
        call: Call,
        replier: Replier,
        headers: dict[str, str],
    ) -> Response:
        """Start the stream; an error before its first chunk is an HTTP error reply."""
        request_id = headers["x-request-id"]
        weight = len(call.requests)
        streams = [served.generator.arun_stream(r) for r in call.requests]
        chunks = merged(streams)

        async def release() -> None:
            self.admission.leave(weight)

        try:
            first = await until_disconnect(anext(chunks, None), request.receive)
        except Exception as exc:
            await release()
            if isinstance(exc, ClientDisconnectedError):
                return Response(status_code=499)
            prompt_param = _PROMPT_PARAM[replier.endpoint]
            return _error_response(
                from_exception(exc, request_id, prompt_param=prompt_param), request_id
            )
        events = _events(first, chunks, streams, call, replier, request_id)
        return EventStream(events, headers, on_close=release)


async def _events(
    first: tuple[int, StreamChunk] | None,
    chunks: AsyncIterator[tuple[int, StreamChunk]],
    streams: Sequence[AsyncStream],
    call: Call,
    replier: Replier,
    request_id: str,
) -> AsyncIterator[bytes]:
    """The SSE bytes of a started stream: chunks, then usage (if asked), then ``[DONE]``."""
    usage = Usage()
    held = _held(call, replier)
    out: Replier | Held = held or replier
    opening = replier.opening(len(call.requests) * call.n)
    if opening:
        yield opening
    try:
        item = first
        while item is not None:
            k, chunk = item
            index = k * call.n + chunk.index
            if chunk.text and (event := out.text(index, chunk.text)):
                yield event
            if chunk.finish_reason is not None and (
                event := out.finish(index, chunk.finish_reason)
            ):
                yield event
            if chunk.usage is not None:
                usage += chunk.usage
            item = await anext(chunks, None)
        if held is not None:  # the streams have ended: their results are validated
            yield held.ended([stream.result for stream in streams], call.n)
    except Exception as exc:
        if held is not None and _cut(exc, call):
            yield held.cut()  # as OpenAI: a cut reply just ends with "length"
        else:
            error = from_exception(exc, request_id, prompt_param=_PROMPT_PARAM[replier.endpoint])
            yield sse(error.body()) + b"\n\n"
            return
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    if call.include_usage:
        yield replier.usage(usage)
    yield DONE


def _held(call: Call, replier: Replier) -> Held | None:
    """What holds back a structured stream's finishes (and tool calls); ``None`` if plain."""
    structures = [r.structure for r in call.requests if r.structure is not None]
    if not structures:
        return None
    return Held(replier, tools=any(s.calls_tools for s in structures))


def _cut(exc: Exception, call: Call) -> TypeGuard[StructuredOutputError]:
    """A one-choice call whose structured reply ``max_tokens`` cut: answered, not an error.

    With more choices the others' results are lost with the error, so it stays one (a 400).
    """
    one = len(call.requests) * call.n == 1
    return one and isinstance(exc, StructuredOutputError) and exc.finish_reason == "length"


async def _run_all(generator: Generator, requests: Sequence[MuseRequest]) -> list[GenerationResult]:
    """Every request's result; the first failure cancels the others (their work is wasted)."""
    tasks = [asyncio.ensure_future(generator.arun(request)) for request in requests]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()  # no-op once done


def _request_id() -> str:
    return f"req-{uuid.uuid4().hex[:16]}"


def _error_response(error: ApiError, request_id: str) -> Response:
    headers = {**error.headers, "x-request-id": request_id}
    return JSONResponse(error.body(), status_code=error.status, headers=headers)
