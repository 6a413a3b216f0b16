"""The OpenAI provider's error map, against a real loopback server; the key never leaks."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import openai
import pytest

import muse_sdk as muse
from muse_sdk import errors
from muse_sdk.providers.openai._errors import parse_retry_after
from tests.servers.openai_server import OpenAIServer, Reply

KEY = "sk-test-SECRET-0123456789"
CHAT, LEGACY = "gpt-4o-mini", "gpt-3.5-turbo-instruct"


def load(url: str, model: str = CHAT, **kwargs: object) -> muse.Generator:
    kwargs.setdefault("retry", {"max_attempts": 1})
    return muse.load(f"openai:{model}", base_url=url, api_key=KEY, **kwargs)


STATUS_ERRORS = [
    (400, errors.BadRequestError, False),
    (401, errors.AuthenticationError, False),
    (403, errors.PermissionDeniedError, False),
    (404, errors.NotFoundError, False),
    (408, errors.ServerError, True),
    (409, errors.ServerError, True),
    (413, errors.BadRequestError, False),
    (422, errors.BadRequestError, False),
    (429, errors.RateLimitError, True),
    (500, errors.ServerError, True),
    (502, errors.ServerError, True),
    (503, errors.ServerError, True),
    (504, errors.ServerError, True),
]


@pytest.mark.parametrize(("status", "cls", "retryable"), STATUS_ERRORS)
@pytest.mark.parametrize("model", [CHAT, LEGACY])
def test_status_errors(
    server: OpenAIServer, model: str, status: int, cls: type[errors.ProviderError], retryable: bool
) -> None:
    server.script(Reply.error(status, f"scripted {status}", headers={"x-request-id": "req-xyz"}))
    with pytest.raises(cls) as info:
        load(server.url, model).generate("hi")
    exc = info.value
    assert type(exc) is cls
    assert (exc.status_code, exc.request_id, exc.retryable) == (status, "req-xyz", retryable)
    assert exc.provider == "openai"
    assert f"scripted {status}" in str(exc)
    assert isinstance(exc.__cause__, openai.APIStatusError)


@pytest.mark.parametrize(("status", "cls", "retryable"), STATUS_ERRORS[::3])
async def test_status_errors_async_and_streams(
    server: OpenAIServer, status: int, cls: type[errors.ProviderError], retryable: bool
) -> None:
    gen = load(server.url)
    server.script(*[Reply.error(status)] * 3)
    with pytest.raises(cls):
        await gen.agenerate("hi")
    with pytest.raises(cls):
        list(gen.stream("hi"))
    with pytest.raises(cls):
        [c async for c in gen.astream("hi")]
    await gen.aclose()


def test_x_should_retry_header_overrides(server: OpenAIServer) -> None:
    server.script(Reply.error(500, headers={"x-should-retry": "false"}))
    with pytest.raises(errors.ServerError) as info:
        load(server.url).generate("hi")
    assert info.value.retryable is False


def test_rate_limit_retry_after_is_honoured(server: OpenAIServer) -> None:
    waits: list[float] = []
    policy = muse.RetryPolicy(muse.RetrySettings(max_attempts=3), sleep=waits.append)
    server.script(
        Reply.error(429, retry_after="2"), Reply.error(429, headers={"retry-after-ms": "250"})
    )
    result = load(server.url, retry=policy).generate("hi")
    assert result.attempts == 3
    assert waits == [2.0, 0.25]
    assert len(server.requests) == 3  # max_retries=0: the openai client never retried itself


def test_rate_limit_error_fields(server: OpenAIServer) -> None:
    server.script(Reply.error(429, "slow down", retry_after="7", code="rate_limit_exceeded"))
    with pytest.raises(errors.RateLimitError) as info:
        load(server.url).generate("hi")
    assert info.value.retry_after == 7.0


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now.timestamp()) == pytest.approx(30)
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 4097 tokens. However, you requested 5000 "
        "tokens (4000 in the prompt, 1000 in the completion).",
        "'max_tokens' is too large: 1000. This model's maximum context length is 4097 tokens "
        "and your request has 4000 input tokens (1000 > 4097 - 4000).",
    ],
)
def test_context_length_exceeded(server: OpenAIServer, message: str) -> None:
    server.script(Reply.error(400, message, code="context_length_exceeded"))
    with pytest.raises(errors.ContextLengthExceededError) as info:
        load(server.url, LEGACY).generate("hi", max_tokens=1000)
    assert (info.value.prompt_tokens, info.value.context_length) == (4000, 4097)
    assert info.value.max_tokens == 1000
    assert isinstance(info.value.__cause__, openai.BadRequestError)


def test_unparseable_context_length_stays_bad_request(server: OpenAIServer) -> None:
    server.script(Reply.error(400, "too long", code="context_length_exceeded"))
    with pytest.raises(errors.BadRequestError):
        load(server.url).generate("hi")


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b'{"id": "x", "choices": [', content_type="application/json"),
        Reply(body=b"<html>gateway says hi</html>", content_type="text/html"),
        Reply(body=b"{}", content_type="application/json"),
        Reply(body=b'{"choices": [{"index": 0, "text": 5}]}', content_type="application/json"),
    ],
    ids=["truncated-json", "html", "empty-object", "wrong-types"],
)
@pytest.mark.parametrize("model", [CHAT, LEGACY])
def test_unreadable_200_is_a_retryable_server_error(
    server: OpenAIServer, reply: Reply, model: str
) -> None:
    server.script(reply)
    with pytest.raises(errors.ServerError) as info:
        load(server.url, model).generate("hi")
    assert info.value.retryable
    assert "unreadable" in str(info.value)


def test_malformed_reply_is_retried(server: OpenAIServer) -> None:
    server.script(Reply(body=b"{oops", content_type="application/json"))
    policy = muse.RetryPolicy(sleep=lambda _: None)
    result = load(server.url, retry=policy).generate("hi")
    assert (result.text, result.attempts) == ("Once upon a time, a small model wrote a story.", 2)


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gen = load(f"http://user:pw@127.0.0.1:{port}/v1")
    with pytest.raises(errors.ConnectionError) as info:
        gen.generate("hi")
    assert info.value.retryable
    assert "pw" not in str(info.value)
    assert isinstance(info.value.__cause__, openai.APIConnectionError)


async def test_timeouts(server: OpenAIServer) -> None:
    server.script(Reply(delay_s=1.0), Reply(delay_s=1.0))
    gen = load(server.url, timeout=0.2)
    with pytest.raises(errors.TimeoutError) as info:
        gen.generate("hi")
    assert info.value.retryable
    with pytest.raises(errors.TimeoutError):
        await gen.agenerate("hi")
    await gen.aclose()


@pytest.mark.parametrize("model", [CHAT, LEGACY])
async def test_stream_cut_midway_is_interrupted_with_partial(
    server: OpenAIServer, model: str
) -> None:
    reply = Reply(
        text="一 二 三 四 五 六 七 八 九 十", cut_after=900, piece_size=50, piece_delay_s=0.001
    )
    server.script(reply, reply)
    gen = load(server.url, model)
    for aio in (False, True):
        received: list[str] = []
        with pytest.raises(errors.StreamInterruptedError) as info:
            if aio:
                async for chunk in gen.astream("hi"):
                    received.append(chunk.text)
            else:
                for chunk in gen.stream("hi"):
                    received.append(chunk.text)
        assert received and info.value.partial == "".join(received)
        assert isinstance(info.value.__cause__, errors.ConnectionError)
    await gen.aclose()


def test_stream_error_event_midway(server: OpenAIServer) -> None:
    server.script(Reply(stream_error={"message": "model crashed", "type": "server_error"}))
    with pytest.raises(errors.StreamInterruptedError) as info:
        list(load(server.url).stream("hi"))
    assert info.value.partial == "Once upon a time, a small model wrote a story."
    assert "model crashed" in str(info.value)


def test_stream_failing_before_first_chunk_is_retried(server: OpenAIServer) -> None:
    server.script(Reply.error(503), Reply(text="ok then"))
    gen = load(server.url, retry=muse.RetryPolicy(sleep=lambda _: None))
    assert "".join(c.text for c in gen.stream("hi")) == "ok then"


async def test_key_never_leaks(server: OpenAIServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gen = load(server.url)
    echo = f"Incorrect API key provided: {KEY}. Also sk-abc***wxyz."
    server.script(Reply.error(401, echo), Reply.error(401, echo), Reply.error(429, echo))
    caught: list[BaseException] = []
    for call in (lambda: gen.generate("hi"), lambda: list(gen.stream("hi"))):
        with pytest.raises(errors.AuthenticationError) as info:
            call()
        caught.append(info.value)
    with pytest.raises(errors.RateLimitError) as rate:
        await gen.agenerate("hi")
    caught.append(rate.value)
    texts = [repr(gen), str(gen.settings), repr(gen.settings), caplog.text]
    texts += [str(e) for e in caught] + [repr(e) for e in caught]
    for text in texts:
        assert KEY not in text
        assert "SECRET" not in text
        assert "abc***wxyz" not in text
    assert "sk-***" in str(caught[0])
    assert "api key" in str(caught[0]).lower()
    await gen.aclose()
