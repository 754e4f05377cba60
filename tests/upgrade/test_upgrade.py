"""An upgrade as an operator does it, with orders open at every point where an order waits.

A worker of the base version (a git worktree of the commit in ``tests/upgrade/BASE``) brings
orders to their waiting points (``waiting_points.py``, run on the base version's code). The
operator stops it with SIGTERM and starts today's worker on the same task queue, ledger and
sent-log. Today's code then drives every order to its end: each completes as the base version
promised, no workflow task fails, no e-mail goes out twice and nothing is charged twice.

With ``ORDERFLOW_RECORD_HISTORIES=1`` the histories of the waiting orders, as the base version
left them, are saved under ``tests/histories/<base version>/`` (never overwriting a file), so
the replay test holds every waiting point of every released version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.billing import Ledger
from domain.carrier import CarrierEvent
from domain.holds import ReleaseHold
from domain.promises import KeepPromise
from domain.view import OrderView
from orderflow.config import PROJECT_ROOT, Settings
from orderflow.devserver import free_port, temporal_binary
from orderflow.identity import dev_keys
from orderflow.registry import Registry
from orderflow.service import Orderflow
from orderflow.smtp_sink import SmtpSink, read_inbox
from tests.conftest import HISTORIES, RECORD, TEST_CODEC_FILE, save_history, start_dev_server

HERE = Path(__file__).parent
BASE_VERSION, BASE_COMMIT = (HERE / "BASE").read_text().split()
DRIVER = HERE / "waiting_points.py"
AT_THE_DOOR = "40.7129,-74.0061"


@pytest.fixture(scope="module")
def base_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The engine as it was released: a git worktree of the base commit."""
    where = tmp_path_factory.mktemp("base") / "tree"
    git = ["git", "-C", str(PROJECT_ROOT)]
    subprocess.run([*git, "worktree", "prune"], check=True)
    subprocess.run(
        [*git, "worktree", "add", "--detach", "--quiet", str(where), BASE_COMMIT],
        check=True,
        capture_output=True,
    )
    try:
        yield where
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(where)], check=False)


@pytest.fixture
async def server() -> AsyncIterator[WorkflowEnvironment]:
    """A server of its own: stock records are shared by every worker of a namespace."""
    env = await start_dev_server()
    yield env
    await env.shutdown()


class WorkerProcess:
    """``orderflow worker`` from one tree of the engine, as an operator runs it."""

    def __init__(self, tree: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.env = {**env, "PYTHONPATH": str(tree)}
        self.tree = tree
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from orderflow.cli import main; main(['worker'])"],
                cwd=tree,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while "worker_started" not in log.read_text():
            assert self.proc.poll() is None, f"worker exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.1)

    def code_path(self) -> str:
        """Where this worker's workflow code comes from (the tree it was started from)."""
        out = subprocess.run(
            [sys.executable, "-c", "import workflows.order as m; print(m.__file__)"],
            cwd=self.tree,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops a container: running calls may finish."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("worker did not stop on SIGTERM") from None
        assert code == 0, f"worker exited {code}: {self.log.read_text()[-2000:]}"
        assert "worker_stopped" in self.log.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------ driving to the end


class Finisher:
    """Today's client, finishing what the base version's orders wait for."""

    def __init__(self, app: Orderflow) -> None:
        self.app = app

    async def until(self, order_id: str, ok: Any, timeout: float = 60) -> OrderView:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.app.view(order_id)
            if ok(view):
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"{order_id} stuck at {view.status}: {view.next_step}")
            await asyncio.sleep(0.1)

    async def release_all(self, order_id: str) -> None:
        view = await self.app.view(order_id)
        for hold in view.holds:
            if hold.status in ("active", "disputed", "upheld"):
                await self.app.release_hold(
                    order_id,
                    ReleaseHold(
                        hold_id=hold.hold_id,
                        department=hold.department,
                        actor="ana",
                        resolution="Cleared after the upgrade.",
                    ),
                )

    async def deliver(self, order_id: str, delivery: int = 1) -> None:
        """The carrier takes the parcel (if it has not yet) and delivers it."""
        view = await self.until(
            order_id,
            lambda v: len(v.deliveries) >= delivery and v.deliveries[delivery - 1].tracking,
        )
        if view.deliveries[delivery - 1].status == "booked":
            await self.event(order_id, "picked-up", delivery)
        await self.event(order_id, "delivered", delivery)

    async def event(
        self, order_id: str, event: str, delivery: int | None = None, **ev: str
    ) -> None:
        await self.app.carrier_event(
            order_id,
            CarrierEvent(event=event, evidence=ev, location=ev.get("location", "")),  # type: ignore[arg-type]
            delivery,
        )

    async def keep_promises(self, order_id: str) -> None:
        view = await self.app.view(order_id)
        for p in view.promises:
            if p.status == "open" and p.kind == "callback":
                await self.app.keep_promise(
                    order_id, KeepPromise(promise_id=p.promise_id, note="called", actor="sam")
                )

    async def finish(self, order_id: str, scenario: str) -> None:
        if scenario.startswith("held-"):
            await self.release_all(order_id)
            await self.deliver(order_id)
        elif scenario == "waitlisted":
            await self.app.receive_stock("store-downtown", "PHONE-X12", 1, "DN-UPGRADE-1")
            await self.deliver(order_id)
        elif scenario == "ready-for-pickup":
            await self.app.pickup(order_id, "store-mall")
        elif scenario == "attempted-unverified":
            now = datetime.now(UTC).isoformat()
            await self.event(order_id, "attempted", photo="IMG_9.jpg", gps=AT_THE_DOOR, time=now)
            await self.event(order_id, "delivered")
        elif scenario == "tracing":
            await self.event(order_id, "scan", location="Hub North")
            await self.event(order_id, "delivered")
        elif scenario == "promise-pending":
            await self.keep_promises(order_id)
            await self.deliver(order_id)
        elif scenario == "cancelled-in-delivery":
            await self.keep_promises(order_id)
        elif scenario == "lost-and-reshipped":
            await self.deliver(order_id, delivery=2)
        elif scenario == "scarce-stock":
            if order_id.endswith("-3"):  # the last in line: stock for both waiting orders
                await self.app.receive_stock("warehouse-north", "LAPTOP-P14", 2, "DN-UPGRADE-2")
            await self.deliver(order_id)
        else:  # booked, in transit, rescheduled, redirected
            await self.deliver(order_id)


EXPECTED_LEDGER = {"cancelled-in-delivery": ["authorize", "void"]}


async def histories(client: Client, task_queue: str) -> list[Any]:
    found = []
    async for wf in client.list_workflows(f"TaskQueue = '{task_queue}'"):
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        found.append((wf, await handle.fetch_history()))
    return found


async def quiet(client: Client, task_queue: str, still: float = 0.5) -> None:
    """Until no workflow on the queue is in the middle of a task: the histories stop growing."""
    last: dict[str, int] = {}
    for _ in range(60):
        now = {
            f"{wf.id}/{wf.run_id}": wf.history_length
            async for wf in client.list_workflows(f"TaskQueue = '{task_queue}'")
        }
        if now == last:
            return
        last = now
        await asyncio.sleep(still)
    raise AssertionError("the workflows never went quiet")


def save_waiting_histories(found: list[Any], orders: dict[str, str]) -> None:
    """The waiting points as the base version left them, for the replay test."""
    counts: Counter[tuple[str, str]] = Counter()
    for wf, history in sorted(found, key=lambda f: (f[0].id, f[0].start_time)):
        scenario = next(
            (
                s
                for o, s in orders.items()
                if wf.id == f"order-{o}" or wf.id.startswith(f"delivery-{o}-")
            ),
            wf.id,  # a stock record
        )
        counts[scenario, wf.workflow_type] += 1
        n = counts[scenario, wf.workflow_type]
        save_history(
            HISTORIES / BASE_VERSION, f"waiting.{scenario}.{wf.workflow_type}.{n}.json", history
        )


def set_current_version(address: str, build_id: str) -> None:
    """What an operator runs once today's workers poll: route every workflow to them."""
    subprocess.run(
        [
            str(temporal_binary()),
            "worker",
            "deployment",
            "set-current-version",
            "--address",
            address,
            "--deployment-name",
            "orderflow",
            "--build-id",
            build_id,
            "--yes",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.mark.parametrize("rollout", ["unversioned", "deployment"])
async def test_orders_open_on_the_base_version_finish_on_todays_worker(
    base_tree: Path, server: WorkflowEnvironment, tmp_path: Path, rollout: str
) -> None:
    """``unversioned``: today's worker replaces the old one on the task queue. ``deployment``:
    today's worker joins a Worker Deployment as a version, made current once it polls."""
    sink = SmtpSink(tmp_path / "maildir", port=free_port())
    sink.start()
    task_queue = f"upgrade-{os.getpid()}"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    address = server.client.service_client.config.target_host
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "ORDERFLOW_TASK_QUEUE": task_queue,
        "ORDERFLOW_DATA_DIR": str(data_dir),
        "ORDERFLOW_SMTP_HOST": "127.0.0.1",
        "ORDERFLOW_SMTP_PORT": str(sink.controller.port),
        # Today's worker encrypts with the tests' codec key, as the test's client does (the
        # base version's worker knows no codec and ignores it).
        "ORDERFLOW_CODEC_KEYS_FILE": str(TEST_CODEC_FILE),
        # Workflow code runs in the SDK's sandbox under test: a non-deterministic call fails.
        "ORDERFLOW_WORKFLOW_SANDBOX": "1",
    }
    workers: list[WorkerProcess] = []
    try:
        # 1. The base version's worker, and orders brought to every waiting point by it.
        old = WorkerProcess(base_tree, env, tmp_path / "old-worker.log")
        workers.append(old)
        assert old.code_path().startswith(str(base_tree))
        driver = await asyncio.create_subprocess_exec(
            sys.executable,
            str(DRIVER),
            address,
            task_queue,
            str(data_dir),
            env["ORDERFLOW_SMTP_PORT"],
            cwd=base_tree,
            env={**env, "PYTHONPATH": str(base_tree)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(driver.communicate(), timeout=150)
        assert driver.returncode == 0, err.decode()[-3000:]
        orders: dict[str, str] = json.loads(out.decode().strip().splitlines()[-1])["orders"]
        assert len(orders) >= 18
        client = server.client
        stock_runs = [
            wf
            async for wf in client.list_workflows("WorkflowId = 'stock-warehouse-north-LAPTOP-P14'")
        ]
        assert len(stock_runs) >= 2, "the scarce stock record should have continued as new"
        if RECORD:
            await quiet(client, task_queue)
            save_waiting_histories(await histories(client, task_queue), orders)

        # 2. The operator stops it and starts today's worker on the same queue and data.
        old.stop()
        # Today's engine takes only signed updates: the operator gives every principal of the
        # seeds its key and the worker its trust store (here, as ``orderflow dev`` does).
        dev_keys(Settings(data_dir=data_dir), Registry(PROJECT_ROOT / "seeds"))
        build_id = f"today-{os.getpid()}"
        new_env = env if rollout == "unversioned" else {**env, "ORDERFLOW_BUILD_ID": build_id}
        new = WorkerProcess(PROJECT_ROOT, new_env, tmp_path / "new-worker.log")
        workers.append(new)
        assert new.code_path().startswith(str(PROJECT_ROOT))
        if rollout == "deployment":
            set_current_version(address, build_id)

        # 3. Today's client drives every order to its end.
        settings = Settings(
            data_dir=data_dir,
            smtp_host="127.0.0.1",
            smtp_port=sink.controller.port,
            task_queue=task_queue,
        )
        app = Orderflow(client, Registry(PROJECT_ROOT / "seeds"), settings)
        finisher = Finisher(app)
        await asyncio.gather(*(finisher.finish(o, s) for o, s in orders.items()))
        results: dict[str, OrderView] = {}
        for order_id in orders:
            handle = client.get_workflow_handle(f"order-{order_id}", result_type=OrderView)
            results[order_id] = await asyncio.wait_for(handle.result(), timeout=60)

        if rollout == "deployment":
            # The orders the old worker started finished on the version made current.
            for order_id in orders:
                info = (
                    await client.get_workflow_handle(f"order-{order_id}").describe()
                ).raw_description.workflow_execution_info.versioning_info
                assert info.deployment_version.build_id == build_id, (order_id, info)

        # Every order ended as the base version promised, charged once.
        ledger = Ledger(settings.ledger_path)
        for order_id, scenario in orders.items():
            view = results[order_id]
            kinds = [e.kind for e in ledger.entries(order_id)]
            if scenario == "cancelled-in-delivery":
                assert view.status == "cancelled", order_id
                assert view.charged == 0
            else:
                assert view.status == "completed", (order_id, view.status)
                assert view.charged == view.total
            assert kinds == EXPECTED_LEDGER.get(scenario, ["authorize", "capture"]), (
                order_id,
                kinds,
            )
            assert all(p.status != "open" for p in view.promises), order_id

        # No workflow task failed, before or after the upgrade, in any workflow.
        found = await histories(client, task_queue)
        failed = [
            (wf.id, event.event_id, event.workflow_task_failed_event_attributes.failure.message)
            for wf, history in found
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
        assert failed == []
        # No e-mail went out twice: one message per position of each workflow's outbox, and
        # the inbox holds exactly what the sent-log recorded.
        with contextlib.closing(sqlite3.connect(settings.sent_log_path)) as db:
            keys = [row[0] for row in db.execute("SELECT key FROM sent")]
        positions = Counter(key.rsplit(".", 1)[0] for key in keys)
        assert [p for p, n in positions.items() if n > 1] == []
        assert len(read_inbox(sink.handler.dir)) == len(keys)
        assert sink.handler.duplicates == 0
    finally:
        for worker in workers:
            worker.kill()
        sink.stop()
