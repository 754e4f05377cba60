"""The bare Temporal workflow that bench/throughput.py measures the engine against.

A plain workflow doing exactly the calls and updates a real order made (counted from its
histories), with the same kind of minimal I/O for each and no rules of its own. It lives in its
own module so that its worker can share it across runs the way the engine's worker shares the
engine's modules (see ``orderflow.worker.workflow_runner``).
"""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
from datetime import timedelta
from email.charset import QP, Charset
from email.mime.text import MIMEText
from email.utils import formatdate
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import SearchAttributeKey, WorkflowIDConflictPolicy

with workflow.unsafe.imports_passed_through():
    from orderflow.identity import ENGINE, KeyRing, verify
    from workflows.support.gate import TaskGuard

_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP

# The carrier (the bench) learns of a booking from the gateway, as a real carrier would.
booked: dict[str, asyncio.Event] = {}


def booking_event(key: str) -> asyncio.Event:
    return booked.setdefault(key, asyncio.Event())


class BareSpec(BaseModel):
    """What one bare workflow does, op by op. An op is "MODE:KIND[:notify]": MODE is ``act``
    (an activity) or ``local`` (a local activity); KIND is ``lookup`` (a look-up in memory),
    ``io`` (an SQLite insert), ``stock``
    (an update-with-start on a shared record) or ``mail`` (SMTP messages over one connection,
    as many as the order's e-mail call sent); ``notify`` tells the carrier (the bench) that the
    shipment is booked."""

    order_id: str
    stock_id: str
    db: str
    smtp_port: int
    before: list[str]
    updates: int
    per_update: list[str]
    after: list[str]
    # Messages per mail op, in order: the order's e-mail calls send several at once.
    mails: list[int] = []
    # The text of each message: as long as the order's e-mails are on average.
    body: str = "bare"
    # The order's shape: a child workflow per shipment takes the carrier's updates, started
    # before the booking (op with ``notify``); the workflow waits for it to finish.
    child: bool = False
    # The order's obligations (``bench/throughput.py --obligations``): the start's token checked
    # by the first call and every update's by a validator, the stock's signed by the worker, a
    # signed link in every e-mail, a status upserted as often as the order's histories upsert
    # (each in a workflow task of its own), and payloads as large as the order's (``pad``).
    obligations: bool = False
    token: str = ""
    pad: str = ""
    upserts: int = 0


class BareIo(BaseModel):
    db: str
    key: str
    notify: str = ""
    token: str = ""
    pad: str = ""


# What the obligations need: the worker's keys and trust store (set by the bench), the status.
keys: dict[str, Any] = {}
STATUS = SearchAttributeKey.for_keyword("OrderStatus")
SEPARATOR = "|"


def checked(text: str, now: Any = None) -> str:
    """An update's argument with the caller's token after ``SEPARATOR``: the token verified
    (as every update's validator on an order verifies its caller's), the argument returned."""
    arg, _, token = text.partition(SEPARATOR)
    if token:
        verify(keys["trust"], token, now)
    return arg


class BareStockCall(BaseModel):
    stock_id: str
    order_id: str
    task_queue: str
    signed: bool = False
    pad: str = ""


class BareMail(BaseModel):
    port: int
    key: str
    count: int = 1
    body: str = "bare"
    # A signed link to the order's page in each message, for this order.
    link_for: str = ""
    pad: str = ""


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

    @change.validator
    def _check(self, order_id: str) -> None:
        checked(order_id, workflow.now())


def delivery_id(order_id: str) -> str:
    return f"bare-{order_id}-delivery"


@workflow.defn
class BareDelivery:
    """The shipment's child: takes the carrier's updates (no validator) and ends with the
    last."""

    def __init__(self) -> None:
        self.updates = 0

    @workflow.run
    async def run(self, updates: int) -> int:
        await workflow.wait_condition(lambda: self.updates >= updates)
        return self.updates

    @workflow.update
    def carrier(self, event: str) -> int:
        self.updates += 1
        return self.updates

    @carrier.validator
    def _check(self, event: str) -> None:
        checked(event, workflow.now())


@workflow.defn
class BareOrder:
    def __init__(self) -> None:
        self.updates = 0

    @workflow.run
    async def run(self, spec: BareSpec) -> int:
        done = 0
        mails = list(spec.mails)
        upserts = 0

        def upsert() -> None:
            nonlocal upserts
            if upserts < spec.upserts:
                upserts += 1
                workflow.upsert_search_attributes([STATUS.value_set(f"step-{done}")])

        # A status upserted at most once per workflow task, as often as the order upserts.
        guard = TaskGuard(upsert)

        async def op(text: str) -> None:
            nonlocal done
            if spec.obligations:
                guard.command_now()
            done += 1
            mode, kind, *flags = text.split(":")
            key = f"{workflow.info().workflow_id}.{done}"
            fn: Any
            arg: Any
            if kind == "lookup":
                fn, arg = bare_lookup, key
            elif kind == "io":
                fn = bare_io
                arg = BareIo(
                    db=spec.db,
                    key=key,
                    notify=spec.order_id if flags else "",
                    token=spec.token if done == 1 else "",
                    pad=spec.pad,
                )
            elif kind == "stock":
                fn = bare_stock
                arg = BareStockCall(
                    stock_id=spec.stock_id,
                    order_id=spec.order_id,
                    task_queue=workflow.info().task_queue,
                    signed=spec.obligations,
                    pad=spec.pad,
                )
            else:
                count = mails.pop(0) if mails else 1
                fn, arg = (
                    bare_mail,
                    BareMail(
                        port=spec.smtp_port,
                        key=key,
                        count=count,
                        body=spec.body,
                        link_for=spec.order_id if spec.obligations else "",
                        pad=spec.pad,
                    ),
                )
            timeout = timedelta(seconds=30)
            if mode == "local":
                await workflow.execute_local_activity(fn, arg, start_to_close_timeout=timeout)
            else:
                await workflow.execute_activity(fn, arg, start_to_close_timeout=timeout)

        delivery = None
        for text in spec.before:
            if spec.child and delivery is None and text.endswith(":notify"):
                delivery = await workflow.start_child_workflow(
                    BareDelivery.run, spec.updates, id=delivery_id(spec.order_id)
                )
            await op(text)
        if delivery is not None:
            await delivery  # the child took the carrier's updates
        for n in range(spec.updates):
            if delivery is None:
                await workflow.wait_condition(lambda n=n: self.updates > n)
            for text in spec.per_update:
                await op(text)
        for text in spec.after:
            await op(text)
        if spec.obligations:
            guard.command_now()
        return done

    @workflow.update
    def carrier(self, event: str) -> int:
        self.updates += 1
        return self.updates


_connections: dict[str, sqlite3.Connection] = {}


def _db(path: str) -> sqlite3.Connection:
    """One connection per database for the worker's life, as the ledger and the carrier
    gateway keep theirs."""
    if path not in _connections:
        _connections[path] = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
    return _connections[path]


# What the engine's order desk looks up: the same kind of in-memory catalogue.
_CATALOGUE = {"PHONE-A5": "349.00", "CASE-X12": "19.00", "ROUTER-F1": "89.00"}


@activity.defn
async def bare_lookup(key: str) -> str:
    """A look-up in the worker's memory, as the order's terms are."""
    return _CATALOGUE.get(key.rsplit(".", 1)[0], "0")


@activity.defn
async def bare_io(req: BareIo) -> str:
    """One SQLite insert, as the ledger and the carrier gateway do."""

    def write() -> None:
        _db(req.db).execute("INSERT OR IGNORE INTO io (key) VALUES (?)", (req.key,))

    if req.token:
        verify(keys["trust"], req.token)  # the start's token, as the order's terms check it
    await asyncio.to_thread(write)
    if req.notify:
        booking_event(req.notify).set()
    return req.key + req.pad


clients: dict[str, Client] = {}


@activity.defn
async def bare_stock(req: BareStockCall) -> int:
    """An update-with-start on a shared record, as reserve_stock and release_stock do."""
    start = WithStartWorkflowOperation(
        BareStock.run,
        id=req.stock_id,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=req.task_queue,
    )
    arg = req.order_id + req.pad
    if req.signed:  # the engine's token on its reservation, as the stock activities sign it
        ring: KeyRing = keys["ring"]
        arg += SEPARATOR + ring.issue(ENGINE, actor="stock", order_id=req.order_id)
    return await clients["client"].execute_update_with_start_workflow(
        BareStock.change, arg, start_workflow_operation=start
    )


@activity.defn
async def bare_mail(req: BareMail) -> str:
    """SMTP messages to the sink over one connection, built and sent as the order's e-mails
    are (the same message class and encoding, a fixed HELO name)."""

    def send() -> str:
        ring: KeyRing | None = keys.get("ring")
        with smtplib.SMTP("127.0.0.1", req.port, local_hostname="bare.local", timeout=10) as smtp:
            for n in range(req.count):
                body = req.body
                if req.link_for and ring is not None:  # a signed link, as the order's e-mails
                    link = ring.for_customer("C-1001", req.link_for, link=True)
                    tail = f"\n\nhttp://localhost/o?t={link}"
                    body = body[: max(0, len(body) - len(tail))] + tail  # as long as before
                msg = MIMEText(body, "plain", _UTF8_QP)
                msg["From"] = "bare <bare@orderflow.local>"
                msg["To"] = "bare@example.com"
                msg["Subject"] = "bare"
                msg["Message-ID"] = f"<{req.key}.{n}@bare.local>"
                msg["Date"] = formatdate(usegmt=True)
                smtp.send_message(msg)
        return req.key + req.pad

    return await asyncio.to_thread(send)
