"""``muse code``: ask for code, keep only the code, and check it."""

from __future__ import annotations

import shlex
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from muse_sdk.cli._errors import ExitCode, report_error
from muse_sdk.cli._generate import read_prompt
from muse_sdk.cli._options import (
    GenerationOptions,
    MaxTokens,
    Model,
    ProfileName,
    Seed,
    Stop,
    Temperature,
    TopK,
    TopP,
    Truncate,
    Verbose,
    check_prompt,
    load_generator,
)

if TYPE_CHECKING:
    from muse_sdk.core.generator import Generator
    from muse_sdk.templates import CodeGenerationTemplate, CodeResult

__all__ = ["code"]


def code(
    ctx: typer.Context,
    requirement: Annotated[
        str, typer.Argument(help="What the code should do; '-' reads it from standard input.")
    ],
    language: Annotated[
        str,
        typer.Option(
            "--language",
            "-l",
            help="Language of the code: python, bash, javascript, typescript, go, rust, sql, "
            "cpp, java, ... (see docs/cli.md).",
        ),
    ] = "python",
    locale: Annotated[
        str, typer.Option("--locale", help="Language of the prompt: en or zh.")
    ] = "en",
    section: Annotated[
        list[str] | None,
        typer.Option("--section", "-s", help="What the code should include (repeatable)."),
    ] = None,
    constraint: Annotated[
        list[str] | None, typer.Option("--constraint", help="An extra rule (repeatable).")
    ] = None,
    repair: Annotated[
        int,
        typer.Option(
            "--repair", min=0, help="Re-ask up to N times while it does not parse or fails --test."
        ),
    ] = 0,
    test: Annotated[
        Path | None,
        typer.Option(
            "--test",
            exists=True,
            dir_okay=False,
            help="Tests the code must pass, run in a sandbox: pytest-style test functions for "
            "Python ('from solution import ...'), or the test file --test-command runs.",
            rich_help_panel="Tests",
        ),
    ] = None,
    test_command: Annotated[
        str | None,
        typer.Option(
            "--test-command",
            help="For other languages: the command that runs the tests in the sandbox, e.g. "
            "'node --test' (the code is solution.<ext>, the tests the --test file).",
            rich_help_panel="Tests",
        ),
    ] = None,
    candidates: Annotated[
        int,
        typer.Option(
            "--candidates",
            min=1,
            help="Ask for N replies and work on them in parallel; keep the first that passes.",
            rich_help_panel="Tests",
        ),
    ] = 1,
    primed: Annotated[
        bool | None,
        typer.Option(
            "--primed/--no-primed",
            help="End the prompt inside an opened code fence, so that the reply is the code "
            "(default: for text-completion models, such as GPT-2 and muse-tiny).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the code to this file instead of stdout."),
    ] = None,
    model: Model = None,
    profile: ProfileName = None,
    max_tokens: MaxTokens = None,
    temperature: Temperature = None,
    top_k: TopK = None,
    top_p: TopP = None,
    seed: Seed = None,
    stop: Stop = None,
    truncate: Truncate = None,
    verbose: Verbose = False,
) -> None:
    """Generate code for REQUIREMENT and write only the extracted code.

    Exit code 4 when the code is truncated, does not parse, or fails --test, and it is still
    written, so that you can fix it by hand; or when the reply holds no code, and nothing is
    written. With --test, exit code 0 means the tests passed.
    """
    from muse_sdk.templates._code import check_language
    from muse_sdk.templates._extract import has_fence

    # Everything the command line can check is checked before a model loads (seconds, maybe).
    template = _template(check_language(language), locale, section, constraint, primed)
    params = GenerationOptions(max_tokens, temperature, top_k, top_p, None, seed, stop).checked()
    text = read_prompt(requirement)
    check_prompt(template.render(text))
    with load_generator(ctx, model, profile, truncate) as gen:
        if primed is None and not _takes_chat(gen):
            template = _template(template.language, locale, section, constraint, True)
        result = template.run(
            gen,
            text,
            repair_attempts=repair,
            tests=test.read_text(encoding="utf-8") if test is not None else None,
            test_command=shlex.split(test_command) if test_command else None,
            candidates=candidates,
            on_attempt=_progress(candidates) if test is not None or candidates > 1 else None,
            **params,
        )
    # Without a fence, extraction falls back to the whole reply: prose, from a chat model.
    fenced = template.primed or has_fence(result.raw)
    if verbose:
        _describe(result, fenced)
    if not fenced or not result.code.strip():
        _no_code(result, fenced, verbose)
    _write(result.code, output)
    _check(result, output)


def _template(
    language: str,
    locale: str,
    sections: list[str] | None,
    constraints: list[str] | None,
    primed: bool | None,
) -> CodeGenerationTemplate:
    from muse_sdk.templates import CodeGenerationTemplate

    return CodeGenerationTemplate(
        language,
        sections=sections or (),
        constraints=constraints or (),
        locale=locale,  # type: ignore[arg-type]  # the template validates and names the choices
        primed=bool(primed),
    )


def _progress(count: int) -> Callable[[int, CodeResult], None]:
    """One stderr line per check of a candidate (candidates are checked in parallel)."""
    lock = threading.Lock()

    def show(candidate: int, result: CodeResult) -> None:
        which = f"candidate {candidate + 1}/{count}" if count > 1 else "the code"
        attempt = f" (repair {result.repairs})" if result.repairs else ""
        with lock:
            report_error(f"{which}{attempt}: {_verdict(result)}", kind="info")

    return show


def _verdict(result: CodeResult) -> str:
    if result.truncated:
        return "truncated"
    if result.syntax_error is not None:
        return f"does not parse: {result.syntax_error}"
    report = result.test_report
    if report is None:
        return "parses"
    if report.passed:
        return f"passed {report.tests_run} test(s)"
    if report.outcome == "failed":
        return f"failed {report.tests_run - report.tests_passed} of {report.tests_run} test(s)"
    return f"{report.outcome}: {report.message}"


def _takes_chat(gen: Generator) -> bool:
    """Whether ``gen`` is a chat model; a text-completion model refuses chat messages."""
    from muse_sdk.errors import UnsupportedParameterError

    try:
        gen.make_request([{"role": "user", "content": "?"}], {})
    except UnsupportedParameterError:
        return False
    return True


def _no_code(result: CodeResult, fenced: bool, verbose: bool) -> NoReturn:
    """Exit with CODE_CHECK, writing nothing: the reply holds no code."""
    why = "an empty code block" if fenced else "no code block (```...```)"
    hint = "" if verbose or fenced else "; -v shows the reply"
    report_error(f"the reply holds {why}; nothing was written{hint}")
    if verbose and not fenced:
        report_error(str(getattr(result.raw, "text", result.raw)), kind="reply")
    raise typer.Exit(ExitCode.CODE_CHECK)


def _write(code: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(code + "\n")
        sys.stdout.flush()
        return
    output.write_text(code + "\n", encoding="utf-8")


def _describe(result: CodeResult, fenced: bool) -> None:
    tags = ", ".join(tag or "untagged" for tag, _ in result.blocks) if fenced else "none"
    lines = len(result.code.splitlines())
    repairs = f", {result.repairs} repair(s)" if result.repairs else ""
    summary = f"{result.language} code, {lines} line(s); fenced blocks: {tags}{repairs}"
    report_error(summary, kind="info")


def _check(result: CodeResult, output: Path | None) -> None:
    """Exit with CODE_CHECK when the code is truncated, does not parse or fails its tests."""
    kept = f" (written to {output} anyway)" if output is not None else ""
    problems = []
    if result.truncated:
        problems.append("is truncated: the reply ended inside a code block (raise --max-tokens)")
    if result.syntax_error is not None:
        problems.append(f"does not parse: {result.syntax_error}")
    elif result.tests_passed is False and result.test_report is not None:
        problems.append(f"fails its tests: {result.test_report.summary()}")
    for problem in problems:
        report_error(f"the generated code {problem}{kept}")
    if problems:
        raise typer.Exit(ExitCode.CODE_CHECK)
    if output is not None:
        report_error(f"wrote {output}", kind="info")
