"""``muse code``: ask for code, keep only the code, and check it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    Verbose,
    load_generator,
)

if TYPE_CHECKING:
    from muse_sdk.templates import CodeResult

__all__ = ["code"]


def code(
    ctx: typer.Context,
    requirement: Annotated[
        str, typer.Argument(help="What the code should do; '-' reads it from standard input.")
    ],
    language: Annotated[
        str, typer.Option("--language", "-l", help="Language of the code.")
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
        int, typer.Option("--repair", min=0, help="Re-ask up to N times while it does not parse.")
    ] = 0,
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
    verbose: Verbose = False,
) -> None:
    """Generate code for REQUIREMENT and write only the extracted code.

    Syntax errors (Python) and truncated replies are reported on stderr with exit code 4; the
    code is still written, so that you can fix it by hand.
    """
    from muse_sdk.templates import CodeGenerationTemplate

    template = CodeGenerationTemplate(
        language,
        sections=section or (),
        constraints=constraint or (),
        locale=locale,  # type: ignore[arg-type]  # the template validates and names the choices
    )
    options = GenerationOptions(max_tokens, temperature, top_k, top_p, None, seed, stop)
    text = read_prompt(requirement)
    with load_generator(ctx, model, profile) as gen:
        result = template.run(gen, text, repair_attempts=repair, **options.params())
    if verbose:
        _describe(result)
    if not result.code.strip():
        report_error("the reply holds no code; nothing was written")
        raise typer.Exit(ExitCode.CODE_CHECK)
    _write(result.code, output)
    _check(result, output)


def _write(code: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(code + "\n")
        sys.stdout.flush()
        return
    output.write_text(code + "\n", encoding="utf-8")


def _describe(result: CodeResult) -> None:
    tags = ", ".join(tag or "untagged" for tag, _ in result.blocks) or "none"
    lines = len(result.code.splitlines())
    repairs = f", {result.repairs} repair(s)" if result.repairs else ""
    summary = f"{result.language} code, {lines} line(s); fenced blocks: {tags}{repairs}"
    report_error(summary, kind="info")


def _check(result: CodeResult, output: Path | None) -> None:
    """Exit with CODE_CHECK when the code is truncated or does not parse (it is kept anyway)."""
    kept = f" (written to {output} anyway)" if output is not None else ""
    problems = []
    if result.truncated:
        problems.append("is truncated: the reply ended inside a code block (raise --max-tokens)")
    if result.syntax_error is not None:
        problems.append(f"does not parse: {result.syntax_error}")
    for problem in problems:
        report_error(f"the generated code {problem}{kept}")
    if problems:
        raise typer.Exit(ExitCode.CODE_CHECK)
    if output is not None:
        report_error(f"wrote {output}", kind="info")
