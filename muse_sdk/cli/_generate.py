"""``muse generate``: stream a completion to the terminal."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from muse_sdk.cli._errors import UsageError, stderr_console
from muse_sdk.cli._options import (
    GenerationOptions,
    MaxTokens,
    Model,
    N,
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
    from muse_sdk.core.types import GenerationResult, Usage

__all__ = ["generate", "read_prompt"]


def read_prompt(prompt: str) -> str:
    """The prompt itself, or standard input for ``-`` (without its trailing newlines)."""
    if prompt != "-":
        return prompt
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("the prompt '-' means standard input, but nothing is piped in")
    return sys.stdin.read().rstrip("\r\n")


def generate(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="The prompt; '-' reads it from standard input.")],
    model: Model = None,
    profile: ProfileName = None,
    max_tokens: MaxTokens = None,
    temperature: Temperature = None,
    top_k: TopK = None,
    top_p: TopP = None,
    n: N = None,
    seed: Seed = None,
    stop: Stop = None,
    truncate: Truncate = None,
    stream: Annotated[
        bool, typer.Option("--stream/--no-stream", help="Print tokens as they arrive.")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole result as one JSON object.")
    ] = False,
    schema: Annotated[
        Path | None,
        typer.Option("--schema", help="A JSON Schema file the reply must match; prints the JSON."),
    ] = None,
    regex: Annotated[
        str | None, typer.Option("--regex", help="A regular expression the reply must match.")
    ] = None,
    choice: Annotated[
        list[str] | None, typer.Option("--choice", help="An allowed reply (repeatable).")
    ] = None,
    repair_attempts: Annotated[
        int, typer.Option("--repair-attempts", min=0, max=10, help="Re-asks for invalid replies.")
    ] = 0,
    verbose: Verbose = False,
) -> None:
    """Generate text for PROMPT and print it (streamed by default)."""
    # Check what the command line can check before loading a model, which may take seconds.
    params = GenerationOptions(max_tokens, temperature, top_k, top_p, n, seed, stop).checked()
    shaped = _shaping(schema, regex, choice, repair_attempts)
    text = check_prompt(read_prompt(prompt))
    gen = load_generator(ctx, model, profile, truncate)
    with gen:
        if shaped:  # validated at the end: print the value, not the tokens as they come
            _print_values(gen.generate(text, **params, **shaped), as_json)
            return
        # Several choices cannot share one terminal line by line: print them when complete.
        if stream and not as_json and params.get("n", 1) == 1:
            _stream(gen, text, params, verbose)
            return
        result = gen.generate(text, **params)
    _print_result(result, as_json)
    if verbose:
        _report(gen, result.usage, result.latency_s, result.finish_reason, None)


def _shaping(
    schema: Path | None, regex: str | None, choices: list[str] | None, repairs: int
) -> dict[str, object]:
    """The ``schema``/``regex``/``choices`` parameters from the command line."""
    shaped: dict[str, object] = {}
    if schema is not None:
        try:
            shaped["schema"] = json.loads(schema.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read the schema file {schema}: {exc.strerror}") from exc
        except ValueError as exc:
            raise UsageError(f"the schema file {schema} is not JSON: {exc}") from exc
    if regex is not None:
        shaped["regex"] = regex
    if choices:
        shaped["choices"] = choices
    if repairs:
        shaped["repair_attempts"] = repairs
    return shaped


def _print_values(result: GenerationResult, as_json: bool) -> None:
    """Each choice's validated value: JSON for a schema, the text for a regex or choices."""
    if as_json:
        _print_result(result, as_json)
        return
    for choice in result.choices:
        value = choice.parsed
        line = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stream(gen: Generator, prompt: str, params: dict[str, object], verbose: bool) -> None:
    start = time.perf_counter()
    first: float | None = None
    ends_with_newline = True
    with gen.stream(prompt, **params) as stream:
        for chunk in stream:
            if chunk.text:
                first = first if first is not None else time.perf_counter() - start
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
                ends_with_newline = chunk.text.endswith("\n")
    if not ends_with_newline:
        sys.stdout.write("\n")
    sys.stdout.flush()
    if verbose:
        result = stream.result
        _report(gen, result.usage, result.latency_s, result.finish_reason, first)


def _print_result(result: GenerationResult, as_json: bool) -> None:
    if as_json:
        data = result.model_dump(mode="json")
        data["text"] = result.text
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        return
    for choice in result.choices:
        if len(result.choices) > 1:
            sys.stdout.write(f"--- choice {choice.index + 1} of {len(result.choices)} ---\n")
        sys.stdout.write(choice.text if choice.text.endswith("\n") else choice.text + "\n")
    sys.stdout.flush()


def _report(
    gen: Generator,
    usage: Usage | None,
    latency_s: float,
    finish: str | None,
    first_token_s: float | None,
) -> None:
    """One line on stderr: model, finish reason, token usage and latency."""
    parts = [f"{gen.provider}:{gen.model}", f"finish={finish or '?'}"]
    if usage is not None:
        parts.append(
            f"tokens: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion"
            f" = {usage.total_tokens}"
        )
    if first_token_s is not None:
        parts.append(f"first token {first_token_s:.2f}s")
    parts.append(f"latency {latency_s:.2f}s")
    stderr_console().print(" · ".join(parts), style="dim", markup=False)
