"""Many open orders, each with one pending promise, on one worker: the worker's peak memory and
how late broken promises reach the customer.

Starts its own Temporal dev server (SQLite in WAL mode, as `orderflow dev` runs it), the SMTP sink
(in this process) and ONE worker as a separate process (`.venv/bin/orderflow worker`, configured
through its environment, as an operator runs it), then:

1. places N orders (default 2,000; the issue aims at 10,000, which takes ~15 minutes here, see
   below), each with a billing hold in the same call (update-with-start of `place_hold`), so
   every order stops before its first step and does nothing else;
2. makes one `make_promise` (a care callback) on each order, due at a fixed time after this
   phase ends, the due times spread evenly at R per second (default 10/s);
3. lets every promise break: the order's deadline loop fires, the customer is e-mailed
   ("we did not keep our promise") and so is the care supervisor.

Every call carries a token, as a real caller's does (the worker refuses updates without one):
orders are placed as the order desk, holds as billing, promises as care, with keys the bench
makes for every principal of the seeds (``dev_keys``, in the worker's keys dir) before the
worker starts.

Lateness of a promise = when its customer e-mail reached the SMTP sink minus its due time
(what the customer sees); also reported for a sample of orders: the promise's `settled_at` in
the order view (workflow time: when the worker's workflow task started) minus its due time.
Memory: the worker process's peak RSS (VmHWM in /proc/PID/status) after each phase; the worker
caches up to `max_cached_workflows` orders (default 1,000), so most orders are replayed from
history when their timer fires. `--max-cached` sets ORDERFLOW_MAX_CACHED_WORKFLOWS to compare.

Setting up costs the worker about as much as the firing (four e-mails and two workflow tasks per
order), so the default size keeps the whole run near 6 minutes on 2 cores; `--orders 10000`
is the issue's size.

Run: .venv/bin/python bench/promises.py [--orders 2000] [--due-rate 10] [--max-cached N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import dev_server, pct
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from domain.holds import PlaceHold
from domain.ids import order_workflow_id
from domain.promises import MakePromise
from orderflow.auth import acting_as
from orderflow.codec import bench_converter
from orderflow.config import PROJECT_ROOT, Settings
from orderflow.devserver import free_port
from orderflow.identity import Principal, dev_keys
from orderflow.logging import configure
from orderflow.registry import Registry
from orderflow.service import Orderflow
from orderflow.smtp_sink import MaildirHandler, SmtpSink
from workflows.order import OrderWorkflow

BROKEN_SUBJECT = b"we did not keep our promise"
ORDER_HEADER = b"X-Orderflow-Order:"

# The engine's payload codec, with a key of this run (workers it starts read it too).
BENCH_CONVERTER = bench_converter()


class BrokenPromiseTimer(MaildirHandler):
    """The real Maildir sink, noting when each order's broken-promise e-mail was stored."""

    def __init__(self, maildir: Path) -> None:
        super().__init__(maildir)
        self.stored: dict[str, float] = {}
        self.messages = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        at = time.time()
        self.messages += 1
        raw: bytes = envelope.original_content or envelope.content
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        if BROKEN_SUBJECT in head:
            for line in head.splitlines():
                if line.startswith(ORDER_HEADER):
                    order_id = line[len(ORDER_HEADER) :].strip().decode()
                    self.stored.setdefault(order_id, at)
        return reply


def loadavg() -> str:
    one, five, _ = os.getloadavg()
    return f"machine load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


class WorkerProcess:
    """`orderflow worker` as an operator runs it, configured through its environment."""

    def __init__(self, address: str, settings: Settings, max_cached: int | None, log: Path) -> None:
        env = dict(os.environ)
        env.update(
            TEMPORAL_ADDRESS=address,
            ORDERFLOW_TASK_QUEUE=settings.task_queue,
            ORDERFLOW_DATA_DIR=str(settings.data_dir),
            ORDERFLOW_SMTP_HOST=settings.smtp_host,
            ORDERFLOW_SMTP_PORT=str(settings.smtp_port),
        )
        if max_cached is not None:
            env["ORDERFLOW_MAX_CACHED_WORKFLOWS"] = str(max_cached)
        self.command = [str(PROJECT_ROOT / ".venv" / "bin" / "orderflow"), "worker"]
        self.env_shown = " ".join(
            f"{k}={env[k]}"
            for k in (
                "TEMPORAL_ADDRESS",
                "ORDERFLOW_TASK_QUEUE",
                "ORDERFLOW_DATA_DIR",
                "ORDERFLOW_SMTP_HOST",
                "ORDERFLOW_SMTP_PORT",
                "ORDERFLOW_MAX_CACHED_WORKFLOWS",
            )
            if k in env
        )
        self.task_queue = settings.task_queue
        self.t0 = time.monotonic()
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            self.command, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def started(self) -> float:
        return time.monotonic() - self.t0

    async def wait_polling(self, client: Client, timeout: float = 120) -> None:
        """Until the worker polls its task queue, so the first orders do not wait for it."""
        request = DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        while not (await client.workflow_service.describe_task_queue(request)).pollers:
            if self.proc.poll() is not None or self.started() > timeout:
                raise RuntimeError(f"the worker did not start; see {self.log.name}")
            await asyncio.sleep(0.2)

    def status(self, key: str) -> int:
        """A /proc/PID/status figure in MiB (VmRSS now, VmHWM peak)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
        return 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


async def main(args: argparse.Namespace) -> int:
    configure("WARNING")
    n = args.orders
    tmp = Path(tempfile.mkdtemp(prefix="orderflow-bench-promises-"))
    env = await dev_server(tmp, BENCH_CONVERTER, dev_server_log_level="error")
    sink = SmtpSink(tmp / "maildir", port=free_port())
    handler = BrokenPromiseTimer(tmp / "maildir")
    sink.controller.handler = handler
    sink.start()
    settings = Settings(
        data_dir=tmp / "worker",
        smtp_host="127.0.0.1",
        smtp_port=sink.controller.port,
        task_queue=f"bench-{uuid.uuid4().hex[:8]}",
    )
    registry = Registry(PROJECT_ROOT / "seeds")
    # A key for every principal of the seeds in the worker's keys dir (its data dir), before
    # the worker starts and loads the trust store.
    dev_keys(settings, registry)
    care = Principal.parse("care")
    address = env.client.service_client.config.target_host
    worker = WorkerProcess(address, settings, args.max_cached, tmp / "worker.log")
    cached = args.max_cached if args.max_cached is not None else settings.max_cached_workflows
    print(
        f"cores {os.cpu_count()}; command: {' '.join(sys.argv)}\n"
        f"worker: {worker.env_shown} {' '.join(worker.command)} (pid {worker.proc.pid}; "
        f"max_cached_workflows {cached}, max_concurrent_workflow_tasks "
        f"{settings.max_concurrent_workflow_tasks}); log {tmp / 'worker.log'}",
        flush=True,
    )
    app = Orderflow(env.client, registry, settings)
    await worker.wait_polling(env.client)
    print(f"worker polling after {worker.started():.1f} s; {loadavg()}", flush=True)
    gate = asyncio.Semaphore(args.concurrency)
    ok = True

    async def place(i: int) -> None:
        async with gate:
            inp = app.order_input(
                customer_id="C-1001",
                sku="CASE-X12",
                qty=1,
                location="warehouse-north",
                carrier="ups",
                pickup=False,
                order_id=f"P-{i:05d}",
            )
            await app.place_order_on_hold(
                inp,
                PlaceHold(
                    department="billing",
                    reason_code="arrears",
                    customer_message="Balance due.",
                    reference=f"INV-{i}",
                ),
            )

    due: dict[str, datetime] = {}

    async def promise(i: int, at: datetime) -> None:
        async with gate:
            order_id = f"P-{i:05d}"
            due[order_id] = at
            # Straight to the order's update, as a department system on the SDK would:
            # Orderflow.make_promise queries the order first (see the report). The app's
            # client signs it, as care's system.
            with acting_as(care, "bench", order_id):
                await app.client.get_workflow_handle(order_workflow_id(order_id)).execute_update(
                    OrderWorkflow.make_promise,
                    MakePromise(
                        kind="callback",
                        due_at=at,
                        text="call you back about your balance",
                        department="care",
                        actor="bench",
                    ),
                )

    cpu: dict[str, float] = {}

    def memory(label: str) -> str:
        cpu[label] = worker.cpu_seconds()
        return (
            f"worker RSS {worker.status('VmRSS')} MiB now, peak {worker.status('VmHWM')} MiB, "
            f"CPU {worker.cpu_seconds():.0f} s so far ({label})"
        )

    t0 = time.monotonic()
    try:
        # 1. orders, each stopped by a hold before its first step
        await asyncio.gather(*(place(i) for i in range(n)))
        placed = time.monotonic() - t0
        print(
            f"1. placed {n} held orders in {placed:.1f} s ({n / placed:.0f}/s); {memory('placed')}"
        )

        # 2. one promise per order, due after this phase: making a promise costs the worker about
        # 0.4 of placing a held order (one e-mail instead of three), hence the default margin.
        t1 = time.monotonic()
        first_due = datetime.now(UTC) + timedelta(seconds=placed * args.margin + args.lead)
        window = n / args.due_rate
        step = timedelta(seconds=1 / args.due_rate)
        await asyncio.gather(*(promise(i, first_due + i * step) for i in range(n)))
        made = time.monotonic() - t1
        slack = (first_due - datetime.now(UTC)).total_seconds()
        print(
            f"2. made {n} promises in {made:.1f} s ({n / made:.0f}/s); the first falls due "
            f"{slack:.1f} s later, the last {window:.0f} s after it ({args.due_rate:g} due per "
            f"second); {memory('promised')}",
            flush=True,
        )
        if slack <= 0:
            print("   WARNING: promises fell due before all were made; raise --margin")
        rss_open = worker.status("VmHWM")

        # 3. every promise breaks
        deadline = time.time() + slack + window + args.grace
        while len(handler.stored) < n and time.time() < deadline:
            await asyncio.sleep(1)
        fired = time.monotonic() - t1 - made
        print(
            f"3. broken-promise e-mails stored: {len(handler.stored)}/{n}; {memory('fired')}; "
            f"{loadavg()}"
        )

        late = [handler.stored[o] - due[o].timestamp() for o in handler.stored]
        missing = n - len(late)
        sample_ids = random.Random(1).sample(sorted(due), min(args.sample, n))
        settled: list[float] = []
        unread = 0
        for order_id in sample_ids:
            try:
                view = await env.client.get_workflow_handle(order_workflow_id(order_id)).query(
                    OrderWorkflow.view, rpc_timeout=timedelta(seconds=30)
                )
            except RPCError:
                unread += 1
                continue
            p = view.promises[0]
            if p.status == "broken" and p.settled_at is not None:
                settled.append((p.settled_at - p.due_at).total_seconds())
    finally:
        rss_peak = worker.status("VmHWM")
        worker.stop()
        sink.stop()
        await env.shutdown()

    ms = 1000.0
    print(f"\n== {n} open orders with one pending promise each, on one worker ==")
    print(
        f"worker peak RSS {rss_peak} MiB ({rss_open} MiB with all {n} orders open and promised; "
        f"max_cached_workflows {cached})"
    )
    if late:
        print(
            f"promise due -> customer's broken-promise e-mail stored: p50 {pct(late, 50) * ms:.0f} ms, "
            f"p99 {pct(late, 99) * ms:.0f} ms, max {max(late) * ms:.0f} ms, min {min(late) * ms:.0f} ms "
            f"({len(late)} e-mails, {missing} missing; {args.due_rate:g} promises due per second)"
        )
    if settled:
        print(
            f"promise due -> settled_at (workflow time), sample of {len(settled)}: "
            f"p50 {pct(settled, 50) * ms:.0f} ms, p99 {pct(settled, 99) * ms:.0f} ms, "
            f"max {max(settled) * ms:.0f} ms" + (f" ({unread} views unread)" if unread else "")
        )
    if len(handler.stored) > 1:
        span = max(handler.stored.values()) - min(handler.stored.values())
        print(
            f"broken-promise e-mails arrived over {span:.0f} s ({len(handler.stored) / span:.1f}/s "
            f"against {args.due_rate:g}/s falling due)"
        )
    print(
        f"e-mails stored by the sink: {handler.messages} ({handler.messages / n:.1f} per order); "
        f"firing phase {fired:.0f} s; total {time.monotonic() - t0:.0f} s; worker CPU "
        f"{cpu['placed'] / n * 1000:.0f} ms per order placed, "
        f"{(cpu['promised'] - cpu['placed']) / n * 1000:.0f} ms per promise made, "
        f"{(cpu['fired'] - cpu['promised']) / n * 1000:.0f} ms per promise broken"
    )
    met = bool(late) and not missing and pct(late, 99) < 1
    print("target p99 < 1 s:", "met" if met else "NOT met")
    ok &= not missing
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument(
        "--due-rate",
        type=float,
        default=10,
        help="promises falling due per second (the due times are spread evenly)",
    )
    parser.add_argument(
        "--max-cached", type=int, default=None, help="ORDERFLOW_MAX_CACHED_WORKFLOWS of the worker"
    )
    parser.add_argument("--concurrency", type=int, default=20, help="calls in flight")
    parser.add_argument(
        "--margin",
        type=float,
        default=0.6,
        help="first due time = placing time x margin + lead after the promises start",
    )
    parser.add_argument("--lead", type=float, default=10)
    parser.add_argument("--grace", type=float, default=60, help="wait for late e-mails")
    parser.add_argument("--sample", type=int, default=200, help="orders whose view is read")
    code = asyncio.run(main(parser.parse_args()))
    sys.stdout.flush()
    # The SDK runtime's threads can outlive the interpreter's finalization and abort it.
    os._exit(code)
