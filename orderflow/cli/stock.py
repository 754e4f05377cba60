"""Commands on stock records."""

from __future__ import annotations

import typer

from orderflow.cli.common import (
    JSON,
    emit_json,
    out,
    stock_app,
    when,
    with_app,
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
