"""``orderflow demo``: place the sample order, play the carrier, and show what the customer saw."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from domain.errors import InvalidInput
from domain.models import CarrierEvent, OrderView
from orderflow.service import Orderflow
from orderflow.smtp_sink import read_inbox

console = Console()


async def wait_for(
    of: Orderflow, order_id: str, ok: Callable[[OrderView], bool], timeout: float = 60
) -> OrderView:
    deadline = time.monotonic() + timeout
    while True:
        view = await of.view(order_id)
        if ok(view):
            return view
        if time.monotonic() > deadline:
            raise InvalidInput(
                f"order {order_id} did not get there in {timeout:.0f}s; it is {view.status}: {view.next_step}"
            )
        await asyncio.sleep(0.1)


async def run_demo(of: Orderflow, stories: list[str]) -> None:
    if stories:
        raise InvalidInput("stories are not playable yet; run `orderflow demo` without arguments")
    path = of.settings.seeds_dir / "sample_order.toml"
    try:
        sample = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InvalidInput(f"cannot read {path}: {err}") from None
    inp = of.order_input(
        customer_id=sample["customer"],
        sku=sample["sku"],
        qty=int(sample.get("qty", 1)),
        location=sample["location"],
        carrier=sample.get("carrier"),
        pickup=False,
        order_id=sample["order_id"],
        actor="demo",
    )
    view, created = await of.place_order(inp)
    oid = view.order_id
    console.print(
        f"[bold]Order {oid}[/bold] " + ("placed" if created else f"already exists ({view.status})")
    )
    if view.status not in ("completed", "cancelled"):
        view = await wait_for(
            of, oid, lambda v: bool(v.deliveries) and v.deliveries[-1].status != "booking"
        )
        for ev in sample.get("event", []):
            done = {d for d in [view.deliveries[-1].status]}
            if ev["event"] == "picked-up" and done & {"picked_up", "in_transit", "delivered"}:
                continue
            with console.status(f"carrier: {ev['event']}"):
                try:
                    await of.carrier_event(
                        oid,
                        CarrierEvent(
                            event=ev["event"], location=ev.get("location", ""), actor="demo-carrier"
                        ),
                    )
                except Exception as err:  # a re-run meets events already recorded
                    console.print(f"  carrier {ev['event']}: {err}")
        view = await wait_for(of, oid, lambda v: v.status in ("completed", "cancelled"))
    await asyncio.sleep(0.5)  # the last e-mail leaves the outbox
    customer = of.registry.customer(view.customer_id)

    table = Table(
        "when", "what", "the customer was told", title=f"Timeline of order {oid}: {view.status}"
    )
    for e in await of.timeline(oid):
        table.add_row(e.at.strftime("%H:%M:%S"), e.kind, e.text)
    console.print(table)
    mails = [m for m in read_inbox(of.settings.maildir, customer.email) if m.order_id == oid]
    mt = Table("subject", "message id", title=f"E-mails {customer.email} received ({len(mails)})")
    for m in mails:
        mt.add_row(m.subject, m.message_id)
    console.print(mt)
    console.print(
        f"Price at placement {view.lines[0].unit_price:.2f} x {view.lines[0].qty}, charged {view.charged:.2f}"
    )
    console.print(f"Temporal UI: {of.ui_link('order-' + oid)}")
