"""CodeGenerationTemplate: prompts (en, zh, the seed's), parse, run and repair."""

from __future__ import annotations

import subprocess
import sys

import pytest

import muse_sdk as muse
from muse_sdk.errors import InvalidParameterError, TemplateError
from muse_sdk.templates import CodeGenerationTemplate, CodeResult

SECTIONS_ZH = ["数据集加载和预处理", "模型定义和训练", "模型评估和预测"]
SEED_PROMPT = (
    "请根据以下需求生成一段Python代码:\n\n需求:实现一个简单的图像分类模型,能够识别猫狗图像。\n\n"
    "代码应该包括以下内容:\n1. 数据集加载和预处理\n2. 模型定义和训练\n3. 模型评估和预测"
)
BROKEN = "这是代码：\n```python\ndef train(:\n    pass\n```\n"
FIXED = "修正后的代码：\n```python\ndef train():\n    pass\n```\n"


def test_zh_prompt_reproduces_the_seed():
    template = CodeGenerationTemplate("python", locale="zh", sections=SECTIONS_ZH)
    assert template.render("实现一个简单的图像分类模型,能够识别猫狗图像。") == SEED_PROMPT
    assert template.variables == ("requirement",)


def test_en_prompt_with_constraints():
    template = CodeGenerationTemplate(
        "py",
        sections=["Data loading", "Training"],
        constraints=["Use only the standard library", "Keep {braces} literal"],
    )
    assert template.language == "python"
    assert template.render("  a cat/dog classifier  ") == (
        "Write Python code for the following requirement:\n\n"
        "Requirement: a cat/dog classifier\n\n"
        "The code should include:\n1. Data loading\n2. Training\n\n"
        "Constraints:\n- Use only the standard library\n- Keep {braces} literal"
    )


def test_requirement_is_literal_and_other_languages():
    template = CodeGenerationTemplate("js", locale="zh")
    assert template.render("打印 {x}") == "请根据以下需求生成一段JavaScript代码:\n\n需求:打印 {x}"
    assert CodeGenerationTemplate("haskell").render("x").startswith("Write haskell code")


def test_primed_prompt_ends_inside_a_fence():
    template = CodeGenerationTemplate("bash", primed=True)
    assert template.render("list files").endswith("Requirement: list files\n\n```bash\n")
    result = template.parse("ls -la\n```\nThis lists files.")
    assert (result.code, result.language, result.truncated) == ("ls -la", "bash", False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"locale": "fr"}, "locale must be one of en, zh"),
        ({"language": ""}, "language must be one word"),
        ({"language": "objective c"}, "language must be one word"),
        ({"language": None}, "language must be one word"),
        ({"sections": "数据集加载"}, "sections must be a list"),
        ({"sections": ["ok", ""]}, "non-empty str"),
        ({"constraints": [1]}, "non-empty str"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(TemplateError, match=message):
        CodeGenerationTemplate(**kwargs)


@pytest.mark.parametrize("requirement", ["", "   ", None, 3])
def test_bad_requirement(requirement):
    with pytest.raises(TemplateError, match="requirement must be a non-empty str"):
        CodeGenerationTemplate().render(requirement)


def test_run_extracts_and_checks():
    gen = muse.load("fake:script", responses=[FIXED])
    template = CodeGenerationTemplate(locale="zh", sections=SECTIONS_ZH)
    result = template.run(gen, "一个能够识别猫和狗的图像分类器", max_tokens=100)
    assert isinstance(result, CodeResult)
    assert (result.code, result.language, result.syntax_error) == (
        "def train():\n    pass",
        "python",
        None,
    )
    assert result.blocks == (("python", "def train():\n    pass"),)
    assert result.raw.text == FIXED
    assert result.repairs == 0
    assert gen.prompts == [template.render("一个能够识别猫和狗的图像分类器")]


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_run_repairs_a_syntax_error(locale):
    gen = muse.load("fake:script", responses=[BROKEN, FIXED])
    template = CodeGenerationTemplate(locale=locale, sections=SECTIONS_ZH)
    result = template.run(gen, "训练函数", repair_attempts=2)
    assert result.syntax_error is None
    assert result.code == "def train():\n    pass"
    assert result.repairs == 1
    assert gen.calls == 2
    repair = gen.prompts[1]
    broken = template.parse(BROKEN)
    assert broken.syntax_error is not None and "line 1" in broken.syntax_error
    assert broken.syntax_error in repair
    assert "```python\ndef train(:\n    pass\n```" in repair
    assert repair.startswith(template.render("训练函数"))
    assert repair == template.render_repair("训练函数", broken)


def test_run_without_repair_returns_the_broken_code():
    gen = muse.load("fake:script", responses=[BROKEN, FIXED])
    result = CodeGenerationTemplate().run(gen, "a train function", repair_attempts=0)
    assert result.code == "def train(:\n    pass"
    assert result.syntax_error is not None
    assert not result.ok
    assert gen.calls == 1


def test_repair_gives_up_after_the_attempts():
    gen = muse.load("fake:script", responses=[BROKEN])
    result = CodeGenerationTemplate().run(gen, "a train function", repair_attempts=2)
    assert result.syntax_error is not None
    assert (result.repairs, gen.calls) == (2, 3)


def test_no_repair_for_unchecked_languages():
    gen = muse.load("fake:script", responses=["```kotlin\nfun f( {\n```"])
    result = CodeGenerationTemplate("kotlin").run(gen, "check x", repair_attempts=3)
    assert (result.syntax_error, result.syntax_checked, gen.calls) == (None, False, 1)


def test_repair_prompt_fence_outgrows_backticks_in_code():
    template = CodeGenerationTemplate(primed=True)
    broken = CodeResult(code="s = '```'\nx = (", language="python", syntax_error="boom (line 2)")
    repair = template.render_repair("r", broken)
    assert "````python\ns = '```'\nx = (\n````" in repair
    assert repair.endswith("\n\n```python\n")


def test_primed_run_with_truncation():
    gen = muse.load("fake:script", responses=["x = 1\ny = [1, 2, 3]\n```\ndone"])
    result = CodeGenerationTemplate(primed=True).run(gen, "lists", max_tokens=6)
    assert result.truncated is True
    assert result.code == "x = 1\ny = [1,"
    assert result.syntax_error is not None


@pytest.mark.parametrize("attempts", [-1, 1.5, True, "2"])
def test_bad_repair_attempts(attempts):
    gen = muse.load("fake:script", responses=[FIXED])
    with pytest.raises(InvalidParameterError, match="repair_attempts"):
        CodeGenerationTemplate().run(gen, "x", repair_attempts=attempts)
    assert gen.calls == 0


async def test_arun_repairs():
    gen = muse.load("fake:script", responses=[BROKEN, FIXED])
    result = await CodeGenerationTemplate().arun(gen, "x", repair_attempts=1)
    assert (result.syntax_error, result.repairs, gen.calls) == (None, 1, 2)


def test_templates_import_stays_light():
    code = (
        "import sys, muse_sdk.templates; "
        "print(sorted(m for m in ('openai', 'torch', 'transformers', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
