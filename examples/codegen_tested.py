"""Code that has passed your tests: candidates, a sandbox, and repair from the failures.

    python examples/codegen_tested.py                          # offline: fake provider, scripted
    python examples/codegen_tested.py --base-url http://127.0.0.1:8000/v1 --model MODEL
    OPENAI_API_KEY=sk-... python examples/codegen_tested.py --model gpt-4o-mini

Offline, three scripted candidates come back at once (candidates=3): one is wrong, one does not
parse, one has an off-by-one bug. Each is tested in the sandbox in parallel, and each failing one
is sent back with its failures (repair_attempts=2) until one passes its tests.
"""

import argparse
import os

import muse_sdk as muse
from muse_sdk.sandbox import Limits
from muse_sdk.templates import CodeGenerationTemplate

REQUIREMENT = "A function fizzbuzz(n) that returns the FizzBuzz sequence from 1 to n as strings."

TESTS = """\
from solution import fizzbuzz


def test_start():
    assert fizzbuzz(5) == ["1", "2", "Fizz", "4", "Buzz"]


def test_fifteen():
    assert fizzbuzz(15)[-1] == "FizzBuzz"


def test_empty():
    assert fizzbuzz(0) == []
"""

WRONG = "```python\ndef fizzbuzz(n):\n    return [str(i) for i in range(1, n + 1)]\n```"
BROKEN = "```python\ndef fizzbuzz(n)\n    return []\n```"
OFF_BY_ONE = """```python
def fizzbuzz(n):
    out = []
    for i in range(1, n):
        if i % 15 == 0:
            out.append("FizzBuzz")
        elif i % 3 == 0:
            out.append("Fizz")
        elif i % 5 == 0:
            out.append("Buzz")
        else:
            out.append(str(i))
    return out
```"""
RIGHT = OFF_BY_ONE.replace("range(1, n)", "range(1, n + 1)")


def generator(args: argparse.Namespace) -> muse.Generator:
    if args.base_url or os.environ.get("OPENAI_API_KEY"):
        key = os.environ.get("OPENAI_API_KEY", "none")
        return muse.load(f"openai:{args.model}", base_url=args.base_url, api_key=key)
    return muse.load("fake:script", responses=[WRONG, BROKEN, OFF_BY_ONE, RIGHT])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible server, e.g. vLLM or muse serve")
    parser.add_argument("--model", default="gpt-4o-mini")
    args = parser.parse_args()

    def progress(candidate: int, result: muse.CodeResult) -> None:
        report = result.test_report
        verdict = report.summary().splitlines()[0] if report else result.syntax_error
        print(f"candidate {candidate + 1}, repair {result.repairs}: {verdict}")

    with generator(args) as gen:
        result = CodeGenerationTemplate("python").run(
            gen,
            REQUIREMENT,
            tests=TESTS,
            candidates=3,
            repair_attempts=2,
            limits=Limits(wall_s=5, memory_mb=256),
            on_attempt=progress,
        )
    status = "passed its tests" if result.tests_passed else "failed (best attempt shown)"
    print(f"--- the code {status}; {len(result.candidates)} candidates, usage {result.usage}")
    print(result.code)


if __name__ == "__main__":
    main()
