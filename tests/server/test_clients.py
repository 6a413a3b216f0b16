"""The clients people point at OpenAI-compatible servers, against ``muse serve`` on loopback.

The official ``openai`` client, muse's own ``openai`` provider, LiteLLM, LangChain and the
``llm`` CLI each talk to one server serving ``local:muse-tiny`` (no chat template: completions)
and a copy of it with a chat template (``tiny-chat``). Greedy answers must equal the in-process
local provider's token for token, plain and streamed, and so must the usage the client reports.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("uvicorn")
pytest.importorskip("starlette")
openai = pytest.importorskip("openai")

import muse_sdk as muse  # noqa: E402
from muse_sdk import errors  # noqa: E402
from muse_sdk.core.generator import Generator  # noqa: E402
from muse_sdk.core.types import GenerationResult  # noqa: E402
from tests.server.harness import Served, chat_model  # noqa: E402

PROMPT = "Once upon a time"
MESSAGES = [{"role": "user", "content": "Hello there"}]
MAX_TOKENS = 12
GREEDY: dict[str, Any] = {"max_tokens": MAX_TOKENS, "temperature": 0}
#: Stop sequences the greedy answers above reach (checked against the reference).
TEXT_STOP = ["self"]
CHAT_STOP = ["#"]


@dataclass
class Reference:
    """The in-process local provider's answers, computed once per set of parameters."""

    tiny: Generator
    chat: Generator
    _cache: dict[tuple[str, str], GenerationResult] = field(default_factory=dict)

    def text(self, **params: Any) -> GenerationResult:
        """muse-tiny on ``PROMPT`` (greedy, ``MAX_TOKENS``, unless ``params`` say otherwise)."""
        return self._get("text", self.tiny, PROMPT, params)

    def messages(self, **params: Any) -> GenerationResult:
        """tiny-chat on ``MESSAGES``."""
        return self._get("chat", self.chat, MESSAGES, params)

    def _get(
        self, kind: str, generator: Generator, prompt: Any, params: dict[str, Any]
    ) -> GenerationResult:
        params = GREEDY | params
        key = (kind, repr(sorted(params.items())))
        if key not in self._cache:
            self._cache[key] = generator.generate(prompt, **params)
        return self._cache[key]


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chat_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def served(chat_dir: Path) -> Iterator[Served]:
    with Served(["local:muse-tiny", f"tiny-chat=local:{chat_dir}"]) as running:
        yield running


@pytest.fixture(scope="module")
def reference(chat_dir: Path) -> Iterator[Reference]:
    with muse.load("local:muse-tiny") as tiny, muse.load(f"local:{chat_dir}") as chat:
        yield Reference(tiny, chat)


@pytest.fixture
def client(served: Served) -> Iterator[Any]:
    with openai.OpenAI(base_url=served.url, api_key="none", max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(served: Served) -> Any:
    async with openai.AsyncOpenAI(base_url=served.url, api_key="none", max_retries=0) as c:
        yield c


def assert_usage(usage: Any, expected: GenerationResult) -> None:
    """An OpenAI usage object (or dict) equal to the reference's."""
    if isinstance(usage, dict):
        usage = SimpleNamespace(**usage)
    assert usage.prompt_tokens == expected.usage.prompt_tokens
    assert usage.completion_tokens == expected.usage.completion_tokens
    assert usage.total_tokens == expected.usage.total_tokens


def test_the_reference_answers_are_long_enough_to_compare(reference: Reference) -> None:
    """Greedy answers run to ``MAX_TOKENS`` and the stop sequences cut them short."""
    for result, stop in ((reference.text(), TEXT_STOP), (reference.messages(), CHAT_STOP)):
        assert result.finish_reason == "length"
        assert result.usage.completion_tokens == MAX_TOKENS
        assert stop[0] in result.text
    assert reference.text(stop=TEXT_STOP).finish_reason == "stop"
    assert reference.messages(stop=CHAT_STOP).finish_reason == "stop"


# --- the official openai client --------------------------------------------------------------


def test_openai_lists_the_served_models(client: Any) -> None:
    assert [m.id for m in client.models.list()] == ["muse-tiny", "tiny-chat"]
    assert client.models.retrieve("tiny-chat").id == "tiny-chat"


def test_openai_completion(client: Any, reference: Reference) -> None:
    reply = client.completions.create(model="muse-tiny", prompt=PROMPT, **GREEDY)
    expected = reference.text()
    assert reply.object == "text_completion"
    assert reply.model == "muse-tiny"
    assert [c.index for c in reply.choices] == [0]
    assert reply.choices[0].text == expected.text
    assert reply.choices[0].finish_reason == expected.finish_reason == "length"
    assert_usage(reply.usage, expected)


def test_openai_completion_stream_with_usage(client: Any, reference: Reference) -> None:
    chunks = list(
        client.completions.create(
            model="muse-tiny",
            prompt=PROMPT,
            stream=True,
            stream_options={"include_usage": True},
            **GREEDY,
        )
    )
    expected = reference.text()
    *texts, usage_chunk = chunks
    assert "".join(c.choices[0].text for c in texts) == expected.text
    assert len([c for c in texts if c.choices[0].text]) > 1  # really streamed
    assert [c.choices[0].finish_reason for c in texts][-1] == "length"
    assert all(c.usage is None for c in texts)
    assert usage_chunk.choices == []
    assert_usage(usage_chunk.usage, expected)


def test_openai_completion_stream_without_usage_has_no_usage_chunk(
    client: Any, reference: Reference
) -> None:
    chunks = list(
        client.completions.create(model="muse-tiny", prompt=PROMPT, stream=True, **GREEDY)
    )
    assert all(c.choices and c.usage is None for c in chunks)
    assert "".join(c.choices[0].text for c in chunks) == reference.text().text


def test_openai_chat(client: Any, reference: Reference) -> None:
    reply = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, **GREEDY)
    expected = reference.messages()
    assert reply.object == "chat.completion"
    assert reply.model == "tiny-chat"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected.text
    assert reply.choices[0].finish_reason == expected.finish_reason
    assert_usage(reply.usage, expected)


def test_openai_chat_stream_with_usage(client: Any, reference: Reference) -> None:
    chunks = list(
        client.chat.completions.create(
            model="tiny-chat",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            **GREEDY,
        )
    )
    expected = reference.messages()
    *deltas, usage_chunk = chunks
    assert deltas[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in deltas) == expected.text
    assert deltas[-1].choices[0].finish_reason == "length"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert usage_chunk.choices == []
    assert_usage(usage_chunk.usage, expected)


async def test_openai_async_completion(aclient: Any, reference: Reference) -> None:
    reply = await aclient.completions.create(model="muse-tiny", prompt=PROMPT, **GREEDY)
    assert reply.choices[0].text == reference.text().text
    assert_usage(reply.usage, reference.text())


async def test_openai_async_completion_stream(aclient: Any, reference: Reference) -> None:
    stream = await aclient.completions.create(
        model="muse-tiny",
        prompt=PROMPT,
        stream=True,
        stream_options={"include_usage": True},
        **GREEDY,
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == reference.text().text
    assert_usage(chunks[-1].usage, reference.text())


async def test_openai_async_chat(aclient: Any, reference: Reference) -> None:
    reply = await aclient.chat.completions.create(model="tiny-chat", messages=MESSAGES, **GREEDY)
    assert reply.choices[0].message.content == reference.messages().text
    assert_usage(reply.usage, reference.messages())


async def test_openai_async_chat_stream(aclient: Any, reference: Reference) -> None:
    stream = await aclient.chat.completions.create(
        model="tiny-chat", messages=MESSAGES, stream=True, **GREEDY
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == reference.messages().text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_openai_n_with_a_seed_samples_like_the_local_provider(
    client: Any, reference: Reference
) -> None:
    sampled = {"temperature": 1.0, "seed": 7, "n": 2}
    reply = client.completions.create(model="muse-tiny", prompt=PROMPT, **(GREEDY | sampled))
    assert [c.index for c in reply.choices] == [0, 1]
    assert [c.text for c in reply.choices] == reference.text(**sampled).texts
    assert reply.usage.completion_tokens == reference.text(**sampled).usage.completion_tokens
    chat = client.chat.completions.create(model="tiny-chat", messages=MESSAGES, **GREEDY | sampled)
    assert [c.index for c in chat.choices] == [0, 1]
    assert [c.message.content for c in chat.choices] == reference.messages(**sampled).texts


def test_openai_stop_sequences_are_honoured(client: Any, reference: Reference) -> None:
    reply = client.completions.create(model="muse-tiny", prompt=PROMPT, stop=TEXT_STOP, **GREEDY)
    expected = reference.text(stop=TEXT_STOP)
    assert reply.choices[0].text == expected.text
    assert reply.choices[0].finish_reason == "stop"
    assert_usage(reply.usage, expected)
    streamed = client.completions.create(
        model="muse-tiny", prompt=PROMPT, stop=TEXT_STOP, stream=True, **GREEDY
    )
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks) == expected.text
    assert chunks[-1].choices[0].finish_reason == "stop"
    chat = client.chat.completions.create(
        model="tiny-chat", messages=MESSAGES, stop=CHAT_STOP, **GREEDY
    )
    assert chat.choices[0].message.content == reference.messages(stop=CHAT_STOP).text
    assert chat.choices[0].finish_reason == "stop"


# --- muse's own openai provider ----------------------------------------------------------------


@pytest.fixture
def remote_tiny(served: Served) -> Iterator[Generator]:
    with muse.load(
        "openai:muse-tiny", base_url=served.url, api_key="none", api="completions"
    ) as generator:
        yield generator


@pytest.fixture
def remote_chat(served: Served) -> Iterator[Generator]:
    with muse.load("openai:tiny-chat", base_url=served.url, api_key="none") as generator:
        yield generator


def assert_same(result: GenerationResult, expected: GenerationResult) -> None:
    assert result.text == expected.text
    assert result.finish_reason == expected.finish_reason
    assert result.usage == expected.usage


def test_muse_openai_provider_completions(remote_tiny: Generator, reference: Reference) -> None:
    assert_same(remote_tiny.generate(PROMPT, **GREEDY), reference.text())
    with remote_tiny.stream(PROMPT, **GREEDY) as stream:
        texts = [chunk.text for chunk in stream]
    assert "".join(texts) == reference.text().text
    assert_same(stream.result, reference.text())


async def test_muse_openai_provider_completions_async(
    remote_tiny: Generator, reference: Reference
) -> None:
    try:
        assert_same(await remote_tiny.agenerate(PROMPT, **GREEDY), reference.text())
        async with remote_tiny.astream(PROMPT, **GREEDY) as stream:
            texts = [chunk.text async for chunk in stream]
        assert "".join(texts) == reference.text().text
        assert_same(stream.result, reference.text())
    finally:
        await remote_tiny.aclose()


async def test_muse_openai_provider_chat(remote_chat: Generator, reference: Reference) -> None:
    try:
        assert_same(remote_chat.generate(MESSAGES, **GREEDY), reference.messages())
        assert_same(await remote_chat.agenerate(MESSAGES, **GREEDY), reference.messages())
        with remote_chat.stream(MESSAGES, **GREEDY) as stream:
            assert "".join(chunk.text for chunk in stream) == reference.messages().text
        assert_same(stream.result, reference.messages())
        async with remote_chat.astream(MESSAGES, **GREEDY) as astream:
            assert "".join([c.text async for c in astream]) == reference.messages().text
        assert_same(astream.result, reference.messages())
    finally:
        await remote_chat.aclose()


def test_muse_openai_provider_chat_on_a_model_without_template_says_what_to_do(
    served: Served,
) -> None:
    with muse.load("openai:muse-tiny", base_url=served.url, api_key="none") as generator:
        assert generator.api == "chat"  # type: ignore[attr-defined]
        with pytest.raises(errors.BadRequestError) as caught:
            generator.generate(MESSAGES, **GREEDY)
    assert caught.value.status_code == 400
    assert "chat template" in str(caught.value)
    assert "/v1/completions" in str(caught.value)
    assert "api='completions'" in str(caught.value)


# --- LiteLLM ---------------------------------------------------------------------------------


@pytest.fixture
def litellm(monkeypatch: pytest.MonkeyPatch) -> Any:
    # Read at import: use the bundled model cost map instead of fetching it.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return pytest.importorskip("litellm")


@pytest.fixture
def via(served: Served) -> dict[str, Any]:
    """What every LiteLLM call takes to reach the server.

    The prices are for LiteLLM's logging threads: without them they fail to price the unknown
    model and format the traceback, whose ``ast.parse`` races pytest's own when a test fails
    (CPython 3.11.7 then raises "AST constructor recursion depth mismatch").
    """
    return {
        "api_base": served.url,
        "api_key": "none",
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
    }


#: LiteLLM's own models warn on import and use (pydantic deprecations): not ours to fix.
quiet_litellm = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore:.*ReadOnly.*:UserWarning"
)


@quiet_litellm
def test_litellm_completion(litellm: ModuleType, via: dict[str, Any], reference: Reference) -> None:
    reply = litellm.completion(model="openai/tiny-chat", messages=MESSAGES, **via, **GREEDY)
    expected = reference.messages()
    assert reply.model == "tiny-chat"
    assert reply.choices[0].message.content == expected.text
    assert reply.choices[0].finish_reason == expected.finish_reason
    assert_usage(reply.usage, expected)


@quiet_litellm
def test_litellm_completion_stream(
    litellm: ModuleType, via: dict[str, Any], reference: Reference
) -> None:
    stream = litellm.completion(
        model="openai/tiny-chat",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        **via,
        **GREEDY,
    )
    chunks = list(stream)
    expected = reference.messages()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    usage = [c.usage for c in chunks if getattr(c, "usage", None)]
    assert usage
    assert_usage(usage[-1], expected)


@quiet_litellm
def test_litellm_text_completion(
    litellm: ModuleType, via: dict[str, Any], reference: Reference
) -> None:
    # LiteLLM sends text_completion for "openai/" models to /v1/completions, prompt as text.
    reply = litellm.text_completion(model="openai/muse-tiny", prompt=PROMPT, **via, **GREEDY)
    assert reply.choices[0].text == reference.text().text
    assert reply.choices[0].finish_reason == "length"
    assert_usage(reply.usage, reference.text())


@quiet_litellm
async def test_litellm_acompletion(
    litellm: ModuleType, via: dict[str, Any], reference: Reference
) -> None:
    reply = await litellm.acompletion(model="openai/tiny-chat", messages=MESSAGES, **via, **GREEDY)
    assert reply.choices[0].message.content == reference.messages().text
    assert_usage(reply.usage, reference.messages())
    stream = await litellm.acompletion(
        model="openai/tiny-chat", messages=MESSAGES, stream=True, **via, **GREEDY
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == reference.messages().text


# --- LangChain -------------------------------------------------------------------------------


@pytest.fixture
def langchain_openai() -> Any:
    return pytest.importorskip("langchain_openai")


def test_langchain_openai_llm(
    langchain_openai: ModuleType, served: Served, reference: Reference
) -> None:
    # LangChain sends prompt as a one-string list, plus logprobs=null, seed=null, top_p=1,
    # presence_penalty=0 and frequency_penalty=0.
    llm = langchain_openai.OpenAI(
        model="muse-tiny", base_url=served.url, api_key="none", max_retries=0, **GREEDY
    )
    expected = reference.text()
    assert llm.invoke(PROMPT) == expected.text
    assert "".join(llm.stream(PROMPT)) == expected.text
    result = llm.generate([PROMPT])
    assert result.generations[0][0].generation_info["finish_reason"] == "length"
    assert_usage(result.llm_output["token_usage"], expected)


async def test_langchain_openai_llm_async(
    langchain_openai: ModuleType, served: Served, reference: Reference
) -> None:
    llm = langchain_openai.OpenAI(
        model="muse-tiny", base_url=served.url, api_key="none", max_retries=0, **GREEDY
    )
    assert await llm.ainvoke(PROMPT) == reference.text().text
    assert "".join([text async for text in llm.astream(PROMPT)]) == reference.text().text


def test_langchain_chat_openai(
    langchain_openai: ModuleType, served: Served, reference: Reference
) -> None:
    # ChatOpenAI sends max_completion_tokens (not max_tokens) and "stream": false.
    chat = langchain_openai.ChatOpenAI(
        model="tiny-chat",
        base_url=served.url,
        api_key="none",
        max_retries=0,
        stream_usage=True,
        **GREEDY,
    )
    expected = reference.messages()
    message = chat.invoke("Hello there")
    assert message.content == expected.text
    assert message.response_metadata["finish_reason"] == "length"
    assert message.usage_metadata["input_tokens"] == expected.usage.prompt_tokens
    assert message.usage_metadata["output_tokens"] == expected.usage.completion_tokens
    whole = functools.reduce(operator.add, chat.stream("Hello there"))
    assert whole.content == expected.text
    assert whole.usage_metadata["input_tokens"] == expected.usage.prompt_tokens
    assert whole.usage_metadata["output_tokens"] == expected.usage.completion_tokens


# --- the llm CLI -----------------------------------------------------------------------------


@pytest.fixture
def llm_cli(served: Served, tmp_path: Path) -> Iterator[Any]:
    """Run ``llm`` with muse-tiny (completion) and tiny-chat configured as extra OpenAI models."""
    pytest.importorskip("llm")
    program = Path(sys.executable).parent / "llm"
    if not program.exists():
        pytest.skip("the llm command is not installed")
    user_dir = tmp_path / "llm-user"
    home = tmp_path / "home"
    user_dir.mkdir()
    home.mkdir()
    (user_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: muse-tiny\n"
        f"  model_name: muse-tiny\n"
        f'  api_base: "{served.url}"\n'
        f"  completion: true\n"
        f"- model_id: tiny-chat\n"
        f"  model_name: tiny-chat\n"
        f'  api_base: "{served.url}"\n'
    )
    env = {
        **os.environ,
        "LLM_USER_PATH": str(user_dir),
        "HOME": str(home),  # nothing may land in the real home directory
        "LLM_LOAD_PLUGINS": "",  # the default plugins only
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LLM_OPENAI_SHOW_RESPONSES"):
        env.pop(name, None)

    def run(model: str, prompt: str, *args: str) -> str:
        options = ["-o", "temperature", "0", "-o", "max_tokens", str(MAX_TOKENS)]
        done = subprocess.run(
            [str(program), "prompt", "-n", "-m", model, *options, *args, prompt],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.endswith("\n")
        return done.stdout[: -len("\n")]

    yield run
    assert list(home.iterdir()) == []  # llm kept to LLM_USER_PATH
    logs = user_dir / "logs.db"  # llm creates it even with -n, but must log nothing there
    if logs.exists():
        with contextlib.closing(sqlite3.connect(logs)) as db:
            tables = {row[0] for row in db.execute("select name from sqlite_master")}
            for table in {"responses", "turns", "messages"} & tables:  # old and new llm
                assert db.execute(f"select count(*) from {table}").fetchone() == (0,), table


@pytest.mark.parametrize("streamed", [True, False], ids=["stream", "no-stream"])
def test_llm_cli(llm_cli: Any, reference: Reference, streamed: bool) -> None:
    args = () if streamed else ("--no-stream",)
    assert llm_cli("muse-tiny", PROMPT, *args) == reference.text().text
    assert llm_cli("tiny-chat", "Hello there", *args) == reference.messages().text
