"""One shipment with one carrier: its records, the order of events, the evidence rule, trace
and lost, and what the delivery reports to its order.

Pure rules; the delivery workflow holds one ``DeliveryState`` and calls these.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import Field

from domain.base import Model, NonEmpty
from domain.carrier import CarrierEvent, CarrierEventName, CarrierEventRecorded
from domain.errors import InvalidInput, WrongState
from domain.registry import Policy


class DeliveryStatus(StrEnum):
    BOOKING = "booking"
    BOOKED = "booked"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    ATTEMPTED = "attempted"
    EXCEPTION = "exception"
    DELIVERED = "delivered"
    LOST = "lost"
    RETURNED = "returned"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = (
    DeliveryStatus.DELIVERED,
    DeliveryStatus.LOST,
    DeliveryStatus.RETURNED,
    DeliveryStatus.CANCELLED,
)


class ReportKind(StrEnum):
    """What a delivery tells its order."""

    BOOKED = "booked"
    PICKED_UP = "picked_up"
    SCANNED = "scanned"
    ATTEMPTED = "attempted"
    EXCEPTION = "exception"
    RESCHEDULED = "rescheduled"
    REDIRECTED = "redirected"
    TRACE_OPENED = "trace_opened"
    WINDOW_MISSED = "window_missed"
    DELIVERED = "delivered"
    LOST = "lost"
    RETURNED = "returned"

    @property
    def routine(self) -> bool:
        """Nothing to tell anyone yet (a pickup, a scan): the order learns of it with the next
        report, or with the outcome."""
        return self in (ReportKind.PICKED_UP, ReportKind.SCANNED)


EVIDENCE = ("photo", "gps", "time")


class Attempt(Model):
    at: datetime
    verified: bool
    reason: str = ""
    missing: list[str] = Field(default_factory=list)


class DeliverySummary(Model):
    """The order's record of one of its deliveries."""

    delivery_id: int
    workflow_id: str
    carrier: str
    status: DeliveryStatus = DeliveryStatus.BOOKING
    tracking: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    pickup_point: str = ""
    attempts: list[Attempt] = Field(default_factory=list)
    last_scan_at: datetime | None = None


class Reschedule(Model):
    window_start: datetime
    window_end: datetime
    actor: str = "customer"


class Redirect(Model):
    pickup_point: NonEmpty
    actor: str = "customer"


class DeliveryUpdated(Model):
    delivery_id: int
    status: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    pickup_point: str = ""


class DeliveryReport(Model):
    """What a delivery tells its order. Only the order talks to the customer."""

    delivery_id: int
    kind: ReportKind
    at: datetime
    status: DeliveryStatus
    verified: bool | None = None
    reason: str = ""
    missing: list[str] = Field(default_factory=list)
    tracking: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    pickup_point: str = ""
    location: str = ""


class DeliveryReports(Model):
    """Reports a delivery sends its order in one signal, oldest first."""

    reports: list[DeliveryReport]


class DeliveryInput(Model):
    order_id: str
    delivery_id: int
    carrier: str
    destination: str = ""
    # "lat,lon" of the address, when known; an attempt's GPS fix must be near it.
    destination_gps: str = ""
    window_start: datetime
    window_end: datetime
    policy: Policy = Field(default_factory=Policy)


class DeliveryOutcome(Model):
    delivery_id: int
    status: DeliveryStatus
    at: datetime
    verified_attempts: int = 0
    unverified_attempts: int = 0
    # What the order has not been told yet (routine movements, the final event), in order.
    reports: list[DeliveryReport] = Field(default_factory=list)


class DeliveryState(Model):
    inp: DeliveryInput
    status: DeliveryStatus = DeliveryStatus.BOOKING
    window_start: datetime
    window_end: datetime
    pickup_point: str = ""
    attempts: list[Attempt] = Field(default_factory=list)
    last_movement_at: datetime
    trace_opened: bool = False
    # The order has been told that the delivery window passed without a delivery.
    window_missed: bool = False
    results: dict[str, CarrierEventRecorded] = Field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def verified_attempts(self) -> int:
        return sum(1 for a in self.attempts if a.verified)

    @property
    def unverified_attempts(self) -> int:
        return sum(1 for a in self.attempts if not a.verified)


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
        raise InvalidInput("a scan needs the location where it happened (--evidence location=...)")


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


def check_reschedule(state: DeliveryState, cmd: Reschedule, now: datetime) -> None:
    if state.terminal:
        raise WrongState(f"delivery {state.inp.delivery_id} is already {state.status}")
    if cmd.window_end <= cmd.window_start:
        raise InvalidInput("the window must end after it starts (START/END)")
    if cmd.window_end <= now:
        raise InvalidInput("the new window is in the past")
    if cmd.window_end - cmd.window_start > timedelta(days=7):
        raise InvalidInput("a delivery window may be at most 7 days long")


def check_redirect(state: DeliveryState, cmd: Redirect) -> None:
    if state.terminal:
        raise WrongState(f"delivery {state.inp.delivery_id} is already {state.status}")


def silence_deadline(state: DeliveryState) -> datetime | None:
    """When the carrier's silence opens a trace, or once one is open, makes the parcel lost."""
    if state.terminal or state.status == DeliveryStatus.BOOKING:
        return None
    policy = state.inp.policy
    if not state.trace_opened:
        return state.last_movement_at + policy.scan_sla
    return state.last_movement_at + policy.lost_after


def window_deadline(state: DeliveryState) -> datetime | None:
    """The end of the delivery window, the order's promise to the customer, until the order
    has been told it passed. The delivery keeps this timer while it runs, so the order keeps
    none of its own for it."""
    if state.terminal or state.status == DeliveryStatus.BOOKING or state.window_missed:
        return None
    return state.window_end


def next_deadline(state: DeliveryState) -> datetime | None:
    """The soonest of the delivery's deadlines: its one timer waits for it."""
    return min(
        (d for d in (silence_deadline(state), window_deadline(state)) if d is not None),
        default=None,
    )


# --------------------------------------------------------------------------- what happens


def report(
    state: DeliveryState, kind: ReportKind, now: datetime, **extra: object
) -> DeliveryReport:
    """A report to the order, with the delivery as it stands now."""
    return DeliveryReport.model_validate(
        {
            "delivery_id": state.inp.delivery_id,
            "kind": kind,
            "at": now,
            "status": state.status,
            "window_start": state.window_start,
            "window_end": state.window_end,
            "pickup_point": state.pickup_point,
            **extra,
        }
    )


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


def reschedule(state: DeliveryState, cmd: Reschedule, now: datetime) -> DeliveryReport:
    state.window_start = cmd.window_start
    state.window_end = cmd.window_end
    return report(state, ReportKind.RESCHEDULED, now)


def redirect(state: DeliveryState, cmd: Redirect, now: datetime) -> DeliveryReport:
    state.pickup_point = cmd.pickup_point.strip()
    return report(state, ReportKind.REDIRECTED, now)


def updated(state: DeliveryState) -> DeliveryUpdated:
    """The answer to the customer's reschedule or redirect."""
    return DeliveryUpdated(
        delivery_id=state.inp.delivery_id,
        status=state.status,
        window_start=state.window_start,
        window_end=state.window_end,
        pickup_point=state.pickup_point,
    )


def window_passed(state: DeliveryState, now: datetime) -> DeliveryReport | None:
    """The window's end passed with the parcel not delivered: the order hears it once."""
    window = window_deadline(state)
    if window is None or window > now:
        return None
    state.window_missed = True
    return report(state, ReportKind.WINDOW_MISSED, now)


def silence_passed(state: DeliveryState, now: datetime) -> bool:
    """The carrier has been silent past the scan SLA (or, with a trace open, past lost_after)."""
    silence = silence_deadline(state)
    return silence is not None and silence <= now


def declare_lost(state: DeliveryState, now: datetime) -> DeliveryReport:
    state.status = DeliveryStatus.LOST
    return report(state, ReportKind.LOST, now)


def urgent(pending: list[DeliveryReport]) -> bool:
    """A report waits that the order must have now, not with the next one."""
    return any(not r.kind.routine for r in pending)


def outcome(state: DeliveryState, now: datetime, pending: list[DeliveryReport]) -> DeliveryOutcome:
    return DeliveryOutcome(
        delivery_id=state.inp.delivery_id,
        status=state.status,
        at=now,
        verified_attempts=state.verified_attempts,
        unverified_attempts=state.unverified_attempts,
        reports=pending,
    )
