"""PromptTemplate: safe by construction, strict rendering, partials, files and run()."""

from __future__ import annotations

import pytest

import muse_sdk as muse
from muse_sdk.errors import (
    MissingVariableError,
    TemplateError,
    UnsafeTemplateError,
    UnsupportedParameterError,
)
from muse_sdk.templates import PromptTemplate, load_templates


def test_render_and_variables():
    template = PromptTemplate("Write a {genre} about {topic}; a {genre} please.")
    assert template.variables == ("genre", "topic")
    assert template.render(genre="poem", topic="autumn") == (
        "Write a poem about autumn; a poem please."
    )


def test_chinese_text_and_names():
    template = PromptTemplate("写一首关于{主题}的诗，风格：{style}")
    assert template.variables == ("主题", "style")
    assert template.render(主题="秋天", style="豪放") == "写一首关于秋天的诗，风格：豪放"


def test_literal_braces():
    template = PromptTemplate('Return JSON like {{"name": "{name}"}}')
    assert template.variables == ("name",)
    assert template.render(name="x") == 'Return JSON like {"name": "x"}'


def test_numbers_are_inserted_as_text():
    assert PromptTemplate("{n} lines, {t} degrees").render(n=4, t=0.5) == "4 lines, 0.5 degrees"


@pytest.mark.parametrize("value", [None, ["a"], {"a": 1}, b"x", True, object()])
def test_other_value_types_are_refused(value):
    with pytest.raises(TemplateError, match="'x'"):
        PromptTemplate("{x}").render(x=value)


@pytest.mark.parametrize(
    "value",
    ["{name}", "{x.__class__}", "{x[0]}", "{x!r}", "{{", "}", "{0}", "{}"],
)
def test_values_are_never_reinterpreted(value):
    template = PromptTemplate("a {x} b {name}")
    assert template.render(x=value, name="N") == f"a {value} b N"


@pytest.mark.parametrize(
    "source",
    [
        "{x.__class__}",
        "{x.__class__.__init__.__globals__}",
        "{x[0]}",
        "{x[key]}",
        "{0.__class__}",
        "{x!r}",
        "{x!s}",
        "{x!a}",
        "{x:>10}",
        "{x:{y}}",
        "{x!r:>10}",
        "ok {y} then {x.real}",
    ],
)
def test_unsafe_fields_rejected_at_construction(source):
    with pytest.raises(UnsafeTemplateError, match="plain"):
        PromptTemplate(source)


@pytest.mark.parametrize("source", ["{}", "{0}", "a {} b {}", "{1}"])
def test_positional_fields_rejected(source):
    with pytest.raises(TemplateError, match="positional"):
        PromptTemplate(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{x", "malformed"),
        ("x}", "malformed"),
        ("{x!}", "malformed"),
        ("{my-var}", "not a valid name"),
        ("{ x }", "not a valid name"),
    ],
)
def test_malformed_templates(source, message):
    with pytest.raises(TemplateError, match=message):
        PromptTemplate(source)


def test_template_must_be_text():
    with pytest.raises(TemplateError, match="must be a str"):
        PromptTemplate(42)  # type: ignore[arg-type]


def test_missing_variables_listed_at_once():
    template = PromptTemplate("{a} {b} {c}")
    with pytest.raises(MissingVariableError) as info:
        template.render(b=1)
    assert info.value.missing == ["a", "c"]
    assert "'a', 'c'" in str(info.value)


def test_missing_with_typo_notes_the_unexpected_value():
    with pytest.raises(MissingVariableError) as info:
        PromptTemplate("{topic}").render(topc="x")
    assert any("did you mean 'topic'" in note for note in info.value.__notes__)


def test_extra_values_strict_and_not():
    with pytest.raises(TemplateError, match=r"unexpected .*'extra'.*strict=False") as info:
        PromptTemplate("{topic}").render(topic="a", extra="b")
    assert not isinstance(info.value, MissingVariableError)
    assert PromptTemplate("{topic}", strict=False).render(topic="a", extra="b") == "a"


def test_extra_value_suggests_a_name():
    with pytest.raises(TemplateError, match="did you mean 'topic'"):
        PromptTemplate("{topic} {genre}").render(topic="a", genre="b", topics="c")


def test_variable_named_self():
    assert PromptTemplate("{self}").render(self="me") == "me"


def test_partial():
    template = PromptTemplate("Write a {genre} about {topic} in {{braces}}.")
    poem = template.partial(genre="{poem}")
    assert poem.variables == ("topic",)
    assert poem.render(topic="rain") == "Write a {poem} about rain in {braces}."
    assert poem.render(topic="rain") == template.render(genre="{poem}", topic="rain")
    assert template.variables == ("genre", "topic")  # the original is unchanged
    assert poem.partial(topic="sun").render() == "Write a {poem} about sun in {braces}."


def test_partial_strictness_and_metadata():
    template = PromptTemplate("{a} {b}", name="t", metadata={"k": 1})
    with pytest.raises(TemplateError, match="'c'"):
        template.partial(c=1)
    loose = PromptTemplate("{a} {b}", strict=False).partial(c=1, a="A")
    assert loose.render(b="B") == "A B"
    filled = template.partial(a="A")
    assert (filled.name, dict(filled.metadata)) == ("t", {"k": 1})


def test_equality_repr_metadata_read_only():
    assert PromptTemplate("{a}") == PromptTemplate("{a}")
    assert PromptTemplate("{a}") != PromptTemplate("{a}", strict=False)
    assert "variables=('a',)" in repr(PromptTemplate("{a}"))
    template = PromptTemplate("x", metadata={"k": 1})
    with pytest.raises(TypeError):
        template.metadata["k"] = 2  # type: ignore[index]


# --- files ---------------------------------------------------------------------------------


def test_from_file_utf8_chinese(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("写一首关于{topic}的诗\n要求：{form}", encoding="utf-8")
    template = PromptTemplate.from_file(path)
    assert template.render(topic="秋天", form="七言绝句") == "写一首关于秋天的诗\n要求：七言绝句"


@pytest.mark.parametrize(
    "data",
    [
        "第一行{a}\r\n第二行\r\n".encode(),
        "第一行{a}\r第二行\r".encode(),
        "\ufeff第一行{a}\n第二行\n".encode(),
    ],
    ids=["crlf", "lone-cr", "bom"],
)
def test_from_file_line_endings_and_bom(tmp_path, data):
    path = tmp_path / "t.txt"
    path.write_bytes(data)
    assert PromptTemplate.from_file(str(path)).render(a="!") == "第一行!\n第二行\n"


def test_from_file_errors(tmp_path):
    with pytest.raises(TemplateError, match="not found"):
        PromptTemplate.from_file(tmp_path / "missing.txt")
    bad = tmp_path / "gbk.txt"
    bad.write_bytes("写一首关于秋天的诗".encode("gbk"))
    with pytest.raises(TemplateError, match="not valid UTF-8"):
        PromptTemplate.from_file(bad)
    with pytest.raises(TemplateError, match="cannot read"):
        PromptTemplate.from_file(tmp_path)
    unsafe = tmp_path / "unsafe.txt"
    unsafe.write_text("{x.__class__}")
    with pytest.raises(UnsafeTemplateError):
        PromptTemplate.from_file(unsafe)


TOML = """
[poem]
template = "写一首关于{topic}的诗"
description = "A short poem"
metadata = { author = "muse", tags = ["zh", "poem"] }

[story]
template = '''
Once upon a time, {hero} met a {creature}.
Continue the story in {words} words.'''
strict = false

[ad]
template = "为{product}写一段广告文案，目标受众：{audience}。"
"""


def test_load_templates_toml(tmp_path):
    path = tmp_path / "prompts.toml"
    path.write_bytes(TOML.replace("\n", "\r\n").encode("utf-8"))
    templates = load_templates(path)
    assert list(templates) == ["poem", "story", "ad"]
    poem = templates["poem"]
    assert (poem.name, poem.description) == ("poem", "A short poem")
    assert dict(poem.metadata) == {"author": "muse", "tags": ["zh", "poem"]}
    assert poem.render(topic="秋天") == "写一首关于秋天的诗"
    story = templates["story"]
    assert story.strict is False
    assert story.render(hero="Ann", creature="dragon", words=50, extra=1) == (
        "Once upon a time, Ann met a dragon.\nContinue the story in 50 words."
    )
    assert templates["ad"].variables == ("product", "audience")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[p]\ntemplat = "x"\n', "unknown key 'templat' \\(did you mean 'template'\\?\\)"),
        ('[p]\ndescription = "x"\n', "missing key 'template'"),
        ('p = "x"\n', "not a table"),
        ("[p]\ntemplate = 3\n", "'template' must be a str"),
        ('[p]\ntemplate = "x"\nstrict = "no"\n', "'strict' must be a bool"),
        ('[p]\ntemplate = "x"\nmetadata = 1\n', "'metadata' must be a dict"),
        ("[p\n", "not valid TOML"),
        ("# nothing\n", "holds no templates"),
    ],
)
def test_load_templates_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError, match=message):
        load_templates(path)


def test_load_templates_unsafe_names_the_template(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[evil]\ntemplate = "{x.__class__}"\n', encoding="utf-8")
    with pytest.raises(UnsafeTemplateError) as info:
        load_templates(path)
    assert any("'evil'" in note for note in info.value.__notes__)


# --- run -----------------------------------------------------------------------------------


def test_run_renders_then_generates():
    gen = muse.load("fake:echo")
    result = PromptTemplate("写一首关于{topic}的诗").run(gen, {"topic": "秋天"}, max_tokens=4)
    assert result.text == "写一首关"
    assert gen.prompts == ["写一首关于秋天的诗"]


async def test_arun():
    gen = muse.load("fake:script", responses=["秋风起"])
    result = await PromptTemplate("{topic}").arun(gen, {"topic": "秋天"})
    assert result.text == "秋风起"
    assert gen.prompts == ["秋天"]


def test_run_refuses_values_as_keywords():
    gen = muse.load("fake:echo")
    with pytest.raises(TemplateError, match=r"'topic' is a template variable.*mapping"):
        PromptTemplate("{topic}").run(gen, topic="x")  # type: ignore[call-arg]
    assert gen.calls == 0


@pytest.mark.parametrize("values", [["topic"], "topic", {1: "x"}])
def test_run_refuses_non_mapping_values(values):
    with pytest.raises(TemplateError, match="mapping"):
        PromptTemplate("{topic}").run(muse.load("fake:echo"), values)


def test_run_passes_params_to_the_generator():
    gen = muse.load("fake:echo")
    with pytest.raises(UnsupportedParameterError, match="max_tokenz"):
        PromptTemplate("{t}").run(gen, {"t": "x"}, max_tokenz=3)
    with pytest.raises(MissingVariableError):
        PromptTemplate("{t}").run(gen)
