"""Every bench, one after another, then one summary table of their headline figures.

`make bench` runs this at the sizes that fit about ten minutes on 2 cores; `--full` passes
`--full` to every bench, for the sizes README's Performance table is held to (much longer).
Each bench prints its own details as it goes; each records its headline rows (what, figure,
target, met) in a file this runner names in ORDERFLOW_BENCH_SUMMARY, and the table at the end
shows them all, with how long each bench took. A bench that fails is shown as failed and makes
the runner exit non-zero; the others still run.

Run: make bench   (or .venv/bin/python bench/all.py [--full] [--only stock,holds])
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
# In the order the issues that set their targets were filed.
BENCHES = ["holds", "throughput", "stock", "promises", "credentials", "web", "chaos"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every bench at its full size")
    parser.add_argument("--only", default="", help="comma-separated benches to run")
    args = parser.parse_args()
    chosen = [b for b in args.only.split(",") if b] or BENCHES
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        parser.error(f"no bench named {', '.join(unknown)}; there are {', '.join(BENCHES)}")
    # Wide enough for the table when printed to a file or CI's log rather than a terminal.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    rows: list[dict[str, object]] = []
    failed: list[str] = []
    took: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="orderflow-bench-") as tmp:
        summary = Path(tmp) / "summary.jsonl"
        summary.touch()
        for name in chosen:
            script = HERE / f"{name}.py"
            if not script.exists():
                continue
            cmd = [sys.executable, str(script)] + (["--full"] if args.full else [])
            console.rule(f"bench/{name}.py{' --full' if args.full else ''}")
            began = time.monotonic()
            code = subprocess.call(cmd, env=os.environ | {"ORDERFLOW_BENCH_SUMMARY": str(summary)})
            took[name] = time.monotonic() - began
            if code != 0:
                failed.append(name)
        for line in summary.read_text(encoding="utf-8").splitlines():
            rows.append(json.loads(line))
    table = Table(title=f"orderflow benches ({'full' if args.full else 'make bench'} sizes)")
    for col in ("bench", "what", "figure", "target", "met"):
        table.add_column(col, overflow="fold")
    for name in chosen:
        mine = [r for r in rows if r["bench"] == name]
        for r in mine:
            met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[r["met"]]  # type: ignore[index]
            table.add_row(name, str(r["what"]), str(r["figure"]), str(r["target"]), met)
        if name in took:
            state = "[red]failed[/]" if name in failed else ""
            table.add_row(name, "(bench's own run time)", f"{took[name]:.0f} s", "", state)
        table.add_section()
    console.print(table)
    if failed:
        console.print(f"[red]failed:[/] {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
