"""Throughput and cost: N orders through the whole lifecycle against a bare Temporal workflow
doing the same number of activities and updates, on the same dev server in the same run.

Starts its own Temporal dev server (SQLite in WAL mode, as `orderflow dev` runs it) and the SMTP
sink, then runs two phases, each with its own worker in this process (same sizing):

1. orderflow: N orders (spread over eight stock records, as real traffic is). The bench plays
   the carrier: once the carrier gateway has booked the shipment it sends ``picked-up`` and
   ``delivered`` as updates on the delivery workflow, then waits for the order's result
   (completed, payment captured).
2. bare: afterwards the real histories of those orders are counted (activities, local
   activities, updates per order, the stock workflows' updates shared out per order), and N
   bare workflows do exactly that many: activities with the same kind of minimal I/O (an SQLite
   insert; an update-with-start on a shared counter workflow where the order reserves and
   releases stock), local activities that send one SMTP message each to the same sink, and
   updates with no validator from the client playing the carrier the same way.

Each phase starts with a short warm-up that is not measured. Prints orders/s, bare/s, their
ratio, history events per order (order + delivery + the order's share of the stock workflows'
events) and the machine's core count.

Run: .venv/bin/python bench/throughput.py [--orders 200] [--concurrency 16]
"""

from __future__ import annotations

# The bare workflows below are defined in this file, and the worker's sandbox re-imports it:
# everything at module level must be safe there, hence the guard and the pass-through imports.
import sys
from pathlib import Path

from temporalio import activity, workflow

if not workflow.unsafe.in_sandbox():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with workflow.unsafe.imports_passed_through():
    import argparse
    import asyncio
    import collections
    import math
    import os
    import smtplib
    import sqlite3
    import tempfile
    import time
    import uuid
    from collections.abc import Awaitable, Callable
    from datetime import timedelta
    from email.message import EmailMessage
    from typing import Any

    from pydantic import BaseModel
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
    from temporalio.common import (
        SearchAttributePair,
        TypedSearchAttributes,
        WorkflowIDConflictPolicy,
    )
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from activities.carrier import Booking, BookShipment, CarrierActivities, SqliteCarrierGateway
    from domain.ids import delivery_workflow_id, order_workflow_id
    from domain.models import CarrierEvent, Location
    from orderflow.config import PROJECT_ROOT, Settings
    from orderflow.devserver import SQLITE_PRAGMAS, free_port, temporal_binary
    from orderflow.logging import configure
    from orderflow.registry import Registry
    from orderflow.service import Orderflow
    from orderflow.smtp_sink import SmtpSink
    from orderflow.worker import WORKFLOWS, activities_for
    from workflows.delivery import DeliveryWorkflow
    from workflows.order import OrderWorkflow
    from workflows.search_attributes import ALL, CARRIER, CUSTOMER_ID, ORDER_STATUS

# Eight stock records (four bench locations x two SKUs), each with far more stock than needed.
SKUS = ("CASE-X12", "ROUTER-F1")
BENCH_LOCATIONS = [f"bench-loc-{n}" for n in range(4)]
RECORDS = [(loc, sku) for loc in BENCH_LOCATIONS for sku in SKUS]

# The carrier (this bench) learns of a booking from its own gateway, as a real carrier would.
booked: dict[str, asyncio.Event] = {}


def _event(key: str) -> asyncio.Event:
    return booked.setdefault(key, asyncio.Event())


# ============================================================================ the bare workflow


class BareSpec(BaseModel):
    order_id: str
    stock_id: str
    db: str
    smtp_port: int
    mails_before: int
    stock_before: int
    io_before: int  # the last one is the "booking": the carrier is told
    stock_after: int
    updates: int
    mails_per_update: int
    io_after: int
    mails_after: int


class BareIo(BaseModel):
    db: str
    key: str
    notify: str = ""


class BareStockCall(BaseModel):
    stock_id: str
    order_id: str
    task_queue: str


class BareMail(BaseModel):
    port: int
    key: str


@workflow.defn
class BareStock:
    """A shared record that only counts the updates it receives (no validator)."""

    def __init__(self) -> None:
        self.count = 0

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    def change(self, order_id: str) -> int:
        self.count += 1
        return self.count


@workflow.defn
class BareOrder:
    def __init__(self) -> None:
        self.updates = 0

    @workflow.run
    async def run(self, spec: BareSpec) -> int:
        def io(n: int, notify: bool = False) -> Awaitable[Any]:
            return workflow.execute_activity(
                bare_io,
                BareIo(
                    db=spec.db,
                    key=f"{spec.order_id}.io{n}",
                    notify=spec.order_id if notify else "",
                ),
                start_to_close_timeout=timedelta(seconds=30),
            )

        def stock() -> Awaitable[Any]:
            return workflow.execute_activity(
                bare_stock,
                BareStockCall(
                    stock_id=spec.stock_id,
                    order_id=spec.order_id,
                    task_queue=workflow.info().task_queue,
                ),
                start_to_close_timeout=timedelta(seconds=30),
            )

        mails = 0

        async def mail() -> None:
            nonlocal mails
            mails += 1
            await workflow.execute_local_activity(
                bare_mail,
                BareMail(port=spec.smtp_port, key=f"{workflow.info().workflow_id}.{mails}"),
                start_to_close_timeout=timedelta(seconds=30),
            )

        for _ in range(spec.mails_before):
            await mail()
        for _ in range(spec.stock_before):
            await stock()
        for n in range(spec.io_before):
            await io(n, notify=n == spec.io_before - 1)
        for _ in range(spec.stock_after):
            await stock()
        for n in range(spec.updates):
            await workflow.wait_condition(lambda n=n: self.updates > n)
            for _ in range(spec.mails_per_update):
                await mail()
        for n in range(spec.io_after):
            await io(spec.io_before + n)
        for _ in range(spec.mails_after):
            await mail()
        return mails

    @workflow.update
    def carrier(self, event: str) -> int:
        self.updates += 1
        return self.updates


@activity.defn
async def bare_io(req: BareIo) -> str:
    """One SQLite insert, as the ledger and the carrier gateway do."""

    def write() -> None:
        with sqlite3.connect(req.db, timeout=30, isolation_level=None) as db:
            db.execute("INSERT OR IGNORE INTO io (key) VALUES (?)", (req.key,))

    await asyncio.to_thread(write)
    if req.notify:
        _event(req.notify).set()
    return req.key


@activity.defn
async def bare_stock(req: BareStockCall) -> int:
    """An update-with-start on a shared record, as reserve_stock and release_stock do."""
    client: Client = _bare_client["client"]
    start = WithStartWorkflowOperation(
        BareStock.run,
        id=req.stock_id,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=req.task_queue,
    )
    return await client.execute_update_with_start_workflow(
        BareStock.change, req.order_id, start_workflow_operation=start
    )


@activity.defn
async def bare_mail(req: BareMail) -> str:
    """One SMTP message to the sink, as the order's e-mails are sent."""

    def send() -> str:
        msg = EmailMessage()
        msg["From"] = "bare <bare@orderflow.local>"
        msg["To"] = "bare@example.com"
        msg["Subject"] = "bare"
        msg["Message-ID"] = f"<{req.key}@bare.local>"
        msg.set_content("bare")
        with smtplib.SMTP("127.0.0.1", req.port, timeout=10) as smtp:
            smtp.send_message(msg)
        return req.key

    return await asyncio.to_thread(send)


_bare_client: dict[str, Client] = {}


# ============================================================================ orderflow side


class CarrierDesk(CarrierActivities):
    """The real carrier activities; the bench (the carrier) hears of each booking made."""

    @activity.defn(name="book_shipment")
    async def book_shipment(self, req: BookShipment) -> Booking:
        booking = await super().book_shipment(req)
        _event(req.order_id).set()
        return booking


def orderflow_worker(client: Client, settings: Settings) -> Worker:
    acts: list[Any] = [
        a for a in activities_for(client, settings) if getattr(a, "__name__", "") != "book_shipment"
    ]
    acts.append(CarrierDesk(SqliteCarrierGateway(settings.carrier_path)).book_shipment)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=acts,
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        max_cached_workflows=settings.max_cached_workflows,
    )


def bare_worker(client: Client, settings: Settings) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[BareOrder, BareStock],
        activities=[bare_io, bare_stock, bare_mail],
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        max_cached_workflows=settings.max_cached_workflows,
    )


class Refusals:
    count = 0


async def carrier_update(send: Callable[[], Awaitable[Any]]) -> None:
    """Send one carrier event; a refusal because the booking is not recorded yet is retried."""
    for _ in range(500):
        try:
            await send()
            return
        except WorkflowUpdateFailedError:
            Refusals.count += 1
            await asyncio.sleep(0.02)
    raise RuntimeError("carrier event refused 500 times")


async def run_orders(
    app: Orderflow, settings: Settings, ids: list[str], concurrency: int, prefix: str
) -> float:
    client = app.client
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, order_id: str) -> None:
        async with gate:
            location, sku = RECORDS[i % len(RECORDS)]
            inp = app.order_input(
                customer_id="C-1001",
                sku=sku,
                qty=1,
                location=location,
                carrier="ups",
                pickup=False,
                order_id=order_id,
                actor="bench",
            )
            handle = await client.start_workflow(
                OrderWorkflow.run,
                inp,
                id=order_workflow_id(order_id),
                task_queue=settings.task_queue,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(ORDER_STATUS, "placed"),
                        SearchAttributePair(CUSTOMER_ID, "C-1001"),
                        SearchAttributePair(CARRIER, "ups"),
                    ]
                ),
            )
            await _event(order_id).wait()
            delivery = client.get_workflow_handle(delivery_workflow_id(order_id, 1))
            for name in ("picked-up", "delivered"):
                await carrier_update(
                    lambda name=name: delivery.execute_update(
                        DeliveryWorkflow.carrier_event, CarrierEvent(event=name)
                    )
                )
            view = await handle.result()
            assert view.status == "completed", view.status

    t0 = time.monotonic()
    await asyncio.gather(*(one(i, o) for i, o in enumerate(ids)))
    return time.monotonic() - t0


async def run_bare(
    client: Client, task_queue: str, specs: list[BareSpec], concurrency: int
) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(spec: BareSpec) -> None:
        async with gate:
            handle = await client.start_workflow(
                BareOrder.run, spec, id=f"bare-{spec.order_id}", task_queue=task_queue
            )
            await _event(spec.order_id).wait()
            for name in ("picked-up", "delivered", "x", "y", "z")[: spec.updates]:
                await carrier_update(
                    lambda name=name: handle.execute_update(BareOrder.carrier, name)
                )
            await handle.result()

    t0 = time.monotonic()
    await asyncio.gather(*(one(s) for s in specs))
    return time.monotonic() - t0


# ============================================================================ histories


async def history_counts(client: Client, workflow_id: str, run_id: str | None = None) -> Any:
    counts: collections.Counter[str] = collections.Counter()
    activity_types: collections.Counter[str] = collections.Counter()
    async for e in client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history_events():
        counts[EventType.Name(e.event_type)] += 1
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activity_types[e.activity_task_scheduled_event_attributes.activity_type.name] += 1
    return counts, activity_types


async def all_runs(client: Client, query: str) -> list[tuple[str, str]]:
    return [(wf.id, wf.run_id) async for wf in client.list_workflows(query)]


async def gather_limited(coros: list[Awaitable[Any]], limit: int = 32) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(c: Awaitable[Any]) -> Any:
        async with gate:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def visible(client: Client, query: str, expected: int, timeout: float = 30) -> None:
    """Visibility is eventually consistent: wait until it lists what we started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await client.count_workflows(query)).count >= expected:
            return
        await asyncio.sleep(0.2)


K_ACT = "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
K_MARKER = "EVENT_TYPE_MARKER_RECORDED"
K_UPDATE = "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"


# ============================================================================ main


async def main(orders: int, concurrency: int, warmup: int) -> None:
    configure("WARNING")
    tmp = Path(tempfile.mkdtemp(prefix="orderflow-throughput-"))
    extra: list[str] = []
    for pragma in SQLITE_PRAGMAS:
        extra += ["--sqlite-pragma", pragma]
    t_start = time.monotonic()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_database_filename=str(tmp / "temporal.sqlite3"),
        dev_server_extra_args=extra,
        search_attributes=list(ALL),
        data_converter=pydantic_data_converter,
        ip="127.0.0.1",
    )
    sink = SmtpSink(tmp / "maildir", port=free_port())
    sink.start()
    client = env.client
    _bare_client["client"] = client
    run_tag = uuid.uuid4().hex[:6]
    settings = Settings(
        data_dir=tmp,
        smtp_host="127.0.0.1",
        smtp_port=sink.controller.port,
        task_queue=f"bench-orders-{run_tag}",
    )
    registry = Registry(PROJECT_ROOT / "seeds")
    for n, loc in enumerate(BENCH_LOCATIONS):
        registry.locations[loc] = Location(
            location=loc,
            name=f"Bench store {n}",
            distance_km=n,
            stock={sku: 1_000_000 for sku in SKUS},
        )
    app = Orderflow(client, registry, settings)
    try:
        # ---------------------------------------------------------------- orderflow
        warm_ids = [f"W-{run_tag}-{i:04d}" for i in range(warmup)]
        ids = [f"T-{run_tag}-{i:05d}" for i in range(orders)]
        async with orderflow_worker(client, settings):
            await run_orders(app, settings, warm_ids, concurrency, "W")
            refused_warm = Refusals.count
            order_wall = await run_orders(app, settings, ids, concurrency, "T")
            order_refusals = Refusals.count - refused_warm

        per_order: list[tuple[collections.Counter[str], collections.Counter[str]]] = []
        results = await gather_limited(
            [history_counts(client, order_workflow_id(o)) for o in ids]
            + [history_counts(client, delivery_workflow_id(o, 1)) for o in ids]
        )
        for i in range(orders):
            (oc, oa), (dc, da) = results[i], results[orders + i]
            per_order.append((oc + dc, oa + da))
        stock_query = f"WorkflowType = 'StockWorkflow' AND TaskQueue = '{settings.task_queue}'"
        await visible(client, stock_query, len(RECORDS))
        stock_runs = await all_runs(client, stock_query)
        stock_counts = await gather_limited(
            [history_counts(client, wid, rid) for wid, rid in stock_runs]
        )
        stock_total = collections.Counter[str]()
        for c, _ in stock_counts:
            stock_total += c
        all_orders = orders + warmup  # the stock records served the warm-up orders too
        stock_share = sum(stock_total.values()) / all_orders

        def avg(key: str) -> float:
            return sum(c[key] for c, _ in per_order) / orders

        order_events = sum(sum(c.values()) for c, _ in per_order) / orders
        acts = avg(K_ACT)
        stock_acts = sum(a["reserve_stock"] + a["release_stock"] for _, a in per_order) / orders
        local_acts = avg(K_MARKER)
        updates = avg(K_UPDATE)
        stock_updates = stock_total[K_UPDATE] / all_orders

        # ---------------------------------------------------------------- bare
        n_act, n_stock = round(acts), round(stock_acts)
        n_mail, n_upd = round(local_acts), round(updates)
        n_io = n_act - n_stock
        mails_after = 1 if n_mail >= 1 else 0
        per_update = 1 if n_mail - mails_after >= n_upd else 0
        mails_before = n_mail - mails_after - per_update * n_upd
        bare_settings = Settings(
            data_dir=tmp,
            smtp_host="127.0.0.1",
            smtp_port=sink.controller.port,
            task_queue=f"bench-bare-{run_tag}",
        )
        db = tmp / "bare.sqlite3"
        with sqlite3.connect(db, isolation_level=None) as conn:
            conn.execute("PRAGMA journal_mode=wal")
            conn.execute("PRAGMA synchronous=normal")
            conn.execute(
                "CREATE TABLE io (key TEXT PRIMARY KEY, at TEXT DEFAULT CURRENT_TIMESTAMP)"
            )

        def spec(i: int, order_id: str) -> BareSpec:
            return BareSpec(
                order_id=order_id,
                stock_id=f"bare-stock-{run_tag}-{i % len(RECORDS)}",
                db=str(db),
                smtp_port=sink.controller.port,
                mails_before=mails_before,
                stock_before=math.ceil(n_stock / 2),
                io_before=max(n_io - 1, 1),
                stock_after=n_stock - math.ceil(n_stock / 2),
                updates=n_upd,
                mails_per_update=per_update,
                io_after=1 if n_io >= 2 else 0,
                mails_after=mails_after,
            )

        bare_warm = [spec(i, f"BW-{run_tag}-{i:04d}") for i in range(warmup)]
        bare_specs = [spec(i, f"BT-{run_tag}-{i:05d}") for i in range(orders)]
        async with bare_worker(client, bare_settings):
            await run_bare(client, bare_settings.task_queue, bare_warm, concurrency)
            refused_before = Refusals.count
            bare_wall = await run_bare(client, bare_settings.task_queue, bare_specs, concurrency)
            bare_refusals = Refusals.count - refused_before

        bare_hist = await gather_limited(
            [history_counts(client, f"bare-{s.order_id}") for s in bare_specs]
        )
        bare_events = sum(sum(c.values()) for c, _ in bare_hist) / orders
        bare_act = sum(c[K_ACT] for c, _ in bare_hist) / orders
        bare_marker = sum(c[K_MARKER] for c, _ in bare_hist) / orders
        bare_upd = sum(c[K_UPDATE] for c, _ in bare_hist) / orders
        bare_stock_query = (
            f"WorkflowType = 'BareStock' AND TaskQueue = '{bare_settings.task_queue}'"
        )
        await visible(client, bare_stock_query, len(RECORDS))
        bare_stock_runs = await all_runs(client, bare_stock_query)
        bare_stock = await gather_limited(
            [history_counts(client, wid, rid) for wid, rid in bare_stock_runs]
        )
        bare_stock_events = sum(sum(c.values()) for c, _ in bare_stock) / all_orders
        bare_stock_updates = sum(c[K_UPDATE] for c, _ in bare_stock) / all_orders
    finally:
        sink.stop()
        await env.shutdown()

    order_rate = orders / order_wall
    bare_rate = orders / bare_wall
    o_avg = per_order
    order_only = sum(sum(results[i][0].values()) for i in range(orders)) / orders
    delivery_only = sum(sum(results[orders + i][0].values()) for i in range(orders)) / orders
    print(
        f"cores {os.cpu_count()}, orders {orders} (+{warmup} warm-up each side), "
        f"concurrency {concurrency}, SQLite WAL dev server, total run "
        f"{time.monotonic() - t_start:.0f}s"
    )
    print(
        f"per order (from its real histories): {acts:.1f} activities ({stock_acts:.1f} of them "
        f"stock updates), {local_acts:.1f} local activities (e-mails), {updates:.1f} updates on "
        f"the order and delivery, {stock_updates:.1f} updates on stock records, "
        f"{avg('EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED'):.1f} signals received, "
        f"{avg('EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED'):.0f} child workflow"
    )
    print(
        f"bare workflow per order: {bare_act:.1f} activities, {bare_marker:.1f} local activities, "
        f"{bare_upd:.1f} updates, {bare_stock_updates:.1f} updates on shared records"
    )
    print(f"orderflow: {order_rate:.1f} orders/s ({order_wall:.1f}s for {orders})")
    print(f"bare:      {bare_rate:.1f} bare/s ({bare_wall:.1f}s for {orders})")
    print(f"ratio orderflow/bare: {order_rate / bare_rate:.2f} (target >= 0.8)")
    print(
        f"history events per order: {order_events + stock_share:.1f} = order {order_only:.1f} + "
        f"delivery {delivery_only:.1f} + stock share {stock_share:.1f} "
        f"({sum(stock_total.values())} events in {len(stock_runs)} stock runs / {all_orders} "
        f"orders) (target <= 40); bare: {bare_events + bare_stock_events:.1f} = "
        f"{bare_events:.1f} + shared records {bare_stock_events:.1f}"
    )
    print(
        f"carrier events refused as early and retried: orderflow {order_refusals}, bare {bare_refusals}"
    )
    del o_avg


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.concurrency, args.warmup))
