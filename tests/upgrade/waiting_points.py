"""Bring orders to every point where an order waits, on the engine of the base version.

Run by the upgrade test (and by ``make record-histories`` for a version's waiting points) as
its own process, with the base version's tree first on ``PYTHONPATH``: every import below is the
*base* version's code, so the orders are placed and driven exactly as that version's clients and
worker did. This file therefore speaks the base version's Python API (0.1 today); when
``tests/upgrade/BASE`` moves to a newer version, adapt the calls here to that version's API.

Each scenario leaves one or more orders waiting (for a department, the customer, the carrier,
stock, a promise's due time) and is named so the upgrade test knows how to finish it. The
scenarios run concurrently; the script prints one JSON document: ``{"orders": {order_id:
scenario}}``.

Usage: python waiting_points.py ADDRESS TASK_QUEUE DATA_DIR SMTP_PORT
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from domain.models import (
    CancelOrder,
    CarrierEvent,
    Department,
    DisputeHold,
    MakePromise,
    OrderView,
    PlaceHold,
    PlaceOrderInput,
    Policy,
    Redirect,
    Reschedule,
    UpholdHold,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from domain.ids import stock_workflow_id
from orderflow.config import PROJECT_ROOT, Settings
from orderflow.registry import Registry
from orderflow.service import Orderflow
from workflows.stock import StockInput, StockWorkflow

# Long enough that nothing fires by itself while the workers are swapped, unless a scenario
# shortens it on purpose.
MINUTES = Policy(
    pickup_window=timedelta(minutes=20),
    restock_promise=timedelta(minutes=20),
    dispute_sla=timedelta(minutes=20),
    delivery_window=timedelta(minutes=20),
    scan_sla=timedelta(minutes=20),
    lost_after=timedelta(minutes=40),
)
AT_THE_DOOR = "40.7129,-74.0061"  # a few metres from C-1001's address
WAREHOUSE = "warehouse-north"
EMPTY = ("store-downtown", "PHONE-X12")  # no stock until some is received
SCARCE = (WAREHOUSE, "LAPTOP-P14")  # a record that continues as new while orders wait on it


class Driver:
    def __init__(self, app: Orderflow, run: str) -> None:
        self.app = app
        self.run = run
        self.orders: dict[str, str] = {}

    def order(
        self,
        scenario: str,
        *,
        sku: str = "PHONE-A5",
        location: str = WAREHOUSE,
        pickup: bool = False,
        policy: Policy = MINUTES,
        hold_sla: timedelta | None = None,
        n: int = 1,
    ) -> PlaceOrderInput:
        order_id = f"{self.run}-{scenario}" + (f"-{n}" if n > 1 else "")
        self.orders[order_id] = scenario
        inp = self.app.order_input(
            customer_id="C-1001",
            sku=sku,
            qty=1,
            location=location,
            carrier=None if pickup else "ups",
            pickup=pickup,
            order_id=order_id,
            policy=policy,
        )
        if hold_sla is not None:
            inp.departments = [
                Department.model_validate({**d.model_dump(), "hold_sla": hold_sla})
                for d in inp.departments
            ]
        return inp

    async def until(
        self, order_id: str, ok: Callable[[OrderView], bool], timeout: float = 60
    ) -> OrderView:
        deadline = time.monotonic() + timeout
        while True:
            view = await self.app.view(order_id)
            if ok(view):
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"{order_id} stuck at {view.status}: {view.next_step}")
            await asyncio.sleep(0.1)

    async def held(self, scenario: str, department: str, reason: str, **kw: Any) -> tuple[str, str]:
        inp = self.order(scenario, **kw)
        placed = await self.app.place_order_on_hold(
            inp,
            PlaceHold(
                department=department,
                actor="ana",
                reason_code=reason,
                customer_message=f"{department} needs a word with you first.",
                reference=f"REF-{scenario}",
            ),
        )
        return inp.order_id, placed.hold_id

    async def shipped(self, scenario: str, **kw: Any) -> str:
        inp = self.order(scenario, **kw)
        await self.app.place_order(inp)
        await self.until(
            inp.order_id, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked"
        )
        return inp.order_id

    async def callback(self, order_id: str, text: str) -> None:
        """Care promises to call the customer back within 20 minutes."""
        await self.app.make_promise(
            order_id,
            MakePromise(
                kind="callback",
                due_at=datetime.now(UTC) + timedelta(minutes=20),
                text=text,
                department="care",
                actor="sam",
            ),
        )

    async def event(
        self, order_id: str, event: str, delivery: int | None = None, **evidence: str
    ) -> None:
        await self.app.carrier_event(
            order_id,
            CarrierEvent(event=event, evidence=evidence, location=evidence.get("location", "")),
            delivery,
        )


# ---------------------------------------------------------------------------- scenarios


async def held_active(d: Driver) -> None:
    order_id, _ = await d.held("held-active", "billing", "arrears")
    await d.until(order_id, lambda v: v.blocked_by == ["billing"] and v.reservation is None)


async def held_by_two(d: Driver) -> None:
    order_id, _ = await d.held("held-by-two", "billing", "arrears")
    await d.app.place_hold(
        order_id,
        PlaceHold(
            department="partner_finance",
            actor="grace",
            reason_code="application_pending",
            customer_message="Your finance application is with our partner.",
        ),
    )
    await d.until(order_id, lambda v: sorted(v.blocked_by) == ["billing", "partner_finance"])


async def held_disputed(d: Driver) -> None:
    order_id, hold_id = await d.held("held-disputed", "billing", "charge_dispute")
    await d.app.dispute_hold(
        order_id, DisputeHold(hold_id=hold_id, customer_message="I paid that in October.")
    )
    await d.until(order_id, lambda v: v.holds[0].status == "disputed")


async def held_upheld(d: Driver) -> None:
    order_id, hold_id = await d.held("held-upheld", "billing", "arrears")
    await d.app.dispute_hold(
        order_id, DisputeHold(hold_id=hold_id, customer_message="That is not my debt.")
    )
    await d.app.uphold_hold(
        order_id,
        UpholdHold(
            hold_id=hold_id,
            department="billing",
            actor="ana",
            customer_message="The balance is yours; paying it clears the hold.",
        ),
    )
    await d.until(order_id, lambda v: v.holds[0].status == "upheld")


async def held_escalated(d: Driver) -> None:
    # The fulfilment department's SLA is a few seconds here: it passes while the order waits.
    order_id, _ = await d.held(
        "held-escalated", "fulfilment", "address_check", hold_sla=timedelta(seconds=4)
    )
    await d.until(order_id, lambda v: v.holds[0].escalations >= 1, timeout=30)


async def waitlisted(d: Driver) -> None:
    inp = d.order("waitlisted", sku=EMPTY[1], location=EMPTY[0])
    await d.app.place_order(inp)
    await d.until(inp.order_id, lambda v: v.status == "waitlisted")


async def ready_for_pickup(d: Driver) -> None:
    inp = d.order("ready-for-pickup", sku="CASE-X12", location="store-mall", pickup=True)
    await d.app.place_order(inp)
    await d.until(inp.order_id, lambda v: v.status == "ready_for_pickup")


async def booked(d: Driver) -> None:
    await d.shipped("booked")


async def in_transit(d: Driver) -> None:
    order_id = await d.shipped("in-transit")
    await d.event(order_id, "picked-up")
    await d.event(order_id, "scan", location="Hub North")


async def attempted_unverified(d: Driver) -> None:
    order_id = await d.shipped("attempted-unverified")
    await d.event(order_id, "picked-up")
    await d.event(order_id, "attempted")  # no photo, no GPS, no time: it does not count
    await d.until(order_id, lambda v: len(v.deliveries[-1].attempts) == 1)


async def tracing(d: Driver) -> None:
    # No scan within the scan SLA: the carrier is asked to trace the parcel.
    order_id = await d.shipped(
        "tracing", policy=MINUTES.model_copy(update={"scan_sla": timedelta(seconds=3)})
    )
    await d.event(order_id, "picked-up")
    deadline = time.monotonic() + 30
    while not any(e.kind == "trace_opened" for e in await d.app.timeline(order_id)):
        assert time.monotonic() < deadline, f"{order_id}: no trace opened"
        await asyncio.sleep(0.2)


async def rescheduled(d: Driver) -> None:
    order_id = await d.shipped("rescheduled")
    start = datetime.now(UTC) + timedelta(minutes=5)
    await d.app.reschedule(
        order_id, Reschedule(window_start=start, window_end=start + timedelta(minutes=30))
    )


async def redirected(d: Driver) -> None:
    order_id = await d.shipped("redirected")
    await d.app.redirect(order_id, Redirect(pickup_point="Kiosk 7, Central Station"))


async def promise_pending(d: Driver) -> None:
    order_id = await d.shipped("promise-pending")
    await d.callback(order_id, "call you back about your upgrade options")


async def cancelled_in_delivery(d: Driver) -> None:
    # Cancelled while the parcel is out: the order stays open for the callback it promised.
    order_id = await d.shipped("cancelled-in-delivery")
    await d.event(order_id, "picked-up")
    await d.callback(order_id, "call you about the cancelled order")
    await d.app.cancel(
        order_id, CancelOrder(by="customer", actor="C-1001", reason="changed my mind")
    )
    await d.until(order_id, lambda v: v.status == "cancelled")


async def lost_and_reshipped(d: Driver) -> None:
    order_id = await d.shipped("lost-and-reshipped")
    await d.event(order_id, "picked-up")
    await d.event(order_id, "lost")
    await d.until(
        order_id, lambda v: len(v.deliveries) == 2 and v.deliveries[-1].status == "booked"
    )


async def scarce_stock(d: Driver) -> None:
    """A stock record that has continued as new, with one order shipped and two waiting."""
    location, sku = SCARCE
    await d.app.client.start_workflow(
        StockWorkflow.run,
        StockInput(location=location, sku=sku, on_hand=1, continue_as_new_after=3),
        id=stock_workflow_id(location, sku),
        task_queue=d.app.settings.task_queue,
    )
    first = d.order("scarce-stock", sku=sku, location=location, n=1)
    await d.app.place_order(first)
    await d.until(first.order_id, lambda v: bool(v.deliveries))
    for n in (2, 3):
        inp = d.order("scarce-stock", sku=sku, location=location, n=n)
        await d.app.place_order(inp)
        await d.until(inp.order_id, lambda v: v.status == "waitlisted")


SCENARIOS: list[Callable[[Driver], Awaitable[None]]] = [
    held_active,
    held_by_two,
    held_disputed,
    held_upheld,
    held_escalated,
    waitlisted,
    ready_for_pickup,
    booked,
    in_transit,
    attempted_unverified,
    tracing,
    rescheduled,
    redirected,
    promise_pending,
    cancelled_in_delivery,
    lost_and_reshipped,
    scarce_stock,
]


async def main(address: str, task_queue: str, data_dir: str, smtp_port: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    settings = Settings(
        data_dir=Path(data_dir),
        smtp_host="127.0.0.1",
        smtp_port=int(smtp_port),
        task_queue=task_queue,
    )
    driver = Driver(
        Orderflow(client, Registry(PROJECT_ROOT / "seeds"), settings), f"UP{uuid.uuid4().hex[:6]}"
    )
    await asyncio.gather(*(scenario(driver) for scenario in SCENARIOS))
    print(json.dumps({"orders": driver.orders}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
    # Done: leave without tearing down the SDK's runtime threads at interpreter exit, which
    # can abort the process after its work is complete.
    sys.stderr.flush()
    os._exit(0)
