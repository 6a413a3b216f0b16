"""``muse batch``: many prompts, one JSON line each, a progress bar, and resumable runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from muse_sdk.cli._errors import ExitCode, report_error, stderr_console
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
    load_generator,
)
from muse_sdk.cli._records import (
    Item,
    compact,
    make_record,
    read_items,
    read_previous,
    write_record,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from muse_sdk.core.batch import BatchItem
    from muse_sdk.core.generator import Generator

__all__ = ["batch"]


def batch(
    ctx: typer.Context,
    input_file: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="Prompts: a .txt file (one per non-blank line) or .jsonl "
            '(a JSON string or {"prompt": ..., "id": ...} per line).',
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The results file (JSON lines); reruns resume it."),
    ],
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Prompts in flight at once.")
    ] = 8,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Show a progress bar on stderr (default: when stderr is a terminal).",
            show_default=False,
        ),
    ] = None,
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
) -> None:
    """Generate for every prompt of INPUT and write one JSON line per prompt to --output.

    Rerunning the same command skips the prompts already answered and retries the failed ones.
    Exit code 3 when some prompts failed; their lines carry an "error".
    """
    # Bad options fail before any model loads; a bad prompt fails only its own line.
    params = GenerationOptions(max_tokens, temperature, top_k, top_p, n, seed, stop).checked()
    items = read_items(input_file)
    records = read_previous(output, items)
    todo = [item for item in items if records.get(item.index, {}).get("error", True) is not None]
    resumed = len(items) - len(todo)
    if todo:
        with load_generator(ctx, model, profile, truncate) as gen:
            try:
                _run(gen, todo, records, output, concurrency, params, progress, len(items))
            except KeyboardInterrupt:
                compact(output, records.values())
                report_error(
                    f"interrupted: {len(records)} results kept in {output}; "
                    "rerun the same command to resume"
                )
                raise typer.Exit(ExitCode.INTERRUPTED) from None
    if records or output.exists():
        compact(output, records.values())
    _summarize(records, len(items), resumed, output)


def _run(
    gen: Generator,
    todo: list[Item],
    records: dict[int, dict[str, Any]],
    output: Path,
    concurrency: int,
    params: dict[str, Any],
    show: bool | None,
    total: int,
) -> None:
    """Run ``todo`` through ``gen.batch``, appending each result to the file as it finishes."""
    name = f"{gen.provider}:{gen.model}"
    failed = sum(1 for r in records.values() if r.get("error") is not None)
    with (
        _bar(total, total - len(todo), show) as (bar, task),
        output.open("a", encoding="utf-8") as out,
    ):

        def save(position: int, outcome: BatchItem) -> None:
            nonlocal failed
            item = todo[position]
            record = make_record(item, outcome, name)
            write_record(out, record)
            previous = records.get(item.index, {})
            failed += (record.get("error") is not None) - (previous.get("error") is not None)
            records[item.index] = record
            bar.update(task, advance=1, failed=failed)

        gen.batch(
            [item.prompt for item in todo], max_concurrency=concurrency, on_result=save, **params
        )


@contextmanager
def _bar(total: int, done: int, show: bool | None) -> Iterator[tuple[Progress, TaskID]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = stderr_console()
    enabled = console.is_terminal if show is None else show
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not enabled) as bar:
        task = bar.add_task("prompts", total=total, completed=done, failed=0)
        yield bar, task


def _summarize(records: dict[int, dict[str, Any]], total: int, resumed: int, output: Path) -> None:
    failed = sorted(i for i, r in records.items() if r.get("error") is not None)
    noun = "prompt" if total == 1 else "prompts"
    line = (
        f"{total} {noun}: {total - len(failed)} succeeded ({resumed} from an earlier run), "
        f"{len(failed)} failed; results in {output}"
    )
    report_error(line, kind="info")
    if failed:
        first = records[failed[0]]["error"]
        report_error(
            f"{len(failed)} of {total} prompts failed (first: prompt {failed[0]}: "
            f"{first['type']}: {first['message']}); rerun the same command to retry them"
        )
        raise typer.Exit(ExitCode.PARTIAL)
