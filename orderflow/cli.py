"""The ``orderflow`` command: the contract department systems script against (see CLI.md).

Refused or invalid input: one ``error:`` line on stderr, exit 2, nothing changed. Server
unreachable: one line naming the address, exit 3. A traceback only with ``--debug``.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from domain.base import check_amount
from domain.carrier import CarrierEvent, CarrierEventName
from domain.delivery import Redirect, Reschedule
from domain.durations import parse_duration, parse_time
from domain.errors import InvalidInput, OrderflowError
from domain.holds import DisputeHold, PlaceHold, ReleaseHold, UpholdHold
from domain.order import CancelOrder
from domain.promises import KeepPromise, MakePromise, PromiseKind
from domain.view import OrderView
from orderflow.config import Settings
from orderflow.registry import Registry
from orderflow.service import Orderflow, money
from orderflow.smtp_sink import read_inbox
from orderflow.temporal import ServerUnreachable, connect

T = TypeVar("T")
EXIT_REFUSED = 2
EXIT_UNREACHABLE = 3

app = typer.Typer(
    help="orderflow: cross-department order workflows. No silent holds; every promise on a clock.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
order_app = typer.Typer(help="Place, show and cancel one order.", no_args_is_help=True)
orders_app = typer.Typer(help="Find orders.", no_args_is_help=True)
hold_app = typer.Typer(
    help="Holds: the only way a department may stop an order.", no_args_is_help=True
)
stock_app = typer.Typer(help="Stock and reservations, per location.", no_args_is_help=True)
carrier_app = typer.Typer(help="Carrier events for a delivery.", no_args_is_help=True)
carriers_app = typer.Typer(help="Carrier records.", no_args_is_help=True)
delivery_app = typer.Typer(help="Customer self-service for a delivery.", no_args_is_help=True)
promise_app = typer.Typer(help="Promises to the customer, each on a clock.", no_args_is_help=True)
promises_app = typer.Typer(help="Find promises.", no_args_is_help=True)
for sub, name in [
    (order_app, "order"),
    (orders_app, "orders"),
    (hold_app, "hold"),
    (stock_app, "stock"),
    (carrier_app, "carrier"),
    (carriers_app, "carriers"),
    (delivery_app, "delivery"),
    (promise_app, "promise"),
    (promises_app, "promises"),
]:
    app.add_typer(sub, name=name)

_state: dict[str, Any] = {"debug": False, "address": None}
out = Console(soft_wrap=True)

JSON = typer.Option(False, "--json", help="Print exactly one JSON document.")
ACTOR = typer.Option(None, "--actor", help="Who acts (defaults to $USER).")


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    address: str | None = typer.Option(
        None, "--address", help="Temporal address (else TEMPORAL_ADDRESS)."
    ),
) -> None:
    _state["debug"] = debug
    _state["address"] = address


# ============================================================================ plumbing


def settings() -> Settings:
    try:
        return Settings()
    except ValueError as err:
        raise InvalidInput(f"bad ORDERFLOW_* setting: {err}".splitlines()[0]) from None


def registry(s: Settings | None = None) -> Registry:
    return Registry((s or settings()).seeds_dir)


def actor(value: str | None) -> str:
    return value or os.environ.get("USER") or getpass.getuser() or "unknown"


def with_app(fn: Callable[[Orderflow], Awaitable[T]]) -> T:
    async def go() -> T:
        s = settings()
        client = await connect(_state["address"])
        return await fn(Orderflow(client, registry(s), s))

    return asyncio.run(go())


def emit_json(value: Any) -> None:
    def convert(v: Any) -> Any:
        if isinstance(v, BaseModel):
            return v.model_dump(mode="json")
        if isinstance(v, list):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        return v

    sys.stdout.write(json.dumps(convert(value), indent=2, default=str) + "\n")


def amount(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"--amount '{text}' is not a number") from None
    check_amount(value)
    return value


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


# ============================================================================ the stack


@app.command()
def dev(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where state lives (ORDERFLOW_DATA_DIR)."
    ),
    port: int = typer.Option(7233, "--port", help="Temporal gRPC port."),
    ui_port: int = typer.Option(8233, "--ui-port", help="Temporal Web UI port."),
    smtp_port: int | None = typer.Option(
        None, "--smtp-port", help="SMTP sink port (ORDERFLOW_SMTP_PORT)."
    ),
    demo: bool = typer.Option(False, "--demo", help="Play the sample order once the stack is up."),
    exit_after_demo: bool = typer.Option(False, "--exit-after-demo", help="Stop after --demo."),
) -> None:
    """Run the local stack: Temporal dev server + Web UI, an SMTP sink, and the worker."""
    from orderflow.stack import run_stack

    s = settings()
    if data_dir is not None:
        s.data_dir = data_dir
    if smtp_port is not None:
        s.smtp_port = smtp_port
    s.ui_url = f"http://localhost:{ui_port}"
    asyncio.run(
        run_stack(s, port=port, ui_port=ui_port, demo=demo, exit_after_demo=exit_after_demo)
    )


@app.command()
def worker() -> None:
    """Run the worker only (same as python worker.py)."""
    from orderflow.logging import configure
    from orderflow.temporal import metrics_runtime
    from orderflow.worker import run_worker

    configure()
    s = settings()

    async def go() -> None:
        runtime = metrics_runtime(s.metrics_port) if s.metrics_port else None
        client = await connect(_state["address"], runtime=runtime)
        await run_worker(client, s)

    asyncio.run(go())


@app.command()
def demo(
    stories: list[str] = typer.Argument(
        None, help="Story ids (000-004); default: the sample order and every story."
    ),
    scale: float = typer.Option(
        21600.0, "--scale", help="Story seconds per real second (21600: a day in 4 s)."
    ),
) -> None:
    """Play the sample order and the customer stories against the running stack."""
    from orderflow.demo import run_demo

    if scale <= 0:
        raise InvalidInput("--scale must be positive")
    with_app(lambda of: run_demo(of, stories or [], scale=scale))


@app.command()
def catalog(as_json: bool = JSON) -> None:
    """SKUs and prices, locations and stock, customers, carriers, departments."""
    reg = registry()
    reg.validate_all()
    doc = {
        "skus": [s.model_dump(mode="json") for s in reg.skus.values()],
        "locations": [loc.model_dump(mode="json") for loc in reg.locations.values()],
        "customers": [
            {"customer_id": c.customer_id, "name": c.name, "email": c.email}
            for c in reg.customers.values()
        ],
        "carriers": [{"carrier_id": c.carrier_id, "name": c.name} for c in reg.carriers.values()],
        "departments": [
            {
                "department": d.department,
                "name": d.name,
                "supervisor": d.supervisor,
                "hold_sla": d.hold_sla.total_seconds(),
                "reason_codes": sorted(d.reason_codes),
            }
            for d in reg.departments.values()
        ],
    }
    if as_json:
        emit_json(doc)
        return
    t = Table("sku", "name", "price", title="SKUs")
    for s in reg.skus.values():
        t.add_row(s.sku, s.name, money(s.price))
    out.print(t)
    t = Table("location", "name", "stock", title="Locations")
    for loc in reg.locations.values():
        t.add_row(loc.location, loc.name, ", ".join(f"{k}={v}" for k, v in loc.stock.items()))
    out.print(t)
    t = Table("customer", "name", "email", title="Customers")
    for c in reg.customers.values():
        t.add_row(c.customer_id, c.name, c.email)
    out.print(t)
    out.print("Carriers: " + ", ".join(f"{c.carrier_id} ({c.name})" for c in reg.carriers.values()))
    t = Table("department", "supervisor", "hold SLA", "reason codes", title="Departments")
    for d in reg.departments.values():
        t.add_row(d.department, d.supervisor, str(d.hold_sla), ", ".join(sorted(d.reason_codes)))
    out.print(t)


@app.command()
def inbox(
    to: str | None = typer.Option(None, "--to", help="Only mail to this address."),
    as_json: bool = JSON,
) -> None:
    """Mail delivered to the local SMTP sink."""
    messages = read_inbox(settings().maildir, to)
    if as_json:
        emit_json([m.model_dump(exclude={"order_id"}) for m in messages])
        return
    for m in messages:
        out.print(f"[bold]{m.subject}[/bold]  to {m.to}  {m.date}")
        out.print(m.body.rstrip(), markup=False)
        out.print()
    if not messages:
        out.print("no mail yet")


# ============================================================================ orders


def print_view(v: OrderView, link: str) -> None:
    out.print(f"[bold]Order {v.order_id}[/bold]  {v.status}  customer {v.customer_id}")
    for line in v.lines:
        out.print(f"  {line.qty} x {line.sku} {line.name} at {money(line.unit_price)}")
    out.print(
        f"  total {money(v.total)} (locked at placement)  payment {v.payment}, charged {money(v.charged)}"
    )
    out.print(
        f"  next: {v.next_step}"
        + (f" (due {when(v.next_step_due_at)})" if v.next_step_due_at else "")
    )
    if v.blocked_by:
        out.print(f"  [red]blocked by: {', '.join(v.blocked_by)}[/red]")
    if v.reservation:
        r = v.reservation
        pos = f", position {r.position}" if r.position else ""
        out.print(f"  reservation: {r.qty} x {r.sku} at {r.location}, {r.status}{pos}")
    for h in v.holds:
        out.print(
            f"  hold {h.hold_id} {h.department}/{h.reason} {h.status} placed {when(h.placed_at)} by {h.placed_by}, "
            f"SLA {when(h.sla_due_at)}, escalations {h.escalations}"
            + (f", released by {h.released_by}: {h.resolution}" if h.released_at else "")
        )
    for p in v.promises:
        out.print(
            f"  promise {p.promise_id} {p.kind} by {p.department}: {p.text} - due {when(p.due_at)}, {p.status}"
        )
    for d in v.deliveries:
        verified = sum(1 for a in d.attempts if a.verified)
        out.print(
            f"  delivery {d.delivery_id} {d.carrier} {d.status} tracking {d.tracking or '-'}, "
            f"attempts {verified} verified / {len(d.attempts) - verified} unverified"
        )
    out.print(f"  {link}")


@order_app.command("place")
def order_place(
    customer: str = typer.Option(..., "--customer", help="Customer id (see orderflow catalog)."),
    sku: str = typer.Option(..., "--sku"),
    qty: int = typer.Option(1, "--qty"),
    location: str | None = typer.Option(None, "--location"),
    carrier: str | None = typer.Option(None, "--carrier"),
    pickup: bool = typer.Option(False, "--pickup", help="Collect in store instead of delivery."),
    any_location: bool = typer.Option(
        False, "--any-location", help="Reserve at the nearest location with stock."
    ),
    order_id: str | None = typer.Option(
        None, "--order-id", help="Your id; repeating it returns the same order."
    ),
    who: str | None = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Place an order; prints its id."""

    async def go(of: Orderflow) -> tuple[OrderView, bool]:
        inp = of.order_input(
            customer_id=customer,
            sku=sku,
            qty=qty,
            location=location,
            carrier=carrier,
            pickup=pickup,
            order_id=order_id,
            any_location=any_location,
            actor=actor(who),
        )
        return await of.place_order(inp)

    view, created = with_app(go)
    if as_json:
        emit_json({**view.model_dump(mode="json"), "created": created})
    else:
        print(view.order_id)


@order_app.command("show")
def order_show(order: str, as_json: bool = JSON) -> None:
    """The one order view every channel shares."""

    async def go(of: Orderflow) -> tuple[OrderView, str]:
        v = await of.view(order)
        return v, of.ui_link(f"order-{order}")

    v, link = with_app(go)
    if as_json:
        emit_json(v)
    else:
        print_view(v, link)


@order_app.command("timeline")
def order_timeline(order: str, as_json: bool = JSON) -> None:
    """What the customer has been told, in order."""
    entries = with_app(lambda of: of.timeline(order))
    if as_json:
        emit_json(entries)
        return
    for e in entries:
        out.print(f"{when(e.at)}  [bold]{e.kind}[/bold]  {e.text}")


@order_app.command("cancel")
def order_cancel(
    order: str,
    by: str = typer.Option(..., "--by", help="A department, or 'customer'."),
    reason: str = typer.Option(..., "--reason"),
    message: str = typer.Option(
        "", "--message", help="What the customer reads (required for departments)."
    ),
    who: str | None = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Cancel an order: compensation runs and the customer is told."""
    result = with_app(
        lambda of: of.cancel(
            order, CancelOrder(by=by, actor=actor(who), reason=reason, customer_message=message)
        )
    )
    if as_json:
        emit_json(result)
    else:
        print(
            f"{result.order_id} cancelled: "
            + ("; ".join(result.compensations) or "nothing to undo")
        )


@order_app.command("pickup")
def order_pickup(
    order: str, location: str = typer.Option(..., "--location"), as_json: bool = JSON
) -> None:
    """Hand a store-pickup order to the customer."""
    v = with_app(lambda of: of.pickup(order, location))
    if as_json:
        emit_json(v)
    else:
        print(f"{v.order_id} collected at {location}")


@orders_app.command("list")
def orders_list(
    status: str | None = typer.Option(None, "--status"),
    blocked_by: str | None = typer.Option(
        None, "--blocked-by", help="Department with an active hold."
    ),
    customer: str | None = typer.Option(None, "--customer"),
    older_than: str | None = typer.Option(
        None, "--older-than", help="Placed longer ago than e.g. 24h."
    ),
    as_json: bool = JSON,
) -> None:
    """Orders by status, blocking department, customer, age."""
    cutoff = datetime.now(UTC) - parse_duration(older_than) if older_than else None
    views = with_app(
        lambda of: of.list_orders(
            status=status, blocked_by=blocked_by, customer=customer, older_than=cutoff
        )
    )
    if as_json:
        emit_json(views)
        return
    t = Table("order", "status", "customer", "total", "blocked by", "next step", "placed")
    for v in views:
        t.add_row(
            v.order_id,
            v.status,
            v.customer_id,
            money(v.total),
            ", ".join(v.blocked_by),
            v.next_step,
            when(v.placed_at),
        )
    out.print(t)


# ============================================================================ holds


@hold_app.command("place")
def hold_place(
    order: str,
    department: str = typer.Option(..., "--department"),
    reason: str = typer.Option(..., "--reason", help="One of the department's reason codes."),
    message: str = typer.Option(..., "--message", help="What the customer reads."),
    ref: str = typer.Option(
        "", "--ref", help="Your reference; repeating it returns the same hold."
    ),
    amount_text: str | None = typer.Option(None, "--amount"),
    who: str | None = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Place a hold; prints the hold id. The customer and the blocked department are told."""
    cmd = PlaceHold(
        department=department,
        actor=actor(who),
        reason_code=reason,
        customer_message=message,
        reference=ref,
        amount=amount(amount_text),
    )
    result = with_app(lambda of: of.place_hold(order, cmd))
    emit_json(result) if as_json else print(result.hold_id)


@hold_app.command("release")
def hold_release(
    order: str,
    hold: str,
    department: str = typer.Option(..., "--department"),
    resolution: str = typer.Option(..., "--resolution"),
    who: str | None = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Release a hold; the order resumes at once."""
    cmd = ReleaseHold(hold_id=hold, department=department, actor=actor(who), resolution=resolution)
    result = with_app(lambda of: of.release_hold(order, cmd))
    if as_json:
        emit_json(result)
    else:
        rest = (
            f"; still held by {', '.join(result.blocked_by)}"
            if result.blocked_by
            else "; order resumed"
        )
        print(f"{result.hold_id} released{rest}")


@hold_app.command("dispute")
def hold_dispute(
    order: str, hold: str, message: str = typer.Option(..., "--message"), as_json: bool = JSON
) -> None:
    """The customer disputes a hold: the department and its supervisor are told."""
    result = with_app(
        lambda of: of.dispute_hold(order, DisputeHold(hold_id=hold, customer_message=message))
    )
    emit_json(result) if as_json else print(
        f"{result.hold_id} disputed; answer due {when(result.sla_due_at)}"
    )


@hold_app.command("uphold")
def hold_uphold(
    order: str,
    hold: str,
    department: str = typer.Option(..., "--department"),
    message: str = typer.Option(..., "--message", help="Tell the customer exactly what clears it."),
    who: str | None = ACTOR,
    as_json: bool = JSON,
) -> None:
    """The department confirms its hold and says what would clear it."""
    cmd = UpholdHold(
        hold_id=hold, department=department, actor=actor(who), customer_message=message
    )
    result = with_app(lambda of: of.uphold_hold(order, cmd))
    emit_json(result) if as_json else print(
        f"{result.hold_id} upheld; next review {when(result.sla_due_at)}"
    )


# ============================================================================ stock


@stock_app.command("show")
def stock_show(
    location: str = typer.Option(..., "--location"),
    sku: str | None = typer.Option(None, "--sku"),
    as_json: bool = JSON,
) -> None:
    """On hand, reserved and waiting, as every channel sees it."""
    views = with_app(lambda of: of.stock(location, sku))
    if as_json:
        emit_json(views)
        return
    for v in views:
        out.print(
            f"[bold]{v.sku}[/bold] at {v.location}: {v.on_hand} on hand, {v.available} available"
        )
        for r in v.reserved:
            out.print(f"  reserved  {r.order_id} x{r.qty} since {when(r.since)}")
        for i, r in enumerate(v.waitlist, start=1):
            out.print(f"  waiting #{i} {r.order_id} x{r.qty} since {when(r.since)}")


@stock_app.command("receive")
def stock_receive(
    location: str = typer.Option(..., "--location"),
    sku: str = typer.Option(..., "--sku"),
    qty: int = typer.Option(..., "--qty"),
    ref: str = typer.Option("", "--ref", help="Delivery note; repeating it is not counted twice."),
    as_json: bool = JSON,
) -> None:
    """Book an arrival; waiting orders get it first come, first served."""
    result = with_app(lambda of: of.receive_stock(location, sku, qty, ref))
    if as_json:
        emit_json(result)
    else:
        print(
            f"{result.on_hand} on hand; allocated to: {', '.join(result.allocated_to) or 'nobody waiting'}"
        )


@stock_app.command("adjust")
def stock_adjust(
    location: str = typer.Option(..., "--location"),
    sku: str = typer.Option(..., "--sku"),
    count: int = typer.Option(..., "--count"),
    reason: str = typer.Option(..., "--reason"),
    as_json: bool = JSON,
) -> None:
    """Set the counted stock (a stock take)."""
    result = with_app(lambda of: of.adjust_stock(location, sku, count, reason))
    if as_json:
        emit_json(result)
    else:
        print(f"{result.on_hand} on hand; back in line: {', '.join(result.waitlisted) or 'none'}")


# ============================================================================ carriers


def evidence_pairs(pairs: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--evidence '{pair}' must be KEY=VALUE (e.g. photo=IMG_1.jpg)")
        if key.strip() in found:
            raise InvalidInput(f"--evidence {key.strip()} is given twice; give each key once")
        found[key.strip()] = value.strip()
    return found


@carrier_app.command("event")
def carrier_event(
    order: str,
    event: str = typer.Argument(..., help="|".join(CarrierEventName)),
    delivery: int | None = typer.Option(None, "--delivery"),
    evidence: list[str] = typer.Option(
        [], "--evidence", help="KEY=VALUE: photo, gps, time, location, reason, code"
    ),
    event_id: str = typer.Option(
        "", "--event-id", help="Carrier's event id; a repeat is answered with the first result."
    ),
    as_json: bool = JSON,
) -> None:
    """Record a carrier event on the order's delivery."""
    if event not in CarrierEventName.__members__.values():
        raise InvalidInput(f"unknown event '{event}'; use one of {', '.join(CarrierEventName)}")
    ev = evidence_pairs(evidence)
    cmd = CarrierEvent(
        event=CarrierEventName(event),
        location=ev.pop("location", ""),
        reason=ev.pop("reason", ""),
        code=ev.pop("code", ""),
        evidence=ev,
        event_id=event_id,
    )
    result = with_app(lambda of: of.carrier_event(order, cmd, delivery))
    if as_json:
        emit_json(result)
    else:
        note = f" ({result.note})" if result.note else ""
        print(f"delivery {result.delivery_id}: {result.event} recorded, now {result.status}{note}")


@delivery_app.command("reschedule")
def delivery_reschedule(
    order: str,
    window: str = typer.Option(..., "--window", help="START/END, ISO 8601"),
    as_json: bool = JSON,
) -> None:
    """Choose a new delivery window."""
    start, sep, end = window.partition("/")
    if not sep:
        raise InvalidInput("--window must be START/END, e.g. 2026-12-01T09:00Z/2026-12-01T13:00Z")
    now = datetime.now(UTC)
    cmd = Reschedule(window_start=parse_time(start, now=now), window_end=parse_time(end, now=now))
    result = with_app(lambda of: of.reschedule(order, cmd))
    emit_json(result) if as_json else print(
        f"delivery {result.delivery_id}: {when(result.window_start)} - {when(result.window_end)}"
    )


@delivery_app.command("redirect")
def delivery_redirect(
    order: str, pickup_point: str = typer.Option(..., "--pickup-point"), as_json: bool = JSON
) -> None:
    """Send the parcel to a pickup point instead."""
    if not pickup_point.strip():
        raise InvalidInput("--pickup-point must not be empty")
    result = with_app(lambda of: of.redirect(order, Redirect(pickup_point=pickup_point)))
    emit_json(result) if as_json else print(
        f"delivery {result.delivery_id} redirected to {result.pickup_point}"
    )


@carriers_app.command("scorecard")
def carriers_scorecard(as_json: bool = JSON) -> None:
    """Per carrier: deliveries, attempts, unverified attempts, traces, lost parcels, on-time rate."""
    cards = with_app(lambda of: of.scorecard())
    if as_json:
        emit_json(cards)
        return
    t = Table(
        "carrier", "deliveries", "delivered", "on time", "attempts", "unverified", "traces", "lost"
    )
    for c in cards:
        rate = "-" if c["on_time_rate"] is None else f"{c['on_time_rate']:.0%}"
        t.add_row(
            c["name"],
            str(c["deliveries"]),
            str(c["delivered"]),
            rate,
            str(c["attempts"]),
            str(c["unverified_attempts"]),
            str(c["traces"]),
            str(c["lost"]),
        )
    out.print(t)


# ============================================================================ promises


@promise_app.command("make")
def promise_make(
    order: str,
    kind: str = typer.Option(..., "--kind", help="|".join(PromiseKind)),
    due: str = typer.Option(..., "--due", help="ISO 8601 time, or a duration from now (2h)."),
    department: str = typer.Option(..., "--department"),
    text: str = typer.Option(..., "--text", help="The promise, as the customer heard it."),
    ref: str = typer.Option(
        "", "--ref", help="Your reference; repeating it returns the same promise."
    ),
    who: str | None = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Record a promise made to the customer; prints its id."""
    cmd = MakePromise(
        kind=kind,
        due_at=parse_time(due, now=datetime.now(UTC)),
        text=text,
        department=department,
        actor=actor(who),
        reference=ref,
    )
    result = with_app(lambda of: of.make_promise(order, cmd))
    emit_json(result) if as_json else print(result.promise_id)


@promise_app.command("keep")
def promise_keep(
    order: str,
    promise: str,
    note: str = typer.Option("", "--note"),
    who: str | None = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Mark a promise kept."""
    result = with_app(
        lambda of: of.keep_promise(
            order, KeepPromise(promise_id=promise, note=note, actor=actor(who))
        )
    )
    emit_json(result) if as_json else print(f"{result.promise_id} kept")


@promises_app.command("list")
def promises_list(
    broken: bool = typer.Option(False, "--broken"),
    department: str | None = typer.Option(None, "--department"),
    as_json: bool = JSON,
) -> None:
    """Promises across orders; --broken shows the ones we failed."""
    rows = with_app(lambda of: of.list_promises(broken=broken, department=department))
    if as_json:
        emit_json(rows)
        return
    t = Table("order", "promise", "kind", "department", "due", "status", "text")
    for r in rows:
        t.add_row(
            r["order_id"],
            r["promise_id"],
            r["kind"],
            r["department"],
            r["due_at"],
            r["status"],
            r["text"],
        )
    out.print(t)


# ============================================================================ entry point


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def run(argv: Sequence[str]) -> int:
    """Run one command and turn every failure into one line; returns the exit code."""
    args = list(argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="orderflow", standalone_mode=False)
        code = 0
    except typer.Exit as ex:
        code = ex.exit_code
    except typer.Abort:
        code = 130
    except typer.TyperException as ex:  # usage errors: unknown option, missing argument ...
        text = ex.format_message() if hasattr(ex, "format_message") else str(ex)
        code = _fail(text.splitlines()[0], EXIT_REFUSED)
    except OrderflowError as ex:
        code = _fail(str(ex), EXIT_REFUSED)
    except ValidationError as ex:
        first = ex.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        code = _fail(f"{where}: {first['msg']}" if where else first["msg"], EXIT_REFUSED)
    except ServerUnreachable as ex:
        if debug:
            traceback.print_exc()
        code = _fail(str(ex), EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        code = 130
    except Exception as ex:  # the promise: never a traceback unless --debug
        if debug:
            traceback.print_exc()
        code = _fail(
            f"{type(ex).__name__}: {str(ex).splitlines()[0] if str(ex) else ''} (rerun with --debug)",
            1,
        )
    return code


def main(argv: Sequence[str] | None = None) -> None:
    """The console script."""
    code = run(sys.argv[1:] if argv is None else argv)
    # Leave without interpreter finalization: the Temporal core's native threads may still be
    # winding down, and tearing Python down under them can abort a finished command.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
