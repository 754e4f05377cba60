"""Where the Temporal server's CPU goes for an order, against the bare with a child: runs
``bench/throughput.py`` while ``perf`` samples the dev server, and prints each side's server CPU
per order by the server's request handlers and queue tasks, most different first.

The ``temporal`` binary is stripped of its ELF symbols but keeps Go's own function table
(``.gopclntab``), which this reads to name the sampled addresses. Only the measured rounds count
(not the warm-ups), each side's by its own rounds' time span; the server's work that ends
after a round (its visibility queue's, mostly) may fall into the next side's span.

Needs ``perf`` (Debian's ``linux-perf``) and ``readelf``; a diagnostic, not part of
``make bench``.

Run: .venv/bin/python bench/server_profile.py [--orders 300] [--rounds 3] [--obligations]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput

from orderflow.devserver import temporal_binary

SIDES = ("orderflow", "bare_child")
# The server's entry points: a request's handler, or a queue task's executor.
HANDLER = re.compile(
    r"\(\*(Handler|WorkflowHandler|historyEngineImpl|visibilityQueueTaskExecutor|"
    r"transferQueueActiveTaskExecutor|timerQueueActiveTaskExecutor|matchingEngineImpl)\)\.\w+$"
)


class GoFunctions:
    """Function names by address, from a Go binary's ``.gopclntab`` (Go 1.18 and later)."""

    def __init__(self, binary: Path) -> None:
        sections = subprocess.run(
            ["readelf", "-SW", str(binary)], capture_output=True, text=True, check=True
        ).stdout
        found: dict[str, tuple[int, int, int]] = {}
        for line in sections.splitlines():
            m = re.search(r"\]\s+(\.\w+)\s+\w+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
            if m:
                found[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16), int(m.group(4), 16))
        _, offset, size = found[".gopclntab"]
        with binary.open("rb") as f:
            f.seek(offset)
            table = f.read(size)
        if struct.unpack_from("<I", table)[0] not in (0xFFFFFFF0, 0xFFFFFFF1):
            raise SystemExit(f"{binary}: not a function table of Go 1.18 or later")
        word = table[7]
        fmt = "<Q" if word == 8 else "<I"
        nfunc, _, text, names, _, _, _, funcs = (
            struct.unpack_from(fmt, table, 8 + i * word)[0] for i in range(8)
        )
        text = text or found[".text"][0]  # a stripped binary may leave it to the loader
        self.starts: list[int] = []
        self.names: list[str] = []
        for i in range(nfunc):
            entry, at = struct.unpack_from("<II", table, funcs + i * 8)
            name_at = names + struct.unpack_from("<i", table, funcs + at + 4)[0]
            self.starts.append(text + entry)
            self.names.append(table[name_at : table.index(b"\0", name_at)].decode(errors="replace"))

    def name(self, address: int) -> str:
        i = bisect.bisect_right(self.starts, address) - 1
        return self.names[i] if i >= 0 else hex(address)


class Sampling:
    """``perf`` on the dev server from its start, and the measured rounds' time spans."""

    hz = 499
    perf: subprocess.Popen[bytes] | None = None
    out = Path(tempfile.mkdtemp(prefix="orderflow-server-profile-")) / "perf.data"
    spans: list[tuple[str, float, float]] = []


def start_perf(pid: int) -> None:
    Sampling.perf = subprocess.Popen(
        [
            *("perf", "record", "-k", "CLOCK_MONOTONIC", "-F", str(Sampling.hz), "-g"),
            *("-p", str(pid), "-o", str(Sampling.out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def sampled_dev_server(tmp: Path, *args: Any, **kwargs: Any) -> Any:
    env = await _dev_server(tmp, *args, **kwargs)
    (pid,) = throughput.children()  # the dev server is the bench's one child process
    await asyncio.to_thread(start_perf, pid)
    await asyncio.sleep(1)
    if Sampling.perf is not None and Sampling.perf.poll() is not None:
        raise SystemExit(
            f"perf could not sample the server (exit {Sampling.perf.returncode}): "
            "try it as root, or lower /proc/sys/kernel/perf_event_paranoid"
        )
    return env


async def spanned(side: str, run: Awaitable[Any]) -> float:
    start = time.clock_gettime(time.CLOCK_MONOTONIC)
    try:
        return await _measured(side, run)
    finally:
        Sampling.spans.append((side, start, time.clock_gettime(time.CLOCK_MONOTONIC)))


_dev_server = throughput.dev_server
_measured = throughput.measured
throughput.dev_server = sampled_dev_server  # type: ignore[assignment]
throughput.measured = spanned  # type: ignore[assignment]


def samples(rounds: int) -> tuple[dict[str, collections.Counter[str]], dict[str, int]]:
    """Each side's samples: functions on the stack (each once), and how many samples."""
    spans = {side: [(a, b) for s, a, b in Sampling.spans if s == side][-rounds:] for side in SIDES}
    functions = GoFunctions(Path(temporal_binary()).resolve())
    on_stack = {side: collections.Counter[str]() for side in SIDES}
    count = dict.fromkeys(SIDES, 0)
    script = subprocess.Popen(
        ["perf", "script", "-i", str(Sampling.out), "-F", "time,ip,dso"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert script.stdout is not None
    side: str | None = None
    stack: set[str] = set()

    def done() -> None:
        if side is not None:
            on_stack[side].update(stack)
            count[side] += 1

    for line in script.stdout:
        head = re.match(r"^\s*([\d.]+):\s*$", line)
        if head:
            done()
            at = float(head.group(1))
            side = next((s for s in SIDES if any(a <= at <= b for a, b in spans[s])), None)
            stack = set()
        elif "(" in line:
            address, _, dso = line.strip().partition(" ")
            if Path(dso.strip("()")).name == "temporal":
                # perf gives an address in the binary relative to where it is loaded.
                stack.add(functions.name(int(address, 16) + 0x400000))
    done()
    script.wait()
    return on_stack, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--obligations", action="store_true")
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("needs perf (apt-get install linux-perf)")
    try:
        asyncio.run(throughput.main(args.orders, 16, 10, args.rounds, obligations=args.obligations))
    finally:
        if Sampling.perf is not None:
            Sampling.perf.send_signal(signal.SIGINT)
            Sampling.perf.wait(timeout=60)
    on_stack, count = samples(args.rounds)
    if not all(count.values()):
        raise SystemExit(f"no samples of the server in a side's rounds ({Sampling.out})")
    per_order = 1000 / Sampling.hz / args.orders
    print(
        f"\nserver CPU per order (perf at {Sampling.hz} Hz, {args.rounds} measured rounds): "
        f"orderflow {count['orderflow'] * per_order:.1f} ms, bare with a child "
        f"{count['bare_child'] * per_order:.1f} ms"
    )
    a, b = on_stack["orderflow"], on_stack["bare_child"]
    rows = sorted(
        (k for k in set(a) | set(b) if HANDLER.search(k)), key=lambda k: -abs(a[k] - b[k])
    )
    print("by handler or queue task, ms per order: orderflow, bare with a child, difference")
    for k in rows[: args.rows]:
        x, y = a[k] * per_order, b[k] * per_order
        print(
            f"  {k.removeprefix('go.temporal.io/server/service/'):86} {x:6.2f} {y:6.2f} {x - y:+6.2f}"
        )
    os.remove(Sampling.out)


if __name__ == "__main__":
    main()
