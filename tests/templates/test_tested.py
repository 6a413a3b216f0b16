"""The code loop end to end: scripted replies through the fake provider, tests in the sandbox.

Each case of the corpus is a script of replies and ends with its documented outcome: which
candidate wins, after how many repairs and test runs, and how the last test run ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import muse_sdk as muse
from muse_sdk.errors import InvalidParameterError, TemplateError
from muse_sdk.providers.fake import tokenize
from muse_sdk.sandbox import Limits
from muse_sdk.templates import CodeGenerationTemplate

FAST = Limits(wall_s=3, cpu_s=3, memory_mb=256)
ADD_TESTS = """\
from solution import add


def test_small():
    assert add(2, 3) == 5


def test_negative():
    assert add(-1, -1) == -2
"""


def fenced(code: str, language: str = "python") -> str:
    return f"Here you go:\n\n```{language}\n{code}\n```\n"


RIGHT = fenced("def add(a, b):\n    return a + b")
WRONG = fenced("def add(a, b):\n    return a - b")
HALF = fenced("def add(a, b):\n    return abs(a) + abs(b)")  # passes one test of two
BROKEN = fenced("def add(a, b)\n    return a + b")
LOOP = fenced("def add(a, b):\n    while True:\n        pass")
CPU = fenced("def add(a, b):\n    return sum(range(10**12))")
CRASH = fenced("import os\nos._exit(7)")
EXIT = fenced("import sys\nsys.exit(3)")
SEGV = fenced("import ctypes\nctypes.string_at(0)")
SECRET = fenced("import os\n\ndef add(a, b):\n    return os.environ['OPENAI_API_KEY']")
FLOOD = fenced(
    "import sys\n\ndef add(a, b):\n"
    "    for _ in range(100):\n        sys.stdout.write('x' * 1_000_000)\n    return a - b"
)
MEMORY = fenced("def add(a, b):\n    block = bytearray(10 * 1024**3)\n    return a + b")
FORK = fenced(
    "import os\n\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n"
    "        except OSError:\n            return a + b"
)
TRUNCATED = "```python\ndef add(a, b):\n    return a +"


@dataclass(frozen=True)
class Case:
    name: str
    replies: list[str]
    passed: bool
    repairs: int = 0
    runs: int = 1
    outcome: str | None = "passed"
    options: dict[str, Any] = field(default_factory=dict)
    winner: int | None = None  # for candidates: the index of the chosen one


CORPUS = [
    Case("right at once", [RIGHT], True),
    Case("wrong answer fixed on repair", [WRONG, RIGHT], True, 1, 2, options={"repair": 1}),
    Case("wrong answer, no repairs allowed", [WRONG, RIGHT], False, 0, 1, "failed"),
    Case(
        "wrong twice, fixed on the third", [WRONG, WRONG, RIGHT], True, 2, 3, options={"repair": 3}
    ),
    Case("repairs run out", [WRONG], False, 2, 3, "failed", {"repair": 2}),
    Case("syntax error fixed on repair", [BROKEN, RIGHT], True, 1, 1, options={"repair": 1}),
    Case("syntax error never runs tests", [BROKEN], False, 0, 0, None),
    Case("truncated reply never runs tests", [TRUNCATED], False, 0, 0, None),
    Case("truncated, then complete", [TRUNCATED, RIGHT], True, 1, 1, options={"repair": 1}),
    Case("infinite loop times out", [LOOP], False, 0, 1, "timeout"),
    Case("timeout, then fixed", [LOOP, RIGHT], True, 1, 2, options={"repair": 1}),
    Case("CPU burn times out", [CPU], False, 0, 1, "timeout"),
    Case("a crash at import", [CRASH], False, 0, 1, "crashed"),
    Case("sys.exit at import", [EXIT], False, 0, 1, "crashed"),
    Case("a segfault", [SEGV], False, 0, 1, "killed"),
    Case("crash, then fixed", [CRASH, RIGHT], True, 1, 2, options={"repair": 1}),
    Case("reading a secret fails", [SECRET], False, 0, 1, "failed"),
    Case("output flood is trimmed", [FLOOD], False, 0, 1, "failed"),
    Case("10 GB allocation", [MEMORY], False, 0, 1, "memory"),
    Case("fork bomb is contained", [FORK], True, 0, 1, "passed"),
    Case("half right: most tests", [HALF], False, 0, 1, "failed"),
    Case(
        "only the third candidate passes",
        [WRONG, BROKEN, RIGHT],
        True,
        0,
        1,
        options={"candidates": 3},
        winner=2,
    ),
    Case(
        "the first passing candidate wins",
        [RIGHT, WRONG, RIGHT],
        True,
        0,
        1,
        options={"candidates": 3},
        winner=0,
    ),
    Case(
        "no candidate passes: most passing tests",
        [WRONG, HALF, BROKEN],
        False,
        0,
        1,
        "failed",
        {"candidates": 3},
        winner=1,
    ),
    Case(
        "candidates repaired",
        [WRONG, WRONG, RIGHT],
        True,
        1,
        2,
        options={"candidates": 2, "repair": 1},
    ),
]


def _run(case: Case, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret-1234")
    gen = muse.load("fake:script", responses=case.replies)
    options = dict(case.options)
    result = CodeGenerationTemplate("python").run(
        gen,
        "add two numbers",
        tests=ADD_TESTS,
        limits=FAST,
        repair_attempts=options.pop("repair", 0),
        **options,
    )
    return gen, result


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_corpus(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    gen, result = _run(case, monkeypatch)
    assert result.tests_passed is case.passed and result.ok is case.passed
    assert (result.repairs, result.runs) == (case.repairs, case.runs)
    report = result.test_report
    assert (report.outcome if report else None) == case.outcome
    if case.winner is not None:
        assert result.candidates[case.winner].code == result.code
        assert len(result.candidates) == case.options["candidates"]
    assert "sk-parent-secret-1234" not in str(report)
    assert result.usage.completion_tokens > 0
    assert gen.calls == 1 + sum(c.repairs for c in result.candidates or [result])


def test_the_repair_prompt_quotes_the_failing_test(monkeypatch: pytest.MonkeyPatch) -> None:
    gen, _ = _run(Case("", [WRONG, RIGHT], True, options={"repair": 1}), monkeypatch)
    prompt = str(gen.prompts[-1])
    assert "fails its tests" in prompt and "return a - b" in prompt
    assert "test_small" in prompt and "assert add(2, 3) == 5" in prompt


def test_the_repair_prompt_is_in_the_templates_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = muse.load("fake:script", responses=[WRONG, RIGHT])
    CodeGenerationTemplate("python", locale="zh").run(
        gen, "两数相加", tests=ADD_TESTS, limits=FAST, repair_attempts=1
    )
    assert "没有通过测试" in str(gen.prompts[-1]) and "测试报告" in str(gen.prompts[-1])


def test_a_flood_is_trimmed_in_the_report_and_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    gen, result = _run(Case("", [FLOOD, RIGHT], True, options={"repair": 1}), monkeypatch)
    assert len(str(gen.prompts[-1])) < 6000
    assert result.candidates == () and result.tests_passed


def test_usage_adds_up_across_candidates_and_repairs() -> None:
    responses = [WRONG, WRONG, RIGHT, RIGHT]
    gen = muse.load("fake:script", responses=responses)
    result = CodeGenerationTemplate("python").run(
        gen, "add", tests=ADD_TESTS, limits=FAST, candidates=2, repair_attempts=1
    )
    # One call with n=2, then one repair per candidate still failing: responses in order.
    replies = responses[: 2 + gen.calls - 1]
    completion = sum(len(tokenize(r)) for r in replies)
    assert gen.calls in (2, 3) and result.tests_passed
    assert result.usage.completion_tokens == completion
    assert sum(c.usage.completion_tokens for c in result.candidates) == completion


def test_tests_from_a_file_and_from_a_callable(tmp_path: Path) -> None:
    path = tmp_path / "test_add.py"
    path.write_text(ADD_TESTS)
    template = CodeGenerationTemplate("python")
    from_file = template.run(muse.load("fake:script", responses=[RIGHT]), "add", tests=path)
    assert from_file.tests_passed and from_file.test_report.tests_run == 2

    def check(code: str) -> None:
        assert "a + b" in code, "the code must add"

    failing = template.run(muse.load("fake:script", responses=[WRONG, RIGHT]), "add", tests=check)
    assert failing.tests_passed is False
    assert "the code must add" in failing.test_report.failures[0].message
    fixed = template.run(
        muse.load("fake:script", responses=[WRONG, RIGHT]), "add", tests=check, repair_attempts=1
    )
    assert fixed.tests_passed and fixed.repairs == 1


async def test_arun_matches_run(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = muse.load("fake:script", responses=[WRONG, BROKEN, RIGHT])
    result = await CodeGenerationTemplate("python").arun(
        gen, "add", tests=ADD_TESTS, limits=FAST, candidates=3
    )
    assert result.tests_passed and [c.tests_passed for c in result.candidates] == [
        False,
        False,
        True,
    ]
    repaired = await CodeGenerationTemplate("python").arun(
        muse.load("fake:script", responses=[WRONG, RIGHT]),
        "add",
        tests=ADD_TESTS,
        limits=FAST,
        repair_attempts=1,
    )
    assert (repaired.tests_passed, repaired.repairs, repaired.runs) == (True, 1, 2)


def test_without_tests_nothing_runs() -> None:
    result = CodeGenerationTemplate("python").run(muse.load("fake:script", responses=[WRONG]), "x")
    assert (result.tests_passed, result.test_report, result.runs, result.ok) == (
        None,
        None,
        0,
        True,
    )


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"candidates": 0}, InvalidParameterError),
        ({"candidates": 2, "n": 2}, InvalidParameterError),
        ({"tests": 42}, TemplateError),
        ({"test_command": ["node", "--test"]}, TemplateError),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        CodeGenerationTemplate("python").run(
            muse.load("fake:script", responses=[RIGHT]), "x", **kwargs
        )


def test_non_python_tests_need_a_command() -> None:
    with pytest.raises(TemplateError, match="test_command"):
        CodeGenerationTemplate("javascript").run(
            muse.load("fake:script", responses=[RIGHT]), "x", tests="test('x', () => {})"
        )


def test_a_test_command_runs_in_the_sandbox(tmp_path: Path) -> None:
    script = fenced("add() { echo $(( $1 + $2 )); }", "bash")
    tests = '. ./solution.sh\n[ "$(add 2 3)" = 5 ] || { echo "add 2 3 is not 5"; exit 1; }\n'
    wrong = fenced("add() { echo $(( $1 - $2 )); }", "bash")
    template = CodeGenerationTemplate("bash")
    ok = template.run(
        muse.load("fake:script", responses=[script]),
        "add",
        tests=tests,
        test_command=["bash", "test_solution.sh"],
        limits=FAST,
    )
    assert ok.tests_passed and ok.test_report.outcome == "passed"
    bad = template.run(
        muse.load("fake:script", responses=[wrong]),
        "add",
        tests=tests,
        test_command=["bash", "test_solution.sh"],
        limits=FAST,
    )
    assert bad.tests_passed is False and "add 2 3 is not 5" in bad.test_report.summary()


#: language -> (a reply that does not parse, the repaired reply)
NON_PYTHON = {
    "javascript": (
        "function add(a, b) {\n  return a + ;\n}",
        "function add(a, b) {\n  return a + b;\n}",
    ),
    "typescript": (
        "function add(a: number, b: number: number {\n  return a + b;\n}",
        "function add(a: number, b: number): number {\n  return a + b;\n}",
    ),
    "go": (
        "package main\n\nfunc add(a int, b int) int {\n\treturn a +\n",
        "package main\n\nfunc add(a int, b int) int {\n\treturn a + b\n}",
    ),
    "rust": (
        "fn add(a: i32, b: i32) -> i32 {\n    a + b\n",
        "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}",
    ),
    "java": (
        "class Add {\n  int add(int a, int b) {\n    return a + b\n  }\n}",
        "class Add {\n  int add(int a, int b) {\n    return a + b;\n  }\n}",
    ),
    "c": (
        "int add(int a, int b) {\n  return a + b\n}",
        "int add(int a, int b) {\n  return a + b;\n}",
    ),
    "bash": ("add() {\n  echo $(( $1 + $2 ))\n", "add() {\n  echo $(( $1 + $2 ))\n}"),
    "json": ('{"a": 1, "b": }', '{"a": 1, "b": 2}'),
    "css": ("body { color: red;\n", "body { color: red; }"),
}


@pytest.mark.parametrize("language", sorted(NON_PYTHON))
def test_non_python_syntax_errors_are_repaired(language: str) -> None:
    broken, fixed = NON_PYTHON[language]
    gen = muse.load("fake:script", responses=[fenced(broken, language), fenced(fixed, language)])
    template = CodeGenerationTemplate(language)
    unrepaired = template.run(muse.load("fake:script", responses=[fenced(broken, language)]), "x")
    assert unrepaired.syntax_error is not None and not unrepaired.ok
    assert unrepaired.syntax is not None and unrepaired.syntax.problem is not None
    assert unrepaired.syntax.problem.line >= 1 and unrepaired.syntax.problem.column >= 1
    result = template.run(gen, "x", repair_attempts=1)
    assert (result.ok, result.repairs, result.code) == (True, 1, fixed)
    assert unrepaired.syntax_error in str(gen.prompts[-1])


def test_the_example_runs_against_an_openai_compatible_server(tmp_path: Path) -> None:
    import os
    import runpy
    import subprocess
    import sys

    from tests.servers.openai_server import OpenAIServer, Reply

    example = Path(__file__).resolve().parents[2] / "examples" / "codegen_tested.py"
    namespace = runpy.run_path(str(example), run_name="example")
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    with OpenAIServer(default=Reply(text=namespace["RIGHT"], usage=True)) as server:
        run = subprocess.run(
            [sys.executable, str(example), "--base-url", server.url, "--model", "m"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=env,
        )
        sent = server.requests[0].json
    assert run.returncode == 0, run.stderr
    assert "the code passed its tests" in run.stdout
    assert sent["n"] == 3 and sent["model"] == "m"


def test_a_test_command_for_python_gets_py_files(tmp_path: Path) -> None:
    import sys

    tests = "from solution import add\nassert add(2, 3) == 5, 'add is wrong'\n"
    result = CodeGenerationTemplate("python").run(
        muse.load("fake:script", responses=[WRONG]),
        "add",
        tests=tests,
        test_command=[sys.executable, "test_solution.py"],
        limits=FAST,
    )
    assert result.tests_passed is False and "add is wrong" in result.test_report.summary()
