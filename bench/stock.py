"""A hot SKU: how many reservations one stock record takes, against the same load spread over
ten records, and what reserving costs as a record fills.

Starts its own Temporal dev server (SQLite in WAL mode, as `orderflow dev` runs it) and a worker
in this process. The load goes through the engine's own stock calls (``StockActivities.reserve``
of ``activities/stock.py``, what every order's ``reserve_stock`` activity calls), signed as the
engine with keys the bench makes for every principal of the seeds (``dev_keys``). Those calls
send reservations by group commit: one alone when nothing is out to the record, and those that
arrive while batches are out together, as one ``reserve_batch`` update.

1. hot against spread, in the same run, alternating (``--rounds``): N reservations (default
   2,000) from C concurrent closed-loop clients (default 50), first spread over 10 records
   (client i reserves on record i mod 10), then all on ONE record. Each record starts with half
   its reservations on hand, so half are reserved and half wait in line. Printed: reservations
   per second of each and their ratio (target: hot at least 0.8 of spread), call latency, how
   many updates carried them, history events per reservation, and the checks: nothing oversold,
   every order reserved or waiting exactly once, the line in the order the record answered
   (FIFO), and the answers matching the record.
2. one update each (the engine before group commit), for comparison: the same hot load with
   every reservation its own ``reserve`` update, cut off after ``--unbatched-seconds``. Past the
   server's 10 updates in flight per workflow, calls are refused (RESOURCE_EXHAUSTED) and retried.
3. fill: one record filled to 5,000 live reservations (the most a record holds; half waiting)
   by 10 clients (``--fill-clients``), through several continue-as-new hand-overs
   (``--continue-as-new-after`` 100 updates, so the fill crosses them). Printed: the rate of
   each tenth of the fill (target: the last tenth at least 0.8 of the first, i.e. reserving
   does not slow as the record fills), the runs, the state carried, and the same checks as
   above across the hand-overs;
4. the ``reserve`` rule alone, in this process: CPU per reservation on a record holding 100
   live reservations against one holding 5,000 (target: at most 1.25 times).

Also from the client's request metrics: how often the server refused an attempt (the SDK retries
those), and failed workflow-task completions of the worker.

Run: .venv/bin/python bench/stock.py [--full] [--reservations 2000] [--clients 50] [--rounds 1]
     [--fill 2500] [--fill-clients 10] [--unbatched-seconds 20]   (--full: three rounds)

One module on purpose, as every bench: it is read and run as one script, top to bottom.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import dev_server, full_flag, pct, progress, record
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client
from temporalio.runtime import (
    LoggingConfig,
    MetricBuffer,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError

from activities.stock import CALLS_IN_FLIGHT, StockActivities
from domain import stock as rules
from domain.ids import stock_workflow_id
from domain.stock import (
    MAX_LIVE_RESERVATIONS,
    ReserveRequest,
    ReserveStock,
    StockReserved,
    StockState,
    StockView,
)
from orderflow.codec import bench_converter
from orderflow.config import Settings
from orderflow.identity import KeyRing, dev_keys
from orderflow.logging import configure
from orderflow.registry import Registry
from orderflow.worker import build_worker
from workflows.stock import StockWorkflow

HISTORY_LIMIT = 51_200  # the server's hard limit on events in one run
MULTI, WFT = "ExecuteMultiOperation", "RespondWorkflowTaskCompleted"
UPDATE = "UpdateWorkflowExecution"
SKU = "PHONE-X12"
# Hold the hot record to at least this share of the spread records' rate (issue 22).
HOT_TARGET = 0.8
# The fill's last tenth at least this share of its first: reserving does not slow as it fills.
FILL_TARGET = 0.8

# The engine's payload codec, with a key of this run (workers it starts read it too).
BENCH_CONVERTER = bench_converter()


class RequestCounter:
    """The core SDK's request metrics for this process (load clients and worker): every RPC
    attempt and every failed one, by operation and status code. An attempt the SDK retried after
    RESOURCE_EXHAUSTED shows here, not to the caller."""

    def __init__(self) -> None:
        self.buffer = MetricBuffer(1_000_000)
        # Core logs one warning per retried call; the counts below say the same, quietly.
        self.runtime = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                ),
                metrics=self.buffer,
            )
        )

    def drain(self) -> tuple[Counter[str], Counter[tuple[str, str]]]:
        attempts: Counter[str] = Counter()
        failures: Counter[tuple[str, str]] = Counter()
        for update in self.buffer.retrieve_updates():
            op = str(update.attributes.get("operation", ""))
            name = update.metric.name.replace("temporal_long_request", "temporal_request")
            if name == "temporal_request":
                attempts[op] += int(update.value)
            elif name == "temporal_request_failure":
                failures[(op, str(update.attributes.get("status_code")))] += int(update.value)
        return attempts, failures


async def runs(client: Client, workflow_id: str) -> tuple[list[int], list[tuple[int, int]]]:
    """History length of every run of the workflow, first to current (following the
    continue-as-new chain), and, for each later run, the size of the input it was started with
    and the number of reservations that input carried."""
    desc = await client.get_workflow_handle(workflow_id).describe()
    run_id = desc.raw_description.workflow_execution_info.first_run_id
    lengths: list[int] = []
    carried: list[tuple[int, int]] = []
    while run_id:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        d = await handle.describe()
        lengths.append(d.history_length)
        if len(lengths) > 1:
            async for first in handle.fetch_history_events(page_size=1):
                attrs = first.workflow_execution_started_event_attributes
                codec = client.data_converter.payload_codec
                plain = (
                    await codec.decode(list(attrs.input.payloads))
                    if codec
                    else list(attrs.input.payloads)
                )
                state = json.loads(plain[0].data).get("state") or {}
                carried.append(
                    (
                        sum(p.ByteSize() for p in attrs.input.payloads),
                        len(state.get("reservations", [])),
                    )
                )
                break
        if d.raw_description.workflow_execution_info.status != (
            WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
        ):
            break
        last = await client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=client.namespace,
                execution={"workflow_id": workflow_id, "run_id": run_id},
                maximum_page_size=1,
            )
        )
        event = last.history.events[0]
        assert event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        run_id = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return lengths, carried


@dataclass
class Result:
    label: str
    clients: int
    records: list[str]
    on_hand: int
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    answers: list[StockReserved] = field(default_factory=list)
    marks: list[float] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    run_lengths: list[int] = field(default_factory=list)
    carried: list[tuple[int, int]] = field(default_factory=list)
    updates: int = 0
    views: list[StockView] = field(default_factory=list)
    unfinished: int = 0

    @property
    def reservations(self) -> int:
        return len(self.answers)

    @property
    def rate(self) -> float:
        return self.reservations / self.wall if self.wall else 0.0


async def updates_accepted(client: Client, workflow_id: str) -> int:
    """Updates the record accepted, over all its runs."""
    n = 0
    async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        async for e in client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history_events():
            n += e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    return n


async def reserve_many(
    calls: StockActivities,
    client: Client,
    counter: RequestCounter,
    label: str,
    *,
    n: int,
    clients: int,
    records: int = 1,
    alone: bool = False,
    seconds: float | None = None,
) -> Result:
    """n reservations from `clients` closed-loop clients over `records` fresh records (client
    i on record i mod records), through the engine's stock calls: by group commit, or with
    `alone` one update each. With `seconds`, stop after that long."""
    run = uuid.uuid4().hex[:8]
    locations = [f"bench-{run}-{k}" for k in range(records)]
    per_record = n // records
    res = Result(label, clients, locations, on_hand=per_record // 2)
    next_i = iter(range(n))
    counter.drain()  # forget earlier calls
    send = calls.reserve_alone if alone else calls.reserve

    with progress(label, n) as advance:

        async def client_loop(c: int) -> None:
            location = locations[c % records]
            for i in next_i:
                t = time.perf_counter()
                answer = await send(
                    ReserveRequest(
                        location=location,
                        sku=SKU,
                        order_id=f"R-{i:06d}",
                        qty=1,
                        initial_on_hand=res.on_hand,
                    )
                )
                res.latencies.append(time.perf_counter() - t)
                res.answers.append(answer)
                res.marks.append(time.perf_counter())
                advance()

        t0 = time.perf_counter()
        tasks = [asyncio.create_task(client_loop(c)) for c in range(clients)]
        done, pending = await asyncio.wait(tasks, timeout=seconds)
        res.wall = time.perf_counter() - t0
        res.marks = [m - t0 for m in res.marks]
    res.unfinished = len(pending)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()  # surface a real failure
    await asyncio.gather(*pending, return_exceptions=True)
    res.attempts, res.failures = counter.drain()
    await asyncio.sleep(0.5)  # a cancelled call may still land; let the records settle
    for location in locations:
        wf_id = stock_workflow_id(location, SKU)
        lengths, carried = await runs(client, wf_id)
        res.run_lengths += lengths
        res.carried += carried
        res.updates += await updates_accepted(client, wf_id)
        res.views.append(await client.get_workflow_handle(wf_id).query(StockWorkflow.reservations))
    return res


def checked(r: Result) -> bool:
    """Nothing oversold; every order reserved or waiting exactly once; the line in the order
    the record answered (FIFO); the answers matching the records."""
    ok = True
    by_location: dict[str, list[StockReserved]] = {}
    for a in r.answers:
        by_location.setdefault(a.location, []).append(a)
    for v in r.views:
        reserved = sum(x.qty for x in v.reserved)
        ids = [x.order_id for x in v.reserved + v.waitlist]
        mine = by_location.get(v.location, [])
        waiting = sorted(
            (a for a in mine if a.status == "waitlisted"), key=lambda a: a.position or 0
        )
        if r.unfinished:
            # Cut-off calls may or may not have landed: the record against its own stock.
            ok &= len(ids) == len(set(ids)) and reserved <= v.on_hand
            ok &= not v.waitlist or reserved == v.on_hand
            continue
        ok &= len(ids) == len(set(ids)) == len(mine)  # nobody lost or doubled
        ok &= set(ids) == {a.order_id for a in mine}
        ok &= reserved == v.on_hand == r.on_hand  # nothing oversold, nothing left idle
        ok &= [a.position for a in waiting] == list(range(1, len(waiting) + 1))
        ok &= [x.order_id for x in v.waitlist] == [a.order_id for a in waiting]  # FIFO
    return ok


def report(r: Result) -> bool:
    ms = 1000.0
    total = sum(r.run_lengths)
    stopped = f", cut off after {r.wall:.0f} s" if r.unfinished else ""
    print(
        f"\n== {r.label}: {r.reservations} reservations from {r.clients} concurrent clients on "
        f"{len(r.records)} record(s){stopped} =="
    )
    if r.answers:
        print(
            f"throughput {r.rate:.0f} reservations/s (wall {r.wall:.1f} s); call latency "
            f"p50 {pct(r.latencies, 50) * ms:.0f} ms, p99 {pct(r.latencies, 99) * ms:.0f} ms, "
            f"max {max(r.latencies) * ms:.0f} ms"
        )
    refused = {code: k for (op, code), k in r.failures.items() if op in (MULTI, UPDATE)}
    wft = {code: k for (op, code), k in r.failures.items() if op == WFT}
    print(
        f"updates accepted {r.updates} ({r.reservations / max(r.updates, 1):.1f} reservations "
        f"each); attempts refused by the server and retried by the SDK: {refused or 'none'}; "
        f"worker: {r.attempts[WFT]} workflow task completions, failed: {wft or 'none'}"
    )
    print(
        f"history: {len(r.run_lengths)} runs, {total} events, "
        f"{total / max(r.reservations, 1):.2f} events per reservation; longest run "
        f"{max(r.run_lengths)} events ({max(r.run_lengths) / HISTORY_LIMIT:.1%} of the "
        f"{HISTORY_LIMIT:,} limit)"
    )
    if r.carried:
        size, live = max(r.carried)
        print(
            f"continue-as-new: {len(r.carried)} hand-overs; largest state carried {size / 1024:.0f}"
            f" KiB for {live} live reservations"
        )
    ok = checked(r)
    statuses = Counter(a.status.value for a in r.answers)
    print(
        f"checks (nothing oversold, each order once, FIFO line, answers = record): "
        f"{'OK' if ok else 'FAILED'}; answers {dict(statuses)}"
    )
    return ok


def reserve_cost(live: int, samples: int = 2000) -> float:
    """Seconds of CPU one ``reserve`` rule takes on a record already holding ``live``
    reservations (half reserved, half waiting), in this process: what the record's workflow
    task spends on each reservation, without the server."""
    now = datetime.now(UTC)
    state = StockState(location="bench", sku=SKU, on_hand=live // 2)
    for i in range(live):
        rules.reserve(state, ReserveStock(order_id=f"L-{i:06d}", qty=1), now)
    cmds = [ReserveStock(order_id=f"N-{i:06d}", qty=1) for i in range(samples)]
    began = time.thread_time()
    for cmd in cmds:
        rules.reserve(state, cmd, now)
    return (time.thread_time() - began) / samples


def tenths(r: Result) -> list[float]:
    """Reservations per second in each tenth of a run, by completion time."""
    n = len(r.marks)
    step = max(n // 10, 1)
    rates = []
    for k in range(0, n - step + 1, step):
        began = r.marks[k - 1] if k else 0.0
        rates.append(step / max(r.marks[k + step - 1] - began, 1e-9))
    return rates


def quiet_abandoned_start_futures(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A refused (or, at the time limit, cancelled) update-with-start also fails its start
    operation's future, which nobody awaits when the update is what we wait for: asyncio would
    print each one."""
    abandoned = isinstance(context.get("exception"), RPCError | asyncio.CancelledError)
    if abandoned and "never retrieved" in str(context.get("message")):
        return
    loop.default_exception_handler(context)


async def main(args: argparse.Namespace) -> int:
    configure("WARNING")
    asyncio.get_running_loop().set_exception_handler(quiet_abandoned_start_futures)
    if args.full:
        args.rounds = max(args.rounds, 3)
    tmp = Path(tempfile.mkdtemp(prefix="orderflow-bench-stock-"))
    counter = RequestCounter()
    env = await dev_server(
        tmp,
        BENCH_CONVERTER,
        dev_server_log_level="never",  # it logs every refused call
        runtime=counter.runtime,
    )
    settings = Settings(data_dir=tmp, task_queue=f"bench-{uuid.uuid4().hex[:8]}")
    # A key for every principal of the seeds, before the worker loads the trust store.
    dev_keys(settings, Registry(settings.seeds_dir))
    # The load's own connection, as the worker's stock calls have their own client.
    client = await Client.connect(
        env.client.service_client.config.target_host,
        data_converter=BENCH_CONVERTER,
        runtime=counter.runtime,
    )
    calls = StockActivities(client, settings.task_queue, KeyRing(settings.keys_path))
    # The fill's record hands over to a fresh run every few updates, to cross several.
    filling = StockActivities(
        client,
        settings.task_queue,
        KeyRing(settings.keys_path),
        continue_as_new_after=args.continue_as_new_after,
    )
    print(
        f"cores {os.cpu_count()}; Temporal dev server (SQLite WAL) and a worker in this process "
        f"(max_concurrent_workflow_tasks {settings.max_concurrent_workflow_tasks}, "
        f"max_cached_workflows {settings.max_cached_workflows}); calls out per record "
        f"{CALLS_IN_FLIGHT}; load average {os.getloadavg()[0]:.1f}; command: "
        f"{' '.join(sys.argv)}",
        flush=True,
    )
    ok = True
    t0 = time.perf_counter()
    n, c = args.reservations, args.clients
    try:
        async with build_worker(env.client, settings):
            spread: list[Result] = []
            hot: list[Result] = []
            for k in range(args.rounds):
                tag = f" (round {k + 1})" if args.rounds > 1 else ""
                spread.append(
                    await reserve_many(
                        calls, client, counter, f"spread over 10{tag}", n=n, clients=c, records=10
                    )
                )
                ok &= report(spread[-1])
                hot.append(await reserve_many(calls, client, counter, f"hot{tag}", n=n, clients=c))
                ok &= report(hot[-1])
            hot_rate = sum(r.reservations for r in hot) / sum(r.wall for r in hot)
            spread_rate = sum(r.reservations for r in spread) / sum(r.wall for r in spread)
            ratio = hot_rate / spread_rate
            met = ratio >= HOT_TARGET
            print(
                f"\nhot record {hot_rate:.0f}/s against spread over 10 records "
                f"{spread_rate:.0f}/s: ratio {ratio:.2f} (target {HOT_TARGET}: "
                f"{'met' if met else 'NOT met'})"
            )
            record(
                "stock",
                f"{n:,} reservations, {c} clients: one record against 10",
                f"{hot_rate:.0f}/s against {spread_rate:.0f}/s: ratio {ratio:.2f}",
                f">= {HOT_TARGET}",
                met,
            )
            record(
                "stock",
                "hot record: updates, events per reservation",
                f"{hot[-1].reservations / max(hot[-1].updates, 1):.1f} reservations per update, "
                f"{sum(hot[-1].run_lengths) / max(hot[-1].reservations, 1):.2f} events each",
            )
            if args.unbatched_seconds:
                alone = await reserve_many(
                    calls,
                    client,
                    counter,
                    "hot, one update each",
                    n=n,
                    clients=c,
                    alone=True,
                    seconds=args.unbatched_seconds,
                )
                ok &= report(alone)
                print(f"group commit against one update each: {hot_rate / alone.rate:.1f}x")
                record(
                    "stock",
                    "hot record, one update per reservation (before group commit)",
                    f"{alone.rate:.0f}/s: group commit {hot_rate / alone.rate:.1f}x",
                )
            if args.fill:
                fill = await reserve_many(
                    filling,
                    client,
                    counter,
                    "fill",
                    n=args.fill * 2,
                    clients=args.fill_clients,
                )
                ok &= report(fill)
                rates = tenths(fill)
                slope = rates[-1] / rates[0]
                fill_met = slope >= FILL_TARGET
                print(
                    "rate by tenth of the fill (reservations/s): "
                    + ", ".join(f"{x:.0f}" for x in rates)
                    + f"; last against first {slope:.2f} (target {FILL_TARGET}: "
                    f"{'met' if fill_met else 'NOT met'})"
                )
                record(
                    "stock",
                    f"filling one record to {fill.reservations:,} live reservations",
                    f"first tenth {rates[0]:.0f}/s, last {rates[-1]:.0f}/s: ratio {slope:.2f}; "
                    f"{len(fill.carried)} continue-as-new, checks "
                    f"{'OK' if checked(fill) else 'FAILED'}",
                    f">= {FILL_TARGET}",
                    fill_met,
                )
                ok &= fill_met
            small, large = reserve_cost(100), reserve_cost(MAX_LIVE_RESERVATIONS)
            flat = large / small <= 1 / FILL_TARGET
            print(
                f"the reserve rule alone: {small * 1e6:.1f} µs with 100 live reservations, "
                f"{large * 1e6:.1f} µs with {MAX_LIVE_RESERVATIONS:,}: ratio {large / small:.2f} "
                f"(target at most {1 / FILL_TARGET:.2f}: {'met' if flat else 'NOT met'})"
            )
            record(
                "stock",
                f"one reserve on a record holding 100 against {MAX_LIVE_RESERVATIONS:,}",
                f"{small * 1e6:.1f} µs against {large * 1e6:.1f} µs: ratio {large / small:.2f}",
                f"<= {1 / FILL_TARGET:.2f}",
                flat,
            )
            ok &= flat
            ok &= met
    finally:
        await env.shutdown()
    print(
        f"\ntotal {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f} "
        f"(1 min) on {os.cpu_count()} cores; all checks {'passed' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reservations", type=int, default=2000, help="hot and spread size")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=1, help="spread/hot rounds, alternating")
    parser.add_argument(
        "--fill",
        type=int,
        default=MAX_LIVE_RESERVATIONS // 2,
        help="fill one record to twice this many live reservations, half of them waiting (0 skips)",
    )
    parser.add_argument("--fill-clients", type=int, default=10, help="the fill's clients")
    parser.add_argument(
        "--continue-as-new-after", type=int, default=100, help="the fill record's updates per run"
    )
    parser.add_argument("--unbatched-seconds", type=float, default=20, help="0 skips")
    full_flag(parser, "three spread/hot rounds")
    code = asyncio.run(main(parser.parse_args()))
    sys.stdout.flush()
    # Our own SDK runtime's threads can outlive the interpreter's finalization and abort it.
    os._exit(code)
