"""One request through each client: muse_sdk, the official ``openai`` client and the peers.

Every builder takes the server URL and the endpoint (``"chat"`` or ``"completions"``) and
returns a zero-argument callable (sync) or a prompt -> awaitable (async) that sends one request
for at most 5 tokens and returns the reply's text, or ``None`` when that client has no such
endpoint. Peers are imported only here, and only when installed.

Every call reads the text, as a caller does: openai 3.x builds a response's fields lazily, on
first access, so a baseline that never read them would skip about 55 us of work that muse_sdk
(which must read them to fill its typed result) cannot skip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._harness import CHAT_MODEL, PROMPT, TEXT_MODEL, have

KEY, MAX_TOKENS = "bench", 5
#: peer name -> the module that must be importable to measure it.
MODULES = {
    "muse_sdk": "muse_sdk",
    "openai": "openai",
    "litellm": "litellm",
    "langchain": "langchain_openai",
    "aisuite": "aisuite",
}
SyncCall = Callable[[], object]
AsyncCall = Callable[[str], Awaitable[object]]


def _model(endpoint: str) -> str:
    return CHAT_MODEL if endpoint == "chat" else TEXT_MODEL


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def muse_gen(url: str, endpoint: str) -> Any:
    import muse_sdk as muse

    return muse.load(f"openai:{_model(endpoint)}", base_url=url, api_key=KEY)


# --- sync --------------------------------------------------------------------------------


def sync_muse(url: str, endpoint: str) -> SyncCall:
    gen = muse_gen(url, endpoint)
    return lambda: gen.generate(PROMPT, max_tokens=MAX_TOKENS).text


def sync_openai(url: str, endpoint: str) -> SyncCall:
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=url)
    if endpoint == "chat":
        msgs = _messages(PROMPT)
        return lambda: _chat_text(
            client.chat.completions.create(model=CHAT_MODEL, messages=msgs, max_tokens=MAX_TOKENS)
        )
    return lambda: _text(
        client.completions.create(model=TEXT_MODEL, prompt=PROMPT, max_tokens=MAX_TOKENS)
    )


def _text(reply: Any) -> str:
    return str(reply.choices[0].text)


def _chat_text(reply: Any) -> str:
    return str(reply.choices[0].message.content)


async def _achat_text(reply: Awaitable[Any]) -> str:
    return _chat_text(await reply)


async def _atext(reply: Awaitable[Any]) -> str:
    return _text(await reply)


async def _amuse_text(result: Awaitable[Any]) -> str:
    return str((await result).text)


async def _acontent(message: Awaitable[Any]) -> str:
    return str((await message).content)


def _litellm_kw(url: str) -> dict[str, Any]:
    return {"api_base": url, "api_key": KEY, "max_tokens": MAX_TOKENS}


def sync_litellm(url: str, endpoint: str) -> SyncCall:
    import litellm

    if endpoint == "chat":
        msgs = _messages(PROMPT)
        model = f"openai/{CHAT_MODEL}"
        return lambda: _chat_text(litellm.completion(model, msgs, **_litellm_kw(url)))
    model = f"text-completion-openai/{TEXT_MODEL}"
    return lambda: _text(litellm.text_completion(model=model, prompt=PROMPT, **_litellm_kw(url)))


def _langchain(url: str, endpoint: str) -> Any:
    from langchain_openai import ChatOpenAI, OpenAI

    cls = ChatOpenAI if endpoint == "chat" else OpenAI
    return cls(model=_model(endpoint), base_url=url, api_key=KEY, max_tokens=MAX_TOKENS)


def sync_langchain(url: str, endpoint: str) -> SyncCall:
    model = _langchain(url, endpoint)
    if endpoint == "chat":
        return lambda: model.invoke(PROMPT).content  # an AIMessage
    return lambda: model.invoke(PROMPT)  # the completion LLM returns the text itself


def _aisuite(url: str) -> Any:
    import aisuite

    return aisuite.Client({"openai": {"api_key": KEY, "base_url": url}})


def sync_aisuite(url: str, endpoint: str) -> SyncCall | None:
    if endpoint != "chat":
        return None  # aisuite speaks chat only
    completions = _aisuite(url).chat.completions
    msgs = _messages(PROMPT)
    model = f"openai:{CHAT_MODEL}"
    return lambda: _chat_text(completions.create(model=model, messages=msgs, max_tokens=MAX_TOKENS))


SYNC = {
    "muse_sdk": sync_muse,
    "openai": sync_openai,
    "litellm": sync_litellm,
    "langchain": sync_langchain,
    "aisuite": sync_aisuite,
}

# --- async -------------------------------------------------------------------------------


def async_muse(url: str, endpoint: str) -> AsyncCall:
    gen = muse_gen(url, endpoint)
    return lambda prompt: _amuse_text(gen.agenerate(prompt, max_tokens=MAX_TOKENS))


def async_openai(url: str, endpoint: str) -> AsyncCall:
    import openai

    client = openai.AsyncOpenAI(api_key=KEY, base_url=url)
    if endpoint == "chat":
        return lambda p: _achat_text(
            client.chat.completions.create(
                model=CHAT_MODEL, messages=_messages(p), max_tokens=MAX_TOKENS
            )
        )
    return lambda p: _atext(
        client.completions.create(model=TEXT_MODEL, prompt=p, max_tokens=MAX_TOKENS)
    )


def async_litellm(url: str, endpoint: str) -> AsyncCall | None:
    import litellm

    if endpoint != "chat":
        return None
    model = f"openai/{CHAT_MODEL}"
    return lambda p: _achat_text(litellm.acompletion(model, _messages(p), **_litellm_kw(url)))


def async_langchain(url: str, endpoint: str) -> AsyncCall:
    model = _langchain(url, endpoint)
    if endpoint == "chat":
        return lambda p: _acontent(model.ainvoke(p))
    return model.ainvoke


def async_aisuite(url: str, endpoint: str) -> AsyncCall | None:
    if endpoint != "chat":
        return None
    completions = _aisuite(url).chat.completions
    model = f"openai:{CHAT_MODEL}"
    return lambda p: _achat_text(
        completions.acreate(model=model, messages=_messages(p), max_tokens=MAX_TOKENS)
    )


ASYNC = {
    "muse_sdk": async_muse,
    "openai": async_openai,
    "litellm": async_litellm,
    "langchain": async_langchain,
    "aisuite": async_aisuite,
}


async def aclose_peers() -> None:
    """Let the peers' cached async clients close on this loop, not after it has ended."""
    import asyncio
    import gc

    if have("litellm"):
        from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

        await close_litellm_async_clients()
    gc.collect()  # LangChain and LiteLLM schedule aclose() from __del__ on the running loop
    await asyncio.sleep(0.2)
