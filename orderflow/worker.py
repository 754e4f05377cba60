"""The worker: every workflow and activity of the engine on one task queue."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import (
    Interceptor,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkerDeploymentConfig,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities import clock
from activities.billing import Ledger, PaymentActivities
from activities.carrier import CarrierActivities, SqliteCarrierGateway
from activities.deliveries import DeliveryReadActivities
from activities.followup import FollowUpActivities
from activities.notify import Mailer, NotifyActivities, SentLog
from activities.stock import StockActivities, StockReadActivities
from activities.terms import TermsActivities
from domain.followup import SweepRequest
from orderflow.config import Settings
from orderflow.desk import OrderDesk, close_desk, open_desk
from orderflow.identity import ENGINE, TRUST_FILE, KeyRing, TrustStore
from orderflow.links import order_links
from orderflow.registry import Registry
from workflows.delivery import DeliveryWorkflow
from workflows.followup import FollowUpWorkflow, SweepWorkflow
from workflows.order import OrderWorkflow
from workflows.search_attributes import CUSTOMER_ID, ORDER_STATUS
from workflows.stock import StockWorkflow
from workflows.support.arguments import OneArgument
from workflows.support.credentials import Credentials

log = structlog.get_logger("orderflow.worker")

WORKFLOWS = [OrderWorkflow, StockWorkflow, DeliveryWorkflow, FollowUpWorkflow, SweepWorkflow]


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox when settings ask for it (tests), otherwise workflow code runs directly."""
    if settings.workflow_sandbox:
        return SandboxedWorkflowRunner()
    return UnsandboxedWorkflowRunner()


def load_trust(settings: Settings) -> TrustStore | None:
    """The trust store in the keys dir, when there is one (``orderflow dev`` creates it)."""
    path = settings.keys_path / TRUST_FILE
    if not path.exists():
        log.warning("no trust store: every update is refused", path=str(path))
        return None
    if not KeyRing(settings.keys_path).private_keys(ENGINE):
        log.warning(
            "no key of the engine: orders cannot reserve stock", keys=str(settings.keys_path)
        )
    return TrustStore.load(path)


def order_desk(settings: Settings, registry: Registry | None = None) -> OrderDesk:
    """The desk that sets each new order's terms: the seeds' registry, the settings' policy."""
    return OrderDesk(registry or Registry(settings.seeds_dir), settings.policy())


def activities_for(client: Client, settings: Settings, desk: OrderDesk) -> list[object]:
    notify = NotifyActivities(
        Mailer(
            settings.smtp_host,
            settings.smtp_port,
            SentLog(settings.sent_log_path),
            link=order_links(settings, desk.registry),
        )
    )
    payments = PaymentActivities(Ledger(settings.ledger_path))
    carrier = CarrierActivities(SqliteCarrierGateway(settings.carrier_path))
    # The engine's own updates (stock reservations) carry the engine's token.
    stock = StockActivities(
        client,
        settings.task_queue,
        KeyRing(settings.keys_path),
        batches=settings.stock_batches,
    )
    followup = FollowUpActivities(client, ORDER_STATUS, CUSTOMER_ID)
    terms = TermsActivities(desk)
    deliveries = DeliveryReadActivities(client)
    stock_reads = StockReadActivities(client)
    return [
        terms.order_terms,
        terms.placement_terms,
        notify.send_emails,
        payments.authorize_payment,
        payments.capture_payment,
        payments.void_payment,
        payments.refund_payment,
        carrier.book_shipment,
        carrier.cancel_shipment,
        carrier.open_trace,
        stock.reserve_stock,
        stock.release_stock,
        followup.start_followups,
        followup.read_ended_order,
        deliveries.read_delivery_reports,
        stock_reads.read_stock_record,
        clock.wait_until,
    ]


def deployment(settings: Settings) -> WorkerDeploymentConfig | None:
    """The worker's version in its Worker Deployment, when it has a build id.

    Every workflow upgrades in place (AUTO_UPGRADE): orders stay open for months, so none is
    pinned to the build that started it; changes to what workflows command go behind
    ``workflow.patched`` instead, and the replay and upgrade tests prove old orders still run.
    """
    if not settings.build_id:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(
            deployment_name=settings.deployment_name, build_id=settings.build_id
        ),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE,
    )


def build_worker(
    client: Client,
    settings: Settings,
    *,
    replace: Sequence[Any] = (),
    interceptors: Sequence[Interceptor] = (),
    desk: OrderDesk | None = None,
) -> OrderflowWorker:
    """The engine's worker. ``replace`` swaps standard activities for ones of the same name
    (the benches wrap a call to time it); ``interceptors`` are added to the worker's own (the
    reliability tests inject faults with them); ``desk`` sets new orders' terms (by default
    the seeds and the settings' policy)."""
    desk = desk or order_desk(settings)
    if desk.trust is None:
        desk.trust = load_trust(settings)
    swaps = {fn.__name__: fn for fn in replace}
    activities = [swaps.get(fn.__name__, fn) for fn in activities_for(client, settings, desk)]  # type: ignore[attr-defined]
    return OrderflowWorker(
        settings.task_queue,
        desk,
        client,
        workflows=WORKFLOWS,
        activities=activities,
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        max_cached_workflows=settings.max_cached_workflows,
        workflow_runner=workflow_runner(settings),
        deployment_config=deployment(settings),
        interceptors=[OneArgument(), Credentials(), *interceptors],
        identity=settings.worker_identity,
        # On SIGTERM, running activities get this long to finish before the worker stops.
        graceful_shutdown_timeout=timedelta(seconds=20),
    )


class OrderflowWorker(Worker):
    """A worker with its order desk open on its task queue while it runs."""

    def __init__(self, task_queue: str, desk: OrderDesk, client: Client, **kwargs: Any) -> None:
        super().__init__(client, task_queue=task_queue, **kwargs)
        self.desk = desk
        self._queue = task_queue

    async def run(self) -> None:
        open_desk(self._queue, self.desk)
        try:
            await super().run()
        finally:
            close_desk(self._queue, self.desk)


def sweep_schedule_id(task_queue: str) -> str:
    return f"orderflow-sweep-{task_queue}"


async def ensure_sweep_schedule(client: Client, settings: Settings) -> None:
    """The schedule that notices orders ended outside the engine (workflows/followup.py).
    Created once per task queue; a worker that finds it there leaves it as it is."""
    schedule_id = sweep_schedule_id(settings.task_queue)
    try:
        await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    SweepWorkflow.run,
                    SweepRequest(task_queue=settings.task_queue),
                    id=schedule_id,
                    task_queue=settings.task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=settings.sweep_every)]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
        log.info("sweep_schedule_created", schedule_id=schedule_id, every=str(settings.sweep_every))
    except ScheduleAlreadyRunningError:
        pass


async def run_worker(
    client: Client,
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    desk: OrderDesk | None = None,
) -> None:
    """Run until ``stop`` is set or SIGTERM/SIGINT arrives, then shut down gracefully."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    worker = build_worker(client, settings, desk=desk)
    await ensure_sweep_schedule(client, settings)
    log.info(
        "worker_started",
        task_queue=settings.task_queue,
        namespace=client.namespace,
        identity=settings.worker_identity or client.identity,
        deployment=settings.deployment_name if settings.build_id else None,
        build_id=settings.build_id,
    )
    async with worker:
        await stop.wait()
        log.info("worker_stopping", task_queue=settings.task_queue)
    log.info("worker_stopped", task_queue=settings.task_queue)
