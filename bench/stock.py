"""How many reservations one SKU's stock workflow takes, and what they cost in history.

Starts its own Temporal dev server (SQLite in WAL mode, as `orderflow dev` runs it) and a worker,
then runs three phases, each against a fresh stock record (one SKU at one location) that starts
with half the reservations on hand, so half are reserved and half waitlisted:

1. burst: N reservations (default 1,000) from C concurrent clients (default 10), each a closed
   loop of update-with-start calls with ``USE_EXISTING``, exactly as ``activities/stock.py``
   reserves: signed as the engine (only the engine reserves stock), with keys the bench makes
   for every principal of the seeds (``dev_keys``) before the worker is built;
2. contention: K clients (default 50, more than the server's 10 in-flight updates per workflow)
   for a fixed time (default 30 s), to show what happens past the limit;
3. long run: 10,000 reservations from C clients, through several continue-as-new runs.

For each: reservations per second, p50/p99 latency of the call (the SDK's own retries included),
how often the server refused an attempt (RESOURCE_EXHAUSTED: already 10 updates in flight;
UNAVAILABLE: update aborted) from the client's request metrics, how many calls the SDK gave up on
(after its ~10 s of retries; we then retry like the reserve_stock activity's retry policy, 200 ms
doubling, and count them), failed workflow-task completions of the worker, history events per
reservation over every run of the workflow, the longest single run, the size of the state carried
into each continue-as-new, and a check that nothing was oversold.

Run: .venv/bin/python bench/stock.py [--reservations 1000] [--long-run 10000] [--concurrency 10]
     [--contention-clients 50] [--contention-seconds 30]

One module on purpose, as every bench: it is read and run as one script, top to bottom.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import dev_server, pct
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.runtime import (
    LoggingConfig,
    MetricBuffer,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode

from domain.ids import stock_workflow_id
from domain.stock import ReserveStock, StockInput, StockReserved, StockView
from orderflow.auth import acting_as, signing
from orderflow.codec import bench_converter
from orderflow.config import Settings
from orderflow.identity import ENGINE, KeyRing, dev_keys
from orderflow.logging import configure
from orderflow.registry import Registry
from orderflow.worker import build_worker
from workflows.stock import StockWorkflow

# The reserve_stock activity's retry policy (workflows/order.py RETRY): 200 ms, doubling, 30 s cap.
RETRY_FIRST, RETRY_MAX = 0.2, 30.0
# What the SDK surfaces once its own retries are spent: the call failed, the activity would retry.
GIVE_UPS = (RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE)
HISTORY_LIMIT = 51_200  # the server's hard limit on events in one run
BLOB_LIMIT = 2 * 1024 * 1024  # the server's default limit on one payload (blobSizeLimitError)
MULTI, WFT = "ExecuteMultiOperation", "RespondWorkflowTaskCompleted"

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


@dataclass
class Result:
    label: str
    clients: int
    on_hand: int
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    gave_up: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    run_lengths: list[int] = field(default_factory=list)
    carried: list[tuple[int, int]] = field(default_factory=list)
    view: StockView | None = None
    unfinished: int = 0

    @property
    def reservations(self) -> int:
        return len(self.latencies)


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
                state = json.loads(attrs.input.payloads[0].data).get("state") or {}
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


async def reserve_many(
    load: Client,
    counter: RequestCounter,
    task_queue: str,
    label: str,
    *,
    n: int,
    clients: int,
    seconds: float | None = None,
    progress: int = 0,
) -> Result:
    """n reservations from `clients` closed-loop clients; with `seconds`, stop after that long
    (calls still running are cancelled and counted as unfinished)."""
    location, sku = f"bench-{uuid.uuid4().hex[:8]}", "PHONE-X12"
    res = Result(label, clients, on_hand=n // 2)
    next_i = iter(range(n))
    counter.drain()  # forget earlier calls

    async def reserve(i: int) -> StockReserved:
        attempt = 0
        order_id = f"R-{i:06d}"
        while True:
            start = WithStartWorkflowOperation(  # one per call: the SDK refuses to reuse one
                StockWorkflow.run,
                StockInput(location=location, sku=sku, on_hand=res.on_hand),
                id=stock_workflow_id(location, sku),
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                task_queue=task_queue,
                static_summary=f"Stock of {sku} at {location}",
            )
            try:
                # As the engine, for this order, as the reserve_stock activity signs it.
                with acting_as(ENGINE, "bench", order_id):
                    return await load.execute_update_with_start_workflow(
                        StockWorkflow.reserve,
                        ReserveStock(order_id=order_id, qty=1),
                        start_workflow_operation=start,
                    )
            except RPCError as err:
                if err.status not in GIVE_UPS:
                    raise
                res.gave_up[err.status.name] += 1
                await asyncio.sleep(min(RETRY_FIRST * 2**attempt, RETRY_MAX))
                attempt += 1

    async def client_loop() -> None:
        for i in next_i:
            t = time.perf_counter()
            result = await reserve(i)
            res.latencies.append(time.perf_counter() - t)
            res.statuses[result.status] += 1
            if progress and res.reservations % progress == 0:
                now = time.perf_counter()
                rate = progress / (now - marks[-1])
                marks.append(now)
                print(
                    f"  {label}: {res.reservations} reservations, last {progress} at {rate:.0f}/s",
                    flush=True,
                )

    t0 = time.perf_counter()
    marks = [t0]
    tasks = [asyncio.create_task(client_loop()) for _ in range(clients)]
    done, pending = await asyncio.wait(tasks, timeout=seconds)
    res.wall = time.perf_counter() - t0
    res.unfinished = len(pending)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()  # surface a real failure
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*pending, return_exceptions=True)
    res.attempts, res.failures = counter.drain()
    wf_id = stock_workflow_id(location, sku)
    await asyncio.sleep(0.5)  # a cancelled call may still land; let the record settle
    res.run_lengths, res.carried = await runs(load, wf_id)
    res.view = await load.get_workflow_handle(wf_id).query(StockWorkflow.reservations)
    return res


def report(r: Result, *, long_run: bool = False) -> bool:
    ms = 1000.0
    lengths = r.run_lengths
    total = sum(lengths)
    stopped = f", stopped after {r.wall:.0f} s" if r.unfinished else ""
    print(
        f"\n== {r.label}: {r.reservations} reservations from {r.clients} concurrent clients{stopped} =="
    )
    if r.latencies:
        print(
            f"throughput {r.reservations / r.wall:.0f} reservations/s (wall {r.wall:.1f} s); "
            f"call latency p50 {pct(r.latencies, 50) * ms:.0f} ms, "
            f"p99 {pct(r.latencies, 99) * ms:.0f} ms, max {max(r.latencies) * ms:.0f} ms"
        )
    refused = {code: k for (op, code), k in r.failures.items() if op == MULTI}
    print(
        f"update-with-start attempts {r.attempts[MULTI]}; refused by the server and retried by "
        f"the SDK: {refused or 'none'}; calls the SDK gave up on (then retried as the activity "
        f"would): {dict(r.gave_up) or 'none'}"
        + (f"; calls cut off at the time limit: {r.unfinished}" if r.unfinished else "")
    )
    wft = {code: k for (op, code), k in r.failures.items() if op == WFT}
    print(f"worker: {r.attempts[WFT]} workflow task completions, failed: {wft or 'none'}")
    size, live = max(r.carried, default=(0, 0))
    print(
        f"history: {len(lengths)} runs ({len(lengths) - 1} continue-as-new), {total} events, "
        f"{total / max(r.reservations, 1):.2f} events per reservation; longest run "
        f"{max(lengths)} events ({max(lengths) / HISTORY_LIMIT:.1%} of the {HISTORY_LIMIT:,} limit)"
        + (f"; runs {lengths}" if len(lengths) <= 12 else "")
    )
    if size:
        per = size / max(live, 1)
        print(
            f"largest state carried into a continue-as-new: {size / 1024:.0f} KiB for {live} "
            f"live reservations (~{per:.0f} bytes each; the server's 2 MiB payload limit is "
            f"reached at ~{BLOB_LIMIT / per:,.0f} live reservations)"
        )
    v = r.view
    assert v is not None
    reserved = sum(x.qty for x in v.reserved)
    ids = [x.order_id for x in v.reserved + v.waitlist]
    unique = len(ids) == len(set(ids))
    if r.unfinished:
        # Cut-off calls may or may not have landed: check the record against its own stock.
        ok = unique and reserved <= v.on_hand and (not v.waitlist or reserved == v.on_hand)
    else:
        ok = (
            unique
            and reserved == v.on_hand == r.on_hand
            and r.statuses["reserved"] == r.on_hand
            and r.statuses["waitlisted"] == r.reservations - r.on_hand
            and len(ids) == r.reservations
        )
    print(
        f"oversell check: on hand {v.on_hand}, reserved {reserved}, waitlisted {len(v.waitlist)}, "
        f"answers {dict(r.statuses)} -> {'OK, nothing oversold' if ok else 'FAILED'}"
    )
    if long_run:
        far_below = max(lengths) < HISTORY_LIMIT // 10
        print(
            f"longest run {'is' if far_below else 'is NOT'} far below the limit (< 10%); "
            f"{len(lengths) - 1} continue-as-new runs"
        )
        ok &= far_below
    return ok


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
    # The load generators' own connection, as the reserve_stock activity has its own client,
    # signing what it sends as that activity's does.
    load = signing(
        await Client.connect(
            env.client.service_client.config.target_host,
            data_converter=BENCH_CONVERTER,
            runtime=counter.runtime,
        ),
        KeyRing(settings.keys_path),
    )
    print(
        f"cores {os.cpu_count()}; Temporal dev server (SQLite WAL) and a worker in this process "
        f"(max_concurrent_workflow_tasks {settings.max_concurrent_workflow_tasks}, "
        f"max_cached_workflows {settings.max_cached_workflows}); StockInput.continue_as_new_after "
        f"{StockInput.model_fields['continue_as_new_after'].default}; "
        f"load average {os.getloadavg()[0]:.1f}; command: {' '.join(sys.argv)}",
        flush=True,
    )
    ok = True
    t0 = time.perf_counter()
    queue = settings.task_queue
    try:
        async with build_worker(env.client, settings):
            if args.reservations:
                r = await reserve_many(
                    load, counter, queue, "burst", n=args.reservations, clients=args.concurrency
                )
                ok &= report(r)
            if args.contention_clients and args.contention_seconds:
                r = await reserve_many(
                    load,
                    counter,
                    queue,
                    "contention",
                    n=args.reservations or 1000,
                    clients=args.contention_clients,
                    seconds=args.contention_seconds,
                )
                ok &= report(r)
            if args.long_run:
                r = await reserve_many(
                    load,
                    counter,
                    queue,
                    "long run",
                    n=args.long_run,
                    clients=args.concurrency,
                    progress=2000,
                )
                ok &= report(r, long_run=True)
    finally:
        await env.shutdown()
    print(
        f"\ntotal {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f} "
        f"(1 min) on {os.cpu_count()} cores; all checks {'passed' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reservations", type=int, default=1000, help="burst size (0 skips)")
    parser.add_argument("--long-run", type=int, default=10_000, help="long-run size (0 skips)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=10,
        help="clients of the burst and the long run (the server takes 10 updates in flight)",
    )
    parser.add_argument("--contention-clients", type=int, default=50, help="0 skips")
    parser.add_argument("--contention-seconds", type=float, default=30)
    code = asyncio.run(main(parser.parse_args()))
    sys.stdout.flush()
    # Our own SDK runtime's threads can outlive the interpreter's finalization and abort it.
    os._exit(code)
