"""A worker killed while an order's first call runs: the order's history stays replayable.

When a call is still running as its workflow task must complete (a query that came with the
task of the order's first call, or a call past 8 of the task's 10 seconds), the worker completes the task
early and carries on in a new one. If that worker then dies and a department's update comes
in, the next worker must build exactly what a later replay builds; otherwise a fresh worker
hands one call's result to another and the order stops for good (workflows/support/gate.py).

Each test kills a real worker process with SIGKILL, places a hold while no worker runs, lets a
second worker take the hold, kills that one too, and then releases the hold through a third
worker, which has to replay the whole history to do it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.billing import Ledger
from domain.holds import PlaceHold, ReleaseHold
from domain.ids import order_workflow_id
from orderflow.config import PROJECT_ROOT
from orderflow.smtp_sink import SmtpSink
from tests.conftest import Stack, app_beside_worker, stack_settings

WORKER = Path(__file__).with_name("crash_worker.py")


class Workers:
    """Real worker processes on one task queue."""

    def __init__(self, env: WorkflowEnvironment, stack: Stack, data_dir: Path, port: int) -> None:
        self.address = env.client.service_client.config.target_host
        self.stack = stack
        self.data_dir = data_dir
        self.port = port
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, reserve_delay: float = 0.0) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                self.address,
                self.stack.app.settings.task_queue,
                str(self.data_dir),
                str(self.port),
                str(reserve_delay),
                # The worker's own terms: the test's store and the tests' policy.
                self.stack.app.registry.location(self.stack.location).model_dump_json(),
                self.stack.desk.policy.model_dump_json(),
            ],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)


@pytest.fixture
def crash(env: WorkflowEnvironment, sink: SmtpSink, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = stack_settings(sink, tmp_path)
    stack = Stack(
        app_beside_worker(env.client, settings),
        sink.handler.dir,
        Ledger(settings.ledger_path),
    )
    workers = Workers(env, stack, tmp_path, sink.controller.port)
    yield stack, workers
    workers.close()


HOLD = PlaceHold(
    department="billing",
    actor="ana",
    reason_code="arrears",
    customer_message="Your account shows 120.00 unpaid since October.",
    reference="INV-78",
)


async def hold_then_release_on_fresh_workers(stack: Stack, workers: Workers, order_id: str) -> None:
    """No worker runs: billing places a hold. A second worker takes it and is killed; a third,
    with nothing cached, replays the order to release the hold, and the order ships."""
    hold_call = asyncio.create_task(stack.app.place_hold(order_id, HOLD))
    await asyncio.sleep(0.3)
    second = workers.start()
    hold = await asyncio.wait_for(hold_call, timeout=40)
    await stack.until(order_id, lambda v: v.blocked_by == ["billing"] and v.reservation is not None)
    workers.kill(second)
    workers.start()
    released = await asyncio.wait_for(
        stack.app.release_hold(
            order_id,
            ReleaseHold(
                hold_id=hold.hold_id, department="billing", actor="ana", resolution="Paid."
            ),
        ),
        timeout=40,
    )
    assert released.blocked_by == []
    # Booked with the carrier: the goods have left the store.
    view = await stack.until(
        order_id,
        lambda v: v.reservation is not None and v.reservation.status == "collected",
        timeout=30,
    )
    assert view.status == "shipping" and view.deliveries[-1].tracking
    assert [e.kind for e in stack.ledger.entries(order_id)] == ["authorize"]


async def terms_recorded(stack: Stack, order_id: str) -> None:
    """Until the order's terms are in its history: its first call (the reservation) starts in
    the workflow task that follows."""
    handle = stack.client.get_workflow_handle(order_workflow_id(order_id))
    for _ in range(200):
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                return
        await asyncio.sleep(0.02)
    raise AssertionError(f"order {order_id} never recorded its terms")


async def test_query_with_the_first_call_then_a_crash_keeps_the_order_replayable(crash) -> None:  # type: ignore[no-untyped-def]
    stack, workers = crash
    inp = stack.order()
    await stack.app.place_order(inp)
    first = workers.start(reserve_delay=3)
    # Someone looks at the order while its first call runs: the query rides on that call's
    # workflow task, which the worker completes while the reservation still runs.
    await terms_recorded(stack, inp.order_id)
    look = asyncio.create_task(stack.app.view(inp.order_id))
    assert (await asyncio.wait_for(look, timeout=20)).order_id == inp.order_id
    workers.kill(first)
    await hold_then_release_on_fresh_workers(stack, workers, inp.order_id)


async def test_slow_first_call_then_a_crash_keeps_the_order_replayable(crash) -> None:  # type: ignore[no-untyped-def]
    stack, workers = crash
    inp = stack.order()
    first = workers.start(reserve_delay=9.5)
    await stack.app.place_order(inp)
    # The stock record does not answer: the reservation outlives its attempt's time limit (and,
    # before that limit existed, 8 of the task's 10 seconds, so the worker completed the task
    # early). The worker dies with the call still running.
    await asyncio.sleep(8.6)
    workers.kill(first)
    await hold_then_release_on_fresh_workers(stack, workers, inp.order_id)
