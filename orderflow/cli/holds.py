"""Commands for holds and promises: the departments' messages to an order."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table

from domain.durations import parse_time
from domain.holds import DisputeHold, PlaceHold, ReleaseHold, UpholdHold
from domain.promises import KeepPromise, MakePromise, PromiseKind
from orderflow.cli.common import (
    ACTOR,
    JSON,
    actor,
    amount,
    emit_json,
    hold_app,
    out,
    promise_app,
    promises_app,
    when,
    with_app,
)

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
    lines: list[int] = typer.Option(
        [], "--line", help="Hold only this line (1 is the first); repeat for several."
    ),
    who: str | None = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Place a hold on the order, or on some of its lines; prints the hold id. The customer
    and the blocked department are told."""
    cmd = PlaceHold(
        department=department,
        actor=actor(who),
        reason_code=reason,
        customer_message=message,
        reference=ref,
        amount=amount(amount_text),
        lines=lines,
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
