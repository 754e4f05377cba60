"""The customer's order page under load: VIEWERS customers each have their own order's page open,
over real HTTP to orderflow's listener (uvicorn), for ORDERS orders.

1. Open pages: each viewer loads the whole page once a second (what an open page costs when its
   order changes every second; an unchanged order costs only the one-query /version check),
   starting at random moments, for SECONDS. Then the same orders asked straight for their
   ``view`` query once a second each, the least any page must do. Prints each side's p50/p99
   and the page's ratio to the bare query, measured in this run.
2. Capacity: each viewer fetches its page again as soon as it arrives (closed loop), REQUESTS
   times: pages per second, and the latency that many pages in flight make.

    .venv/bin/python bench/web.py [--orders 50] [--viewers 50] [--seconds 10] [--requests 10]

Target (issue 21): page p99 under 100 ms at 50 concurrent viewers of 50 orders.

The dev server (SQLite WAL) and the worker share this process; the listener runs as
`orderflow web` in a process of its own, as deployed (``--same-process``: beside them, as on the
dev stack). All on the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from common import dev_server, full_flag, pct, progress, record

from domain.ids import order_workflow_id
from orderflow.codec import bench_converter
from orderflow.config import PROJECT_ROOT, Settings
from orderflow.devserver import free_port
from orderflow.identity import KeyRing, dev_keys
from orderflow.logging import configure
from orderflow.registry import Registry
from orderflow.service import Orderflow
from orderflow.smtp_sink import SmtpSink
from orderflow.web import bind, serve
from orderflow.worker import build_worker, order_desk
from workflows.order import OrderWorkflow

# The engine's payload codec, with a key of this run.
BENCH_CONVERTER = bench_converter()


async def up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def main(orders: int, viewers: int, seconds: float, requests: int, separate: bool) -> None:
    configure("WARNING")
    tmp = Path(tempfile.mkdtemp(prefix="orderflow-bench-web-"))
    env = await dev_server(tmp, BENCH_CONVERTER, dev_server_log_level="error")
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

    async def place(oid: str) -> None:
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

    try:
        async with build_worker(env.client, settings, desk=desk):
            if separate:
                # The listener in a process of its own (`orderflow web`), as deployed.
                web_proc = subprocess.Popen(  # noqa: ASYNC220 (once, before measuring)
                    [str(Path(sys.executable).parent / "orderflow"), "web"],
                    env={
                        **os.environ,
                        "ORDERFLOW_DATA_DIR": str(tmp),
                        "ORDERFLOW_WEB_PORT": str(settings.web_port),
                        "ORDERFLOW_TASK_QUEUE": settings.task_queue,
                        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                    },
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                await up(f"http://127.0.0.1:{settings.web_port}/healthz")
            else:
                web = asyncio.create_task(serve(settings, stop, bind(settings), env.client))
            ids = [f"W-{i:03d}" for i in range(orders)]
            t0 = time.monotonic()
            with progress("placing the orders", orders) as placed:
                for oid in ids:
                    await place(oid)
                    placed()
            for oid in ids:  # each order settles at its carrier's pickup
                while not (await app.view(oid)).deliveries:
                    await asyncio.sleep(0.05)
            placing = time.monotonic() - t0
            base = f"http://127.0.0.1:{settings.web_port}"

            # Each viewer opens the link of its order's e-mail, then keeps fetching the page.
            clients = []
            for i in range(viewers):
                oid = ids[i % orders]
                client = httpx.AsyncClient(base_url=base, timeout=30, follow_redirects=True)
                link = ring.for_customer("C-1001", oid, link=True)
                opened = await client.get(f"/o/{oid}?t={link}")
                assert opened.status_code == 200, opened.text[:200]
                clients.append((client, oid))

            async def paced(call: Any, times: list[float]) -> None:
                """Once a second from a random moment, for ``seconds``."""
                await asyncio.sleep(random.random())
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    began = time.perf_counter()
                    await call()
                    took = time.perf_counter() - began
                    times.append(took)
                    await asyncio.sleep(max(0.0, 1.0 - took))

            def page_of(client: httpx.AsyncClient, oid: str) -> Any:
                async def get() -> None:
                    response = await client.get(f"/o/{oid}")
                    assert response.status_code == 200

                return get

            def query_of(oid: str) -> Any:
                handle = env.client.get_workflow_handle_for(
                    OrderWorkflow.run, order_workflow_id(oid)
                )

                async def ask() -> None:
                    await handle.query(OrderWorkflow.view)

                return ask

            # Warm both paths, then measure the two sides one after the other.
            await asyncio.gather(*(c.get(f"/o/{oid}") for c, oid in clients))
            page_times: list[float] = []
            with progress(f"pages, {seconds:g} s", None):
                await asyncio.gather(*(paced(page_of(c, oid), page_times) for c, oid in clients))
            query_times: list[float] = []
            with progress(f"bare queries, {seconds:g} s", None):
                await asyncio.gather(*(paced(query_of(oid), query_times) for _, oid in clients))

            flat_out: list[float] = []

            async def flat(client: httpx.AsyncClient, oid: str) -> None:
                get = page_of(client, oid)
                for _ in range(requests):
                    began = time.perf_counter()
                    await get()
                    flat_out.append(time.perf_counter() - began)

            t_flat = time.monotonic()
            await asyncio.gather(*(flat(c, oid) for c, oid in clients))
            flat_wall = time.monotonic() - t_flat
            for client, _ in clients:
                await client.aclose()
            if separate:
                web_proc.terminate()
                web_proc.wait(timeout=20)
            else:
                stop.set()
                await web
    finally:
        sink.stop()
        await env.shutdown()

    p50, p99 = pct(page_times, 50) * 1000, pct(page_times, 99) * 1000
    q50, q99 = pct(query_times, 50) * 1000, pct(query_times, 99) * 1000
    print(
        f"cores {os.cpu_count()}; {orders} orders placed in {placing:.1f} s; {viewers} viewers "
        f"with their page open for {seconds:g} s; dev server and worker in one process, the "
        + ("listener in its own (orderflow web)" if separate else "listener beside them")
    )
    print(
        f"open pages, each loaded whole once a second ({len(page_times)} loads): p50 "
        f"{p50:.1f} ms, p99 {p99:.1f} ms (target p99 < 100 ms: "
        f"{'met' if p99 < 100 else 'NOT met'})"
    )
    print(
        f"bare view query once a second per order ({len(query_times)} queries): p50 {q50:.1f} ms, "
        f"p99 {q99:.1f} ms; ratio page/bare query: p50 {p50 / q50:.2f}, p99 {p99 / q99:.2f}"
    )
    print(
        f"capacity, {viewers} viewers reloading as fast as pages come: "
        f"{len(flat_out) / flat_wall:.0f} pages/s, p50 {pct(flat_out, 50) * 1000:.0f} ms, "
        f"p99 {pct(flat_out, 99) * 1000:.0f} ms"
    )
    record(
        "web",
        f"order page, {viewers} viewers once a second",
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; bare view query p99 {q99:.1f} ms",
        "p99 < 100 ms",
        p99 < 100,
    )
    record("web", "order page capacity", f"{len(flat_out) / flat_wall:.0f} pages/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument(
        "--same-process",
        action="store_true",
        help="serve the listener in this process, beside the dev server and the worker",
    )
    full_flag(parser, "30 s of viewing, 20 reloads each for capacity")
    args = parser.parse_args()
    if args.full:
        args.seconds, args.requests = max(args.seconds, 30), max(args.requests, 20)
    asyncio.run(main(args.orders, args.viewers, args.seconds, args.requests, not args.same_process))
