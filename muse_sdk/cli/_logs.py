"""``muse logs``: the recent calls in the call log, or what they cost by model and day."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from muse_sdk.cli._config import stdout_console
from muse_sdk.cli._errors import UsageError, report_error

if TYPE_CHECKING:
    from muse_sdk.calllog import CallRecord, CostRow

__all__ = ["logs"]

EMPTY = "no calls logged yet: turn logging on with MUSE_LOG=1 or log = true in muse.toml"
_EXCERPT = 60


def logs(
    n: Annotated[
        int | None,
        typer.Option(
            "-n", min=1, help="How many calls to show (default 20); with --cost, how many rows."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, with every field.")
    ] = False,
    query: Annotated[
        str | None,
        typer.Option(
            "-q",
            "--query",
            help="Only calls whose prompt, reply or error has TEXT.",
            metavar="TEXT",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Only calls of this model (provider:model or model)."),
    ] = None,
    cost: Annotated[
        bool, typer.Option("--cost", help="Calls, tokens and cost by model and day (UTC).")
    ] = False,
    path: Annotated[
        Path | None,
        typer.Option(
            "--path",
            help="The log file (default: $MUSE_LOG_PATH, else muse/logs.db in the data directory).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """List the recent calls of the call log, newest first, or (--cost) what they cost.

    Calls are logged when MUSE_LOG=1 is set or muse.toml has log = true.
    """
    from muse_sdk.calllog import CallLog, default_log_path

    if cost and query:
        raise UsageError("-q searches calls; --cost totals them: use one or the other")
    file = path if path is not None else default_log_path()
    if not file.is_file():  # reading must not create an empty log
        report_error(EMPTY, kind="info")
        return
    with CallLog(file) as log:
        if cost:
            rows = log.cost_by_day(model)
            _print_costs(rows[:n] if n else rows, as_json)
            return
        records = log.recent(n or 20, text=query, model=model)
    if not records:
        filtered = query is not None or model is not None
        report_error("no logged call matches" if filtered else EMPTY, kind="info")
    elif as_json:
        for record in records:
            sys.stdout.write(json.dumps(dataclasses.asdict(record), ensure_ascii=False) + "\n")
    else:
        _print_calls(records)


def _one_line(text: str | None, limit: int = _EXCERPT) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _money(cost: float | None) -> str:
    if cost is None:
        return "?"  # no price for the model: unknown, not free
    if cost == 0 or cost >= 1:
        return f"${cost:,.2f}"
    text = f"{cost:.6f}".rstrip("0")  # a call often costs a fraction of a cent
    return f"${text}" if text != "0." else "<$0.000001"


def _print_calls(records: Sequence[CallRecord]) -> None:
    from rich.table import Table
    from rich.text import Text

    rows: list[tuple[list[str], Text]] = []
    for record in records:
        fixed = [
            time.strftime("%m-%d %H:%M:%S", time.localtime(record.started_at)),
            record.spec,
            f"{record.prompt_tokens}+{record.completion_tokens}",
            _money(record.cost),
            f"{record.latency_s:.2f}s",
        ]
        exchange = Text(_one_line(record.prompt, _EXCERPT // 2) + " → ")
        if record.error is not None:
            exchange.append(_one_line(record.error), style="red")
        else:
            exchange.append(_one_line(record.reply))
        marks = [m for m, on in (("cached", record.cached), ("stream", record.stream)) if on]
        if record.attempts > 1:
            marks.append(f"{record.attempts} attempts")
        if marks:
            exchange.append(f" ({', '.join(marks)})", style="dim")
        rows.append((fixed, exchange))
    console = stdout_console()
    table = Table(box=None, pad_edge=False)
    widths = [
        max(len(name), *(len(fixed[i]) for fixed, _ in rows))
        for i, name in enumerate(("time", "model", "tokens", "cost", "latency"))
    ]
    for name, width in zip(("time", "model", "tokens", "cost", "latency"), widths, strict=True):
        table.add_column(name, no_wrap=True, min_width=width)
    # One line per call: the exchange is cut to what the terminal leaves (--json has it whole);
    # cut here, since rich would rather drop whole columns than shorten an unwrappable one.
    room = max(14, console.width - sum(widths) - 2 * len(widths))
    table.add_column("prompt → reply", no_wrap=True)
    for fixed, exchange in rows:
        exchange.truncate(room, overflow="ellipsis")
        table.add_row(*(Text(cell) for cell in fixed), exchange)
    console.print(table)


def _print_costs(rows: Sequence[CostRow], as_json: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    if not rows:
        report_error(EMPTY, kind="info")
        return
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(dataclasses.asdict(row)) + "\n")
        return
    table = Table(box=None)
    for name in ("day (UTC)", "model", "calls", "tokens", "cost"):
        table.add_column(
            name, no_wrap=True, justify="left" if name in ("day (UTC)", "model") else "right"
        )
    for row in rows:
        cost = _money(row.cost)
        if row.unpriced and row.cost is not None:
            cost += f" + {row.unpriced} unpriced"
        tokens = f"{row.prompt_tokens}+{row.completion_tokens}"
        table.add_row(row.day, Text(row.model), str(row.calls), tokens, cost)
    known = [row.cost for row in rows if row.cost is not None]
    unpriced = sum(row.unpriced for row in rows)
    total = _money(sum(known)) if known else "?"
    if unpriced:
        total += f" ({unpriced} calls unpriced)"
    table.add_section()
    table.add_row("total", "", str(sum(row.calls for row in rows)), "", total)
    stdout_console().print(table)
