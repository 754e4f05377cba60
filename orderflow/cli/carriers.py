"""Carrier events, the customer's delivery changes, and carriers' scorecards."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import typer
from rich.table import Table

from domain.carrier import CarrierEvent, CarrierEventName
from domain.delivery import Redirect, Reschedule
from domain.durations import parse_time
from domain.errors import InvalidInput
from orderflow.cli.common import (
    JSON,
    carrier_app,
    carriers_app,
    delivery_app,
    emit_json,
    out,
    when,
    with_app,
)

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
