"""A carrier's events on a delivery: the order they may come in, repeats answered with the
first result, and the evidence rule that decides whether an attempt counts against the
customer. Pure rules over the delivery's state."""

from __future__ import annotations

import math
from datetime import datetime

from domain.carrier import CarrierEvent, CarrierEventName, CarrierEventRecorded
from domain.delivery import (
    Attempt,
    DeliveryReport,
    DeliveryState,
    DeliveryStatus,
    ReportKind,
    report,
)
from domain.errors import InvalidInput, WrongState

EVIDENCE = ("photo", "gps", "time")
_MOVING = (
    DeliveryStatus.PICKED_UP,
    DeliveryStatus.IN_TRANSIT,
    DeliveryStatus.ATTEMPTED,
    DeliveryStatus.EXCEPTION,
)
# Which statuses accept which event: anything else is out of order.
ACCEPTS: dict[CarrierEventName, tuple[DeliveryStatus, ...]] = {
    CarrierEventName.PICKED_UP: (DeliveryStatus.BOOKED,),
    CarrierEventName.SCAN: _MOVING,
    CarrierEventName.ATTEMPTED: _MOVING,
    CarrierEventName.DELIVERED: _MOVING,
    CarrierEventName.EXCEPTION: (DeliveryStatus.BOOKED, *_MOVING),
    CarrierEventName.LOST: _MOVING,
}
# Events that happen once per delivery: a repeat is answered with the first result.
SINGLE = (CarrierEventName.PICKED_UP, CarrierEventName.DELIVERED, CarrierEventName.LOST)


def dedupe_key(event: CarrierEvent) -> str | None:
    """Events with this key were seen before: answer with the first result."""
    if event.event_id:
        return f"id:{event.event_id}"
    if event.event in SINGLE:
        return f"event:{event.event}"
    return None


def check_event(state: DeliveryState, event: CarrierEvent) -> None:
    key = dedupe_key(event)
    if key and key in state.results:
        return
    if state.terminal:
        raise WrongState(
            f"delivery {state.inp.delivery_id} of order {state.inp.order_id} is already "
            f"{state.status}; '{event.event}' is not accepted"
        )
    if state.status not in ACCEPTS[event.event]:
        raise WrongState(
            f"'{event.event}' is out of order: delivery {state.inp.delivery_id} is {state.status}"
            + (
                "; the parcel must be picked up first"
                if state.status == DeliveryStatus.BOOKED
                else ""
            )
        )
    if event.event == CarrierEventName.SCAN and not event.location.strip():
        raise InvalidInput("evidence.location: a scan needs the location where it happened")


def _distance_m(a: str, b: str) -> float:
    lat1, lon1 = (math.radians(float(x)) for x in a.split(","))
    lat2, lon2 = (math.radians(float(x)) for x in b.split(","))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def judge_attempt(state: DeliveryState, event: CarrierEvent, now: datetime) -> Attempt:
    """An attempt counts only with a photo, a GPS fix near the address and a time in the window."""
    ev = event.evidence
    missing = [k for k in EVIDENCE if not ev.get(k, "").strip()]
    if "gps" not in missing and state.inp.destination_gps:
        try:
            far = (
                _distance_m(ev["gps"], state.inp.destination_gps) > state.inp.policy.gps_tolerance_m
            )
        except (ValueError, IndexError):
            far = True
        if far:
            missing.append("gps near the address")
    at = now
    if "time" not in missing:
        try:
            at = datetime.fromisoformat(ev["time"].replace("Z", "+00:00"))
            if at.tzinfo is None:
                raise ValueError
            if not (state.window_start <= at <= state.window_end):
                missing.append("time inside the delivery window")
        except ValueError:
            missing.append("time (ISO 8601 with zone)")
            at = now
    return Attempt(at=at, verified=not missing, reason=event.reason, missing=missing)


def record_event(
    state: DeliveryState, event: CarrierEvent, now: datetime
) -> tuple[CarrierEventRecorded, list[DeliveryReport]]:
    """Apply a carrier's event: the answer to the carrier, and the reports it makes. A repeat
    (same event id, or a second pickup, delivery or loss) gets the first answer and changes
    nothing."""
    key = dedupe_key(event)
    if key and key in state.results:
        return state.results[key].model_copy(update={"duplicate": True}), []
    reports: list[DeliveryReport] = []
    verified: bool | None = None
    note = ""
    match event.event:
        case CarrierEventName.PICKED_UP:
            state.status = DeliveryStatus.PICKED_UP
            state.last_movement_at = now
            reports.append(report(state, ReportKind.PICKED_UP, now))
        case CarrierEventName.SCAN:
            state.status = DeliveryStatus.IN_TRANSIT
            state.last_movement_at = now
            reports.append(report(state, ReportKind.SCANNED, now, location=event.location))
        case CarrierEventName.ATTEMPTED:
            attempt = judge_attempt(state, event, now)
            state.attempts.append(attempt)
            state.status = DeliveryStatus.ATTEMPTED
            state.last_movement_at = now
            verified = attempt.verified
            if not verified:
                note = "unverified: missing " + ", ".join(attempt.missing)
            reports.append(
                report(
                    state,
                    ReportKind.ATTEMPTED,
                    now,
                    verified=verified,
                    reason=event.reason,
                    missing=attempt.missing,
                )
            )
            if state.verified_attempts >= state.inp.policy.attempt_limit:
                state.status = DeliveryStatus.RETURNED
                reports.append(report(state, ReportKind.RETURNED, now))
        case CarrierEventName.DELIVERED:
            state.status = DeliveryStatus.DELIVERED
            reports.append(report(state, ReportKind.DELIVERED, now))
        case CarrierEventName.EXCEPTION:
            state.status = DeliveryStatus.EXCEPTION
            state.last_movement_at = now
            reports.append(
                report(state, ReportKind.EXCEPTION, now, reason=event.code or event.reason)
            )
        case CarrierEventName.LOST:
            state.status = DeliveryStatus.LOST
            reports.append(report(state, ReportKind.LOST, now))
    result = CarrierEventRecorded(
        delivery_id=state.inp.delivery_id,
        event=event.event,
        status=state.status,
        verified=verified,
        note=note,
    )
    if key:
        state.results[key] = result
    return result, reports
