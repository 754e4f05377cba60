"""How many reservations one SKU's stock workflow takes, and what they cost in history.

Starts its own Temporal dev server (SQLite in WAL mode, as `orderflow dev` runs it) and a worker,
then:

1. N reservations (default 1,000) of one unit each, against one SKU at one location, from C
   concurrent clients (default 50), each a closed loop of update-with-start calls with
   ``USE_EXISTING``, exactly as ``activities/stock.py`` reserves. The record starts with half of N
   on hand, so half are reserved and half waitlisted. Reports reservations per second, p50/p99
   latency of the call (SDK retries included), how often the server refused a call because the
   workflow already had 10 updates in flight (RESOURCE_EXHAUSTED, retried by the SDK; counted from
   the client's own request metrics), history events per reservation over every run of the
   workflow, and checks that nothing was oversold.
2. A long run (default 10,000 reservations) against a fresh SKU record, reporting the longest
   single-run history, the number of continue-as-new runs, and the same figures.

Run: .venv/bin/python bench/stock.py [--reservations 1000] [--long-run 10000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import (
    LoggingConfig,
    MetricBuffer,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from domain.ids import stock_workflow_id
from domain.stock import ReserveStock, StockReserved, StockView
from orderflow.config import Settings
from orderflow.devserver import SQLITE_PRAGMAS, temporal_binary
from orderflow.logging import configure
from orderflow.worker import build_worker
from workflows.search_attributes import ALL
from workflows.stock import StockInput, StockWorkflow

# The reserve_stock activity's retry policy (workflows/order.py RETRY): 200 ms, doubling, 30 s cap.
RETRY_FIRST, RETRY_MAX = 0.2, 30.0
GIVE_UPS = (RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE)
HISTORY_LIMIT = 51_200  # the server's hard limit on events in one run


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Result:
    label: str
    reservations: int
    concurrency: int
    on_hand: int
    wall: float
    latencies: list[float]
    statuses: Counter[str]
    attempts: Counter[str]
    failures: Counter[tuple[str, str]]
    gave_up: Counter[str]
    run_lengths: list[int] = field(default_factory=list)
    view: StockView | None = None


class RequestCounter:
    """The core SDK's own request metrics for this process (load client and worker): every RPC
    attempt and every failed one, by operation and status code. An attempt the SDK retried
    after RESOURCE_EXHAUSTED shows here, not to the caller."""

    def __init__(self) -> None:
        self.buffer = MetricBuffer(1_000_000)
        # Core's warnings (one per retried call) would flood the output: the counts say it all.
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
            if update.metric.name == "temporal_request":
                attempts[op] += int(update.value)
            elif update.metric.name == "temporal_request_failure":
                failures[(op, str(update.attributes.get("status_code")))] += int(update.value)
        return attempts, failures


async def run_lengths(client: Client, workflow_id: str) -> list[int]:
    """History length of every run of the workflow, first to current, following the
    continue-as-new chain from the first run."""
    desc = await client.get_workflow_handle(workflow_id).describe()
    run_id = desc.raw_description.workflow_execution_info.first_run_id
    lengths: list[int] = []
    while run_id:
        d = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
        lengths.append(d.history_length)
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
    return lengths


async def reserve_many(
    load: Client,
    counter: RequestCounter,
    task_queue: str,
    label: str,
    n: int,
    concurrency: int,
    progress: bool,
) -> Result:
    location, sku = f"bench-{uuid.uuid4().hex[:8]}", "PHONE-X12"
    on_hand = n // 2
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    gave_up: Counter[str] = Counter()
    next_i = iter(range(n))
    counter.drain()  # forget earlier calls

    async def client_loop() -> None:
        for i in next_i:
            t = time.perf_counter()
            attempt = 0
            while True:
                # One operation per call: the SDK refuses to reuse one.
                start = WithStartWorkflowOperation(
                    StockWorkflow.run,
                    StockInput(location=location, sku=sku, on_hand=on_hand),
                    id=stock_workflow_id(location, sku),
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    task_queue=task_queue,
                    static_summary=f"Stock of {sku} at {location}",
                )
                try:
                    result: StockReserved = await load.execute_update_with_start_workflow(
                        StockWorkflow.reserve,
                        ReserveStock(order_id=f"R-{i:06d}", qty=1),
                        start_workflow_operation=start,
                    )
                    break
                except RPCError as err:
                    # The SDK retried for up to 10 s and gave up; the reserve_stock activity would
                    # fail and be retried by its retry policy: 200 ms, doubling.
                    if err.status not in GIVE_UPS:
                        raise
                    gave_up[err.status.name] += 1
                    await asyncio.sleep(min(RETRY_FIRST * 2**attempt, RETRY_MAX))
                    attempt += 1
            latencies.append(time.perf_counter() - t)
            statuses[result.status] += 1
            if progress and len(latencies) % 1000 == 0:
                print(f"  {label}: {len(latencies)} reservations", flush=True)

    t0 = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    attempts, failures = counter.drain()
    wf_id = stock_workflow_id(location, sku)
    res = Result(
        label, n, concurrency, on_hand, wall, latencies, statuses, attempts, failures, gave_up
    )
    res.run_lengths = await run_lengths(load, wf_id)
    res.view = await load.get_workflow_handle(wf_id).query(StockWorkflow.reservations)
    return res


def report(r: Result) -> bool:
    ms = 1000.0
    lengths = r.run_lengths
    total = sum(lengths)
    print(f"\n== {r.label}: {r.reservations} reservations, {r.concurrency} concurrent clients ==")
    print(
        f"throughput {r.reservations / r.wall:.0f} reservations/s (wall {r.wall:.1f} s); "
        f"update latency p50 {pct(r.latencies, 50) * ms:.0f} ms, p99 {pct(r.latencies, 99) * ms:.0f} ms, "
        f"max {max(r.latencies) * ms:.0f} ms"
    )
    multi = "ExecuteMultiOperation"
    refused = {code: n for (op, code), n in r.failures.items() if op == multi}
    print(
        f"update-with-start RPC attempts {r.attempts[multi]} for {r.reservations} reservations; "
        f"attempts refused by the server {refused or 'none'} (ResourceExhausted = already 10 "
        f"updates in flight on the workflow; Unavailable = update aborted), each retried by the "
        f"SDK; calls on which the SDK gave up (after ~10 s / 10 retries) and we retried like the "
        f"activity: {dict(r.gave_up) or 'none'}"
    )
    wft = {code: n for (op, code), n in r.failures.items() if op == "RespondWorkflowTaskCompleted"}
    print(
        f"worker: {r.attempts['RespondWorkflowTaskCompleted']} workflow task completions, "
        f"failed {wft or 'none'}"
    )
    print(
        f"history: {len(lengths)} runs ({len(lengths) - 1} continue-as-new), {total} events, "
        f"{total / r.reservations:.2f} events per reservation; longest run {max(lengths)} events "
        f"({max(lengths) / HISTORY_LIMIT:.1%} of the {HISTORY_LIMIT:,} limit); runs: {lengths}"
    )
    v = r.view
    assert v is not None
    reserved = sum(x.qty for x in v.reserved)
    ids = [x.order_id for x in v.reserved + v.waitlist]
    ok = (
        reserved == v.on_hand == r.on_hand
        and v.available == 0
        and r.statuses["reserved"] == r.on_hand
        and r.statuses["waitlisted"] == r.reservations - r.on_hand
        and len(ids) == len(set(ids)) == r.reservations
    )
    print(
        f"oversell check: on hand {v.on_hand}, reserved {reserved}, waitlisted {len(v.waitlist)}, "
        f"answers {dict(r.statuses)} -> {'OK, nothing oversold' if ok else 'FAILED'}"
    )
    return ok


async def main(reservations: int, long_run: int, concurrency: int) -> int:
    configure("WARNING")
    tmp = Path(tempfile.mkdtemp(prefix="orderflow-bench-stock-"))
    extra: list[str] = []
    for pragma in SQLITE_PRAGMAS:
        extra += ["--sqlite-pragma", pragma]
    counter = RequestCounter()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_database_filename=str(tmp / "temporal.sqlite3"),
        dev_server_extra_args=extra,
        search_attributes=list(ALL),
        data_converter=pydantic_data_converter,
        runtime=counter.runtime,
        dev_server_log_level="never",  # its one line per refused call would flood the output
    )
    # The load generators' own connection, as an order activity has its own client.
    load = await Client.connect(
        env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=counter.runtime,
    )
    settings = Settings(data_dir=tmp, task_queue=f"bench-{uuid.uuid4().hex[:8]}")
    print(
        f"cores {os.cpu_count()}; dev server (SQLite WAL), worker in this process "
        f"(max_concurrent_workflow_tasks {settings.max_concurrent_workflow_tasks}, "
        f"max_cached_workflows {settings.max_cached_workflows}); "
        f"continue_as_new_after {StockInput.model_fields['continue_as_new_after'].default}",
        flush=True,
    )
    ok = True
    t0 = time.perf_counter()
    try:
        async with build_worker(env.client, settings):
            if reservations:
                r = await reserve_many(
                    load, counter, settings.task_queue, "burst", reservations, concurrency, False
                )
                ok &= report(r)
            if long_run:
                r = await reserve_many(
                    load, counter, settings.task_queue, "long run", long_run, concurrency, True
                )
                ok &= report(r)
                ok &= max(r.run_lengths) < HISTORY_LIMIT // 10
    finally:
        await env.shutdown()
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; all checks {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reservations", type=int, default=1000)
    parser.add_argument(
        "--long-run", type=int, default=10_000, help="0 skips the long continue-as-new run"
    )
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.reservations, args.long_run, args.concurrency)))
