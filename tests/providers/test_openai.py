"""The OpenAI provider against a real loopback server: parameters, endpoints, streaming."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import openai
import pytest

import muse_sdk as muse
from muse_sdk.errors import (
    InvalidConfigError,
    MissingCredentialsError,
    UnsupportedParameterError,
)
from muse_sdk.providers.openai import pick_api
from muse_sdk.providers.openai._convert import http_timeout
from tests.servers.openai_server import OpenAIServer, Reply

KEY = "sk-test-abcdef123456"
CHAT, LEGACY = "gpt-4o-mini", "gpt-3.5-turbo-instruct"
WORLD = "你好，世界！🌍🎉 秋天的诗 🍁 done"


def load(server: OpenAIServer, model: str = CHAT, **kwargs: object) -> muse.Generator:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("retry", {"max_attempts": 1})
    return muse.load(f"openai:{model}", base_url=server.url, **kwargs)


def collect(chunks: list[muse.StreamChunk]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for chunk in chunks:
        texts[chunk.index] = texts.get(chunk.index, "") + chunk.text
    return texts


async def acollect(gen: muse.Generator, prompt: str, **params: object) -> list[muse.StreamChunk]:
    return [chunk async for chunk in gen.astream(prompt, **params)]


# --- import and settings -----------------------------------------------------------------


def test_importing_muse_and_the_provider_module_does_not_import_openai() -> None:
    code = (
        "import sys, muse_sdk, muse_sdk.providers.openai as p; p.OpenAISettings(); "
        "print('openai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("model", "api"),
    [
        ("gpt-3.5-turbo-instruct", "completions"),
        ("davinci-002", "completions"),
        ("babbage-002", "completions"),
        ("text-davinci-003", "completions"),
        ("meta-llama/Llama-3.1-8B-Instruct", "completions"),
        ("gpt-4o-mini", "chat"),
        ("gpt2", "chat"),
    ],
)
def test_api_auto_picks_by_model_name(model: str, api: str) -> None:
    assert pick_api(model, "auto") == api
    assert pick_api(model, "chat") == "chat"


def test_api_setting_overrides_auto(server: OpenAIServer) -> None:
    load(server, LEGACY, api="chat").generate("hi")
    assert server.last.path == "/v1/chat/completions"
    load(server, CHAT, api="completions").generate("hi")
    assert server.last.path == "/v1/completions"


@pytest.mark.parametrize("url", ["ftp://example.com/v1", "localhost:8000/v1", "not a url"])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(InvalidConfigError, match="base_url"):
        muse.load("openai:gpt-4o-mini", base_url=url, api_key=KEY)


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
        muse.load("openai:gpt-4o-mini")
    with pytest.raises(MissingCredentialsError, match="MY_GATEWAY_KEY"):
        muse.load("openai:gpt-4o-mini", api_key_env="MY_GATEWAY_KEY")


def test_key_from_environment(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GATEWAY_KEY", "sk-from-env-999999")
    gen = muse.load("openai:gpt-4o-mini", base_url=server.url, api_key_env="MY_GATEWAY_KEY")
    gen.generate("hi")
    assert server.last.headers["authorization"] == "Bearer sk-from-env-999999"


@pytest.mark.parametrize("value", ["none", "EMPTY", "no-key"])
def test_keyless_server_gets_no_authorization_header(server: OpenAIServer, value: str) -> None:
    load(server, api_key=value).generate("hi")
    assert "authorization" not in server.last.headers


def test_client_headers_organization_project(server: OpenAIServer) -> None:
    gen = load(server, organization="org-1", project="proj-1", default_headers={"X-Team": "muse"})
    gen.generate("hi", extra_headers={"X-Trace": "t1"})
    headers = server.last.headers
    assert headers["openai-organization"] == "org-1"
    assert headers["openai-project"] == "proj-1"
    assert headers["x-team"] == "muse"
    assert headers["x-trace"] == "t1"
    assert headers["x-stainless-retry-count"] == "0"


def test_base_url_with_path_prefix() -> None:
    with OpenAIServer(prefix="/proxy/v1") as proxy:
        load(proxy, CHAT).generate("hi")
        load(proxy, LEGACY).generate("hi")
        assert [r.path for r in proxy.requests] == [
            "/proxy/v1/chat/completions",
            "/proxy/v1/completions",
        ]


# --- parameter mapping -------------------------------------------------------------------


def test_completions_body_has_every_parameter(server: OpenAIServer) -> None:
    gen = load(server, LEGACY)
    gen.generate(
        "Once upon a time",
        max_tokens=7,
        temperature=0.5,
        top_p=0.9,
        n=2,
        stop=["\n", "END"],
        seed=42,
        logprobs=3,
        user="u-1",
        presence_penalty=0.1,
        frequency_penalty=0.2,
        logit_bias={"50256": -100},
        suffix="!",
        echo=False,
        best_of=3,
    )
    assert server.last.path == "/v1/completions"
    assert server.last.json == {
        "model": LEGACY,
        "prompt": "Once upon a time",
        "max_tokens": 7,
        "temperature": 0.5,
        "top_p": 0.9,
        "n": 2,
        "stop": ["\n", "END"],
        "seed": 42,
        "logprobs": 3,
        "user": "u-1",
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logit_bias": {"50256": -100},
        "suffix": "!",
        "echo": False,
        "best_of": 3,
    }


def test_chat_body_has_every_parameter(server: OpenAIServer) -> None:
    gen = load(server, CHAT)
    gen.generate(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        max_tokens=5,
        temperature=0,
        top_p=1,
        n=3,
        stop="END",
        seed=7,
        logprobs=2,
        user="u-2",
        response_format={"type": "json_object"},
    )
    assert server.last.path == "/v1/chat/completions"
    assert server.last.json == {
        "model": CHAT,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 5,
        "temperature": 0,
        "top_p": 1,
        "n": 3,
        "stop": ["END"],
        "seed": 7,
        "logprobs": True,
        "top_logprobs": 2,
        "user": "u-2",
        "response_format": {"type": "json_object"},
    }


def test_defaults_send_only_model_and_prompt(server: OpenAIServer) -> None:
    load(server, CHAT).generate("写一首关于秋天的诗")
    assert server.last.json == {
        "model": CHAT,
        "messages": [{"role": "user", "content": "写一首关于秋天的诗"}],
    }


def test_profile_defaults_and_max_completion_tokens(server: OpenAIServer) -> None:
    gen = load(
        server, CHAT, temperature=0.3, max_tokens=9, max_tokens_param="max_completion_tokens"
    )
    gen.generate("hi")
    assert server.last.json["max_completion_tokens"] == 9
    assert server.last.json["temperature"] == 0.3
    assert "max_tokens" not in server.last.json


def test_stream_asks_for_usage_unless_turned_off(server: OpenAIServer) -> None:
    list(load(server, CHAT).stream("hi"))
    assert server.last.json["stream"] is True
    assert server.last.json["stream_options"] == {"include_usage": True}
    chunks = list(load(server, LEGACY, stream_usage=False).stream("hi"))
    assert "stream_options" not in server.last.json
    assert all(chunk.usage is None for chunk in chunks)


@pytest.mark.parametrize("name", ["top_k", "repetition_penalty", "no_repeat_ngram_size"])
def test_params_the_api_lacks_are_unsupported(server: OpenAIServer, name: str) -> None:
    with pytest.raises(UnsupportedParameterError, match=f"{name}.*extra_body"):
        load(server).generate("hi", **{name: 2})
    assert server.requests == []


def test_extra_body_passes_anything_through(server: OpenAIServer) -> None:
    gen = load(server, LEGACY, extra_body={"top_k": 10, "min_p": 0.05})
    gen.generate("hi", extra_body={"top_k": 40, "repetition_penalty": 1.1})
    body = server.last.json
    assert (body["top_k"], body["repetition_penalty"], body["min_p"]) == (40, 1.1, 0.05)


def test_messages_on_completions_are_unsupported(server: OpenAIServer) -> None:
    with pytest.raises(UnsupportedParameterError, match="messages"):
        load(server, LEGACY).generate([{"role": "user", "content": "hi"}])
    assert server.requests == []


def test_endpoint_specific_options_are_checked(server: OpenAIServer) -> None:
    with pytest.raises(UnsupportedParameterError, match="response_format"):
        load(server, LEGACY).generate("hi", response_format={"type": "json_object"})
    with pytest.raises(UnsupportedParameterError, match="suffix"):
        load(server, CHAT).generate("hi", suffix="!")
    with pytest.raises(UnsupportedParameterError, match="bogus"):
        load(server, CHAT).generate("hi", bogus=1)


def test_timeout_phases_reach_the_client(server: OpenAIServer) -> None:
    load(server, timeout={"connect": 1, "read": 5, "total": 3}).generate("hi")
    # the attempt may last what is left of the call's total: a little under 3 s
    assert 2.5 < float(server.last.headers["x-stainless-read-timeout"]) <= 3.0
    phases = http_timeout(muse.Timeout(connect=1, read=5, total=3))
    assert (phases.connect, phases.read) == (1, 3)
    assert http_timeout(muse.Timeout(2)).read == 2
    late = http_timeout(muse.Timeout(connect=1, read=5, total=3), left_s=0.4)
    assert (late.connect, late.read) == (0.4, 0.4)


# --- results -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", [CHAT, LEGACY])
def test_result_fields(server: OpenAIServer, model: str) -> None:
    result = load(server, model).generate("hello world", max_tokens=3)
    assert result.text == "Once upon a"
    assert result.finish_reason == "length"
    assert (result.provider, result.model) == ("openai", model)
    assert result.id is not None and "-test-" in result.id
    assert result.usage.completion_tokens == 3
    assert result.usage.prompt_tokens > 0
    assert result.latency_s > 0
    expected = openai.types.chat.ChatCompletion if model == CHAT else openai.types.Completion
    assert isinstance(result.raw, expected)


@pytest.mark.parametrize("model", [CHAT, LEGACY])
def test_n_choices_and_stop(server: OpenAIServer, model: str) -> None:
    server.script(Reply(texts=("alpha beta STOP gamma", "one two three")))
    result = load(server, model).generate("hi", n=2, stop=["STOP"])
    assert result.texts == ["alpha beta ", "one two three"]
    assert [c.index for c in result.choices] == [0, 1]
    assert [c.finish_reason for c in result.choices] == ["stop", "stop"]


# --- both endpoints x sync/async x stream/non-stream --------------------------------------


@pytest.mark.parametrize("model", [CHAT, LEGACY])
@pytest.mark.parametrize("piece_size", [None, 1, 2, 3, 5, 7])
async def test_stream_equals_generate_with_cjk_and_emoji(
    server: OpenAIServer, model: str, piece_size: int | None
) -> None:
    gen = load(server, model)
    reply = Reply(text=WORLD, piece_size=piece_size)
    server.script(reply, reply, reply, reply)
    sync_text = gen.generate("诗").text
    sync_chunks = list(gen.stream("诗"))
    async_text = (await gen.agenerate("诗")).text
    async_chunks = await acollect(gen, "诗")
    assert sync_text == async_text == WORLD
    for chunks in (sync_chunks, async_chunks):
        assert collect(chunks) == {0: WORLD}
        assert [c.finish_reason for c in chunks][-1] == "stop"
        assert all(c.finish_reason is None for c in chunks[:-1])
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        assert all(c.usage is None for c in chunks[:-1])
    await gen.aclose()


@pytest.mark.parametrize("model", [CHAT, LEGACY])
async def test_stream_with_n_choices(server: OpenAIServer, model: str) -> None:
    reply = Reply(texts=("第一 个 🍎", "second choice here"))
    server.script(reply, reply)
    gen = load(server, model)
    expected = {0: "第一 个 🍎", 1: "second choice here"}
    for chunks in (list(gen.stream("hi", n=2)), await acollect(gen, "hi", n=2)):
        assert collect(chunks) == expected
        for index in (0, 1):
            mine = [c for c in chunks if c.index == index]
            assert mine[-1].finish_reason == "stop"
            assert all(c.finish_reason is None for c in mine[:-1])
        assert chunks[-1].usage is not None
    await gen.aclose()


@pytest.mark.parametrize("model", [CHAT, LEGACY])
def test_stream_finish_reason_length(server: OpenAIServer, model: str) -> None:
    chunks = list(load(server, model).stream("hi", max_tokens=2))
    assert collect(chunks) == {0: "Once upon"}
    assert chunks[-1].finish_reason == "length"


# --- clients -----------------------------------------------------------------------------


def test_one_client_and_one_connection_for_sequential_requests(server: OpenAIServer) -> None:
    with load(server) as gen:
        for _ in range(5):
            gen.generate("hi")
        list(gen.stream("hi"))
        gen.generate("hi")
    ports = {r.client_port for r in server.requests}
    assert len(ports) == 1
    assert gen._sync is None  # closed on exit; a later call would open a new one


async def test_async_client_reuses_connections(server: OpenAIServer) -> None:
    async with load(server) as gen:
        for _ in range(4):
            await gen.agenerate("hi")
    assert len({r.client_port for r in server.requests}) == 1


def test_async_works_across_event_loops(server: OpenAIServer) -> None:
    gen = load(server)
    assert asyncio.run(gen.agenerate("hi")).text
    assert asyncio.run(gen.agenerate("hi")).text  # the first loop is closed by now


async def test_batch_and_abatch_keep_order(server: OpenAIServer) -> None:
    gen = load(server, LEGACY)
    prompts = [f"prompt {i}" for i in range(6)]
    results = gen.batch(prompts, max_tokens=2, max_concurrency=3).raise_for_errors()
    aresults = (await gen.abatch(prompts, max_tokens=2, max_concurrency=3)).raise_for_errors()
    assert [r.text for r in results] == [r.text for r in aresults] == ["Once upon"] * 6
    sent = sorted(r.json["prompt"] for r in server.requests)
    assert sent == sorted(prompts * 2)
    await gen.aclose()


def test_abandoned_stream_is_closed_and_generator_stays_usable(server: OpenAIServer) -> None:
    server.script(Reply(text=" ".join(["word"] * 200), piece_delay_s=0.001))
    gen = load(server)
    stream = gen.stream("hi")
    assert next(stream).text == "word"
    stream.close()
    assert gen.generate("hi").text == "Once upon a time, a small model wrote a story."
