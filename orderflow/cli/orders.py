"""Commands on one order and on finding orders."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.markup import escape
from rich.table import Table

from domain.durations import parse_duration
from domain.errors import InvalidInput
from domain.order import CancelOrder, OrderStatus
from domain.view import OrderView
from orderflow.cli.common import (
    ACTOR,
    JSON,
    actor,
    emit_json,
    order_app,
    orders_app,
    out,
    when,
    with_app,
)
from orderflow.service import Orderflow, money

# ============================================================================ orders


def print_view(v: OrderView, link: str) -> None:
    ships = f"  ships {v.ship}" if len(v.lines) > 1 else ""
    out.print(f"[bold]Order {v.order_id}[/bold]  {v.status}  customer {v.customer_id}{ships}")
    if v.customer_name:
        to = f"; ships to {v.ship_to}" if v.ship_to else ""
        out.print(escape(f"  {v.customer_name} <{v.customer_email}>{to}"))
    for line in v.lines:
        r = line.reservation
        where = ""
        if r is not None:
            pos = f" (position {r.position})" if r.position else ""
            where = f"  {r.status}{pos} at {r.location}"
        held = f"  [red]blocked by {', '.join(line.blocked_by)}[/red]" if line.blocked_by else ""
        if line.delivery_id is not None:
            where += f"  delivery {line.delivery_id}"
        out.print(
            f"  line {line.line}: {line.qty} x {line.sku} {line.name} at "
            f"{money(line.unit_price)}  {line.status}{where}{held}"
        )
    out.print(
        f"  total {money(v.total)} (locked at placement)  payment {v.payment}, charged {money(v.charged)}"
    )
    t = v.totals
    if t is not None and (t.voided or t.refunded) and len(v.lines) > 1:
        out.print(
            f"  authorized {money(t.authorized)}, captured {money(t.captured)}, "
            f"voided {money(t.voided)}, refunded {money(t.refunded)}"
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
        on = f" on line {', '.join(map(str, h.lines))}" if h.lines else ""
        out.print(
            f"  hold {h.hold_id}{on} {h.department}/{h.reason} {h.status} placed {when(h.placed_at)} by {h.placed_by}, "
            f"SLA {when(h.sla_due_at)}, escalations {h.escalations}"
            + (f", released by {h.released_by}: {h.resolution}" if h.released_at else "")
        )
    for p in v.promises:
        out.print(
            f"  promise {p.promise_id} {p.kind} by {p.department}: {p.text} - due {when(p.due_at)}, {p.status}"
        )
    for d in v.deliveries:
        verified = sum(1 for a in d.attempts if a.verified)
        carries = f" (line {', '.join(map(str, d.lines))})" if d.lines else ""
        out.print(
            f"  delivery {d.delivery_id}{carries} {d.carrier} {d.status} tracking {d.tracking or '-'}, "
            f"attempts {verified} verified / {len(d.attempts) - verified} unverified"
        )
    out.print(f"  {link}")


def order_lines(sku: str | None, qty: int, lines: list[str]) -> list[tuple[str, int]]:
    """The order's lines from ``--line SKU[:QTY]`` (repeated), or the one-line ``--sku``/``--qty``."""
    if sku is not None and lines:
        raise InvalidInput("give --sku (one line) or --line (one or more), not both")
    if sku is not None:
        return [(sku, qty)]
    if not lines:
        raise InvalidInput("--line SKU[:QTY] (or --sku) is required")
    out: list[tuple[str, int]] = []
    for n, text in enumerate(lines, start=1):
        name, sep, count = text.partition(":")
        if not name.strip() or (sep and not count.strip()):
            raise InvalidInput(f"--line {n}: '{text}' is not SKU or SKU:QTY")
        try:
            units = int(count) if sep else 1
        except ValueError:
            raise InvalidInput(
                f"--line {n}: the quantity in '{text}' is not a whole number"
            ) from None
        out.append((name.strip(), units))
    return out


@order_app.command("place")
def order_place(
    customer: str = typer.Option(..., "--customer", help="Customer id (see orderflow catalog)."),
    sku: str | None = typer.Option(None, "--sku", help="The one-line form: the SKU."),
    qty: int = typer.Option(1, "--qty", help="The one-line form: its quantity."),
    lines: list[str] = typer.Option(
        [],
        "--line",
        help="SKU[:QTY], once per line (up to 50; the same SKU twice is one line).",
    ),
    location: str | None = typer.Option(None, "--location"),
    carrier: str | None = typer.Option(None, "--carrier"),
    pickup: bool = typer.Option(False, "--pickup", help="Collect in store instead of delivery."),
    ship: str = typer.Option(
        "available",
        "--ship",
        help="Several lines: available (what is reserved ships now, the rest as it arrives, "
        "each its own delivery) or complete (one delivery once every line is reserved).",
    ),
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

    wanted = order_lines(sku, qty, lines)

    async def go(of: Orderflow) -> tuple[OrderView, bool]:
        inp = of.order_input(
            customer_id=customer,
            lines=wanted,
            location=location,
            carrier=carrier,
            pickup=pickup,
            order_id=order_id,
            any_location=any_location,
            actor=actor(who),
            ship=ship,
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
        by = f"  [dim]({e.principal}: {e.actor})[/dim]" if e.principal else ""
        out.print(f"{when(e.at)}  [bold]{e.kind}[/bold]  {e.text}{by}")


@order_app.command("cancel")
def order_cancel(
    order: str,
    by: str = typer.Option(..., "--by", help="A department, or 'customer'."),
    reason: str = typer.Option(..., "--reason"),
    message: str = typer.Option(
        "", "--message", help="What the customer reads (required for departments)."
    ),
    line: int | None = typer.Option(
        None, "--line", help="Cancel only this line (1 is the first) until it leaves the store."
    ),
    who: str | None = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Cancel an order, or one of its lines: compensation runs and the customer is told."""
    result = with_app(
        lambda of: of.cancel(
            order,
            CancelOrder(
                by=by, actor=actor(who), reason=reason, customer_message=message, line=line
            ),
        )
    )
    if as_json:
        emit_json(result)
    else:
        what = f"{result.order_id} line {line}" if line is not None else result.order_id
        print(f"{what} cancelled: " + ("; ".join(result.compensations) or "nothing to undo"))


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
    status: str | None = typer.Option(None, "--status", help="|".join(OrderStatus)),
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
