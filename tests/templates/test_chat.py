"""ChatTemplate and FewShotTemplate."""

from __future__ import annotations

import pytest

import muse_sdk as muse
from muse_sdk.core.types import Message
from muse_sdk.errors import MissingVariableError, TemplateError, UnsafeTemplateError
from muse_sdk.templates import ChatTemplate, FewShotTemplate, PromptTemplate


def _chat() -> ChatTemplate:
    return ChatTemplate(
        [
            ("system", "You are a {style} poet."),
            {"role": "user", "content": "写一首关于{topic}的诗，{style}一些。"},
            Message(role="assistant", content="好的。"),
            ("user", PromptTemplate("Now in {lang}.")),
        ]
    )


def test_chat_render():
    chat = _chat()
    assert chat.variables == ("style", "topic", "lang")
    messages = chat.render(style="豪放", topic="秋天", lang="English")
    assert messages == [
        Message(role="system", content="You are a 豪放 poet."),
        Message(role="user", content="写一首关于秋天的诗，豪放一些。"),
        Message(role="assistant", content="好的。"),
        Message(role="user", content="Now in English."),
    ]


def test_chat_missing_across_messages_listed_at_once():
    with pytest.raises(MissingVariableError) as info:
        _chat().render(style="x")
    assert info.value.missing == ["lang", "topic"]


def test_chat_strictness():
    with pytest.raises(TemplateError, match="'extra'"):
        _chat().render(style="a", topic="b", lang="c", extra="d")
    chat = ChatTemplate([("user", "{a}")], strict=False)
    assert chat.render(a="1", extra="2")[0].content == "1"


def test_chat_values_stay_literal():
    assert ChatTemplate([("user", "{a}")]).render(a="{b}")[0].content == "{b}"


def test_chat_partial():
    chat = _chat().partial(style="婉约")
    assert chat.variables == ("topic", "lang")
    assert chat.render(topic="春", lang="en")[0].content == "You are a 婉约 poet."
    with pytest.raises(TemplateError, match="'nope'"):
        _chat().partial(nope=1)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "at least one"),
        ("user: hi", "list of messages"),
        ([("robot", "hi")], "role 'robot'"),
        ([("usr", "hi")], "did you mean 'user'"),
        ([("user",)], "pair"),
        ([{"role": "user"}], "pair"),
        ([("user", 3)], "must be a str or a PromptTemplate"),
    ],
)
def test_chat_bad_messages(messages, message):
    with pytest.raises(TemplateError, match=message):
        ChatTemplate(messages)


def test_chat_unsafe_message():
    with pytest.raises(UnsafeTemplateError):
        ChatTemplate([("user", "{x.__class__}")])


def test_chat_run_against_fake():
    gen = muse.load("fake:echo")
    result = _chat().run(gen, {"style": "a", "topic": "b", "lang": "fr"})
    assert result.text == "Now in fr."
    assert gen.prompts[0][0] == Message(role="system", content="You are a a poet.")


EXAMPLES = [
    {"word": "happy", "antonym": "sad", "note": "unused"},
    {"word": "tall", "antonym": "short"},
    {"word": "{x}", "antonym": "快"},
]


def test_few_shot_render():
    few = FewShotTemplate(
        EXAMPLES,
        "Word: {word}\nAntonym: {antonym}",
        prefix="Give the antonym of every {kind}.",
        suffix="Word: {input}\nAntonym:",
    )
    assert few.variables == ("kind", "input")
    assert few.render(kind="word", input="慢") == (
        "Give the antonym of every word.\n\n"
        "Word: happy\nAntonym: sad\n\n"
        "Word: tall\nAntonym: short\n\n"
        "Word: {x}\nAntonym: 快\n\n"
        "Word: 慢\nAntonym:"
    )


def test_few_shot_max_examples_and_separator():
    few = FewShotTemplate(
        EXAMPLES, "{word}->{antonym}", suffix="{input}->", separator="\n", max_examples=2
    )
    assert few.examples == ("happy->sad", "tall->short")
    assert few.render(input="big") == "happy->sad\ntall->short\nbig->"
    assert FewShotTemplate(EXAMPLES, "{word}", max_examples=0).render() == ""


def test_few_shot_errors():
    with pytest.raises(TemplateError, match=r"example 1 lacks 'antonym'"):
        FewShotTemplate([{"word": "a", "antonym": "b"}, {"word": "c"}], "{word} {antonym}")
    with pytest.raises(TemplateError, match="max_examples"):
        FewShotTemplate(EXAMPLES, "{word}", max_examples=-1)
    with pytest.raises(TemplateError, match="list of mappings"):
        FewShotTemplate({"word": "a"}, "{word}")  # type: ignore[arg-type]
    with pytest.raises(TemplateError, match="example 0 must be a mapping"):
        FewShotTemplate(["a"], "{word}")  # type: ignore[list-item]
    with pytest.raises(MissingVariableError):
        FewShotTemplate(EXAMPLES, "{word}", suffix="{input}").render()
    with pytest.raises(TemplateError, match="'extra'"):
        FewShotTemplate(EXAMPLES, "{word}", suffix="{input}").render(input="a", extra="b")


def test_few_shot_run():
    gen = muse.load("fake:echo")
    few = FewShotTemplate(EXAMPLES[:1], "{word}={antonym}", suffix="{input}=")
    assert few.run(gen, {"input": "up"}).text == "happy=sad\n\nup="
