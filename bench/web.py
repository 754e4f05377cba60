"""The customer's order page under load: VIEWERS customers each keep their own order's page open
and fetch it again as soon as it arrives, over real HTTP to orderflow's listener (uvicorn), for
ORDERS orders; then the same orders asked straight for their ``view`` query, the least any page
must do, at the same concurrency. Prints each side's p50/p99 and the page's ratio to the bare
query, measured in this run.

    .venv/bin/python bench/web.py [--orders 50] [--viewers 50] [--requests 20]

Target (issue 21): page p99 under 100 ms at 50 concurrent viewers of 50 orders.

The dev server (SQLite WAL), the worker and the listener share this process and its 2 cores,
as on the dev stack.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from domain.ids import order_workflow_id
from orderflow.codec import bench_converter
from orderflow.config import PROJECT_ROOT, Settings
from orderflow.devserver import SQLITE_PRAGMAS, free_port, temporal_binary
from orderflow.identity import KeyRing, dev_keys
from orderflow.logging import configure
from orderflow.registry import Registry
from orderflow.service import Orderflow
from orderflow.smtp_sink import SmtpSink
from orderflow.web import bind, serve
from orderflow.worker import build_worker, order_desk
from workflows.order import OrderWorkflow
from workflows.search_attributes import ALL

# The engine's payload codec, with a key of this run.
BENCH_CONVERTER = bench_converter()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def main(orders: int, viewers: int, requests: int) -> None:
    configure("WARNING")
    tmp = Path(tempfile.mkdtemp(prefix="orderflow-bench-web-"))
    extra: list[str] = []
    for pragma in SQLITE_PRAGMAS:
        extra += ["--sqlite-pragma", pragma]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        dev_server_database_filename=str(tmp / "temporal.sqlite3"),
        dev_server_extra_args=extra,
        dev_server_log_level="error",
        search_attributes=list(ALL),
        data_converter=BENCH_CONVERTER,
    )
    sink = SmtpSink(tmp / "maildir", port=free_port())
    sink.start()
    settings = Settings(
        data_dir=tmp,
        smtp_host="127.0.0.1",
        smtp_port=sink.controller.port,
        task_queue=f"bench-{uuid.uuid4().hex[:8]}",
        web_port=free_port(),
    )
    registry = Registry(PROJECT_ROOT / "seeds")
    dev_keys(settings, registry)
    desk = order_desk(settings, registry)
    app = Orderflow(env.client, registry, settings, desk=desk)
    ring = KeyRing(settings.keys_path)
    stop = asyncio.Event()
    try:
        async with build_worker(env.client, settings, desk=desk):
            web = asyncio.create_task(serve(settings, stop, bind(settings), env.client))
            ids = [f"W-{i:03d}" for i in range(orders)]
            t0 = time.monotonic()
            for oid in ids:
                inp = app.order_input(
                    customer_id="C-1001",
                    sku="CASE-X12",
                    qty=1,
                    location="warehouse-north",
                    carrier="ups",
                    pickup=False,
                    order_id=oid,
                )
                await app.place_order(inp)
            for oid in ids:  # each order settles at its carrier's pickup
                while not (await app.view(oid)).deliveries:
                    await asyncio.sleep(0.05)
            placing = time.monotonic() - t0
            base = f"http://127.0.0.1:{settings.web_port}"

            # Each viewer opens the link of its order's e-mail, then keeps fetching the page.
            clients = []
            for i in range(viewers):
                oid = ids[i % orders]
                client = httpx.AsyncClient(base_url=base, timeout=30)
                link = ring.for_customer("C-1001", oid, link=True)
                opened = await client.get(f"/o/{oid}?t={link}")
                assert opened.status_code == 200, opened.text[:200]
                clients.append((client, oid))

            page_times: list[float] = []

            async def viewer(client: httpx.AsyncClient, oid: str) -> None:
                for _ in range(requests):
                    began = time.perf_counter()
                    response = await client.get(f"/o/{oid}")
                    page_times.append(time.perf_counter() - began)
                    assert response.status_code == 200

            query_times: list[float] = []

            async def querier(oid: str) -> None:
                handle = env.client.get_workflow_handle_for(
                    OrderWorkflow.run, order_workflow_id(oid)
                )
                for _ in range(requests):
                    began = time.perf_counter()
                    await handle.query(OrderWorkflow.view)
                    query_times.append(time.perf_counter() - began)

            # Warm both paths, then measure the two sides one after the other.
            await asyncio.gather(*(c.get(f"/o/{oid}") for c, oid in clients))
            t_page = time.monotonic()
            await asyncio.gather(*(viewer(c, oid) for c, oid in clients))
            page_wall = time.monotonic() - t_page
            t_query = time.monotonic()
            await asyncio.gather(*(querier(oid) for _, oid in clients))
            query_wall = time.monotonic() - t_query
            for client, _ in clients:
                await client.aclose()
            stop.set()
            await web
    finally:
        sink.stop()
        await env.shutdown()

    p50, p99 = pct(page_times, 50) * 1000, pct(page_times, 99) * 1000
    q50, q99 = pct(query_times, 50) * 1000, pct(query_times, 99) * 1000
    print(
        f"cores {os.cpu_count()}; {orders} orders placed in {placing:.1f} s; {viewers} "
        f"concurrent viewers x {requests} requests each; dev server, worker and listener in "
        "one process"
    )
    print(
        f"order page (HTTP, session cookie, view + timeline queries, rendered): p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, {len(page_times) / page_wall:.0f} pages/s (target p99 < 100 ms: "
        f"{'met' if p99 < 100 else 'NOT met'})"
    )
    print(
        f"bare view query (Temporal client): p50 {q50:.1f} ms, p99 {q99:.1f} ms, "
        f"{len(query_times) / query_wall:.0f} queries/s"
    )
    print(f"ratio page/bare query: p50 {p50 / q50:.2f}, p99 {p99 / q99:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.viewers, args.requests))
