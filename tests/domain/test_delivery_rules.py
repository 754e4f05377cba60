"""A delivery's rules, without Temporal: the order of carrier events, the evidence rule,
duplicates, the window, silence and lost."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain import carrier_events as events
from domain import delivery as rules
from domain.carrier import CarrierEvent, CarrierEventName
from domain.delivery import DeliveryStatus, Redirect, ReportKind, Reschedule
from domain.errors import InvalidInput, WrongState
from tests.domain.factories import NOW, delivery

AT_HOME = {"photo": "p.jpg", "gps": "52.5201,13.4001", "time": NOW.isoformat()}


def event(name: CarrierEventName, **kw: object) -> CarrierEvent:
    return CarrierEvent.model_validate({"event": name, **kw})


def test_events_must_come_in_order() -> None:
    s = delivery()
    with pytest.raises(WrongState, match="must be picked up first"):
        events.check_event(s, event(CarrierEventName.SCAN, location="Hub"))
    events.record_event(s, event(CarrierEventName.PICKED_UP), NOW)
    with pytest.raises(InvalidInput, match="location"):
        events.check_event(s, event(CarrierEventName.SCAN))
    events.check_event(s, event(CarrierEventName.SCAN, location="Hub"))


def test_routine_movements_wait_and_a_repeat_gets_the_first_answer() -> None:
    s = delivery()
    first, reports = events.record_event(s, event(CarrierEventName.PICKED_UP), NOW)
    assert s.status == DeliveryStatus.PICKED_UP and not rules.urgent(reports)
    again, more = events.record_event(s, event(CarrierEventName.PICKED_UP), NOW)
    assert again.duplicate and not first.duplicate and more == []
    _, scans = events.record_event(s, event(CarrierEventName.SCAN, location="Hub"), NOW)
    assert [r.kind for r in scans] == [ReportKind.SCANNED] and scans[0].location == "Hub"
    assert not rules.urgent(reports + scans)


def test_an_attempt_counts_only_with_full_evidence_near_the_address_in_the_window() -> None:
    s = delivery()
    events.record_event(s, event(CarrierEventName.PICKED_UP), NOW)
    result, reports = events.record_event(s, event(CarrierEventName.ATTEMPTED), NOW)
    assert result.verified is False and "photo" in result.note
    assert rules.urgent(reports) and reports[0].missing == ["photo", "gps", "time"]
    far = dict(AT_HOME, gps="48.85,2.35")
    assert events.judge_attempt(
        s, event(CarrierEventName.ATTEMPTED, evidence=far), NOW
    ).missing == ["gps near the address"]
    late = dict(AT_HOME, time=(NOW + timedelta(days=3)).isoformat())
    assert events.judge_attempt(
        s, event(CarrierEventName.ATTEMPTED, evidence=late), NOW
    ).missing == ["time inside the delivery window"]
    assert events.judge_attempt(
        s, event(CarrierEventName.ATTEMPTED, evidence=AT_HOME), NOW
    ).verified


def test_verified_attempts_up_to_the_limit_return_the_parcel() -> None:
    s = delivery(attempt_limit=2)
    events.record_event(s, event(CarrierEventName.PICKED_UP), NOW)
    events.record_event(s, event(CarrierEventName.ATTEMPTED, evidence=AT_HOME), NOW)
    _, reports = events.record_event(s, event(CarrierEventName.ATTEMPTED, evidence=AT_HOME), NOW)
    assert [(r.kind, r.status) for r in reports] == [
        (ReportKind.ATTEMPTED, DeliveryStatus.ATTEMPTED),
        (ReportKind.RETURNED, DeliveryStatus.RETURNED),
    ]
    assert s.terminal and rules.next_deadline(s) is None


def test_silence_opens_a_trace_then_makes_the_parcel_lost() -> None:
    s = delivery()
    events.record_event(s, event(CarrierEventName.PICKED_UP), NOW)
    policy = s.inp.policy
    assert rules.next_deadline(s) == NOW + min(policy.scan_sla, policy.delivery_window)
    assert not rules.silence_passed(s, NOW + policy.scan_sla - timedelta(seconds=1))
    assert rules.silence_passed(s, NOW + policy.scan_sla)
    s.trace_opened = True
    assert rules.silence_deadline(s) == NOW + policy.lost_after
    report = rules.declare_lost(s, NOW + policy.lost_after)
    assert report.kind == ReportKind.LOST and s.status == DeliveryStatus.LOST


def test_the_window_passes_once() -> None:
    s = delivery()
    assert rules.window_passed(s, NOW) is None
    missed = rules.window_passed(s, s.window_end)
    assert missed is not None and missed.kind == ReportKind.WINDOW_MISSED
    assert rules.window_passed(s, s.window_end) is None


def test_customer_reschedules_and_redirects() -> None:
    s = delivery()
    with pytest.raises(InvalidInput, match="end after it starts"):
        rules.check_reschedule(
            s, Reschedule(window_start=NOW + timedelta(hours=2), window_end=NOW), NOW
        )
    cmd = Reschedule(window_start=NOW + timedelta(days=1), window_end=NOW + timedelta(days=2))
    rules.check_reschedule(s, cmd, NOW)
    assert rules.reschedule(s, cmd, NOW).window_start == cmd.window_start
    assert rules.redirect(s, Redirect(pickup_point=" Kiosk 4 "), NOW).pickup_point == "Kiosk 4"
    assert rules.updated(s).pickup_point == "Kiosk 4"


def test_the_outcome_carries_what_the_order_was_not_told() -> None:
    s = delivery()
    _, reports = events.record_event(s, event(CarrierEventName.PICKED_UP), NOW)
    events.record_event(s, event(CarrierEventName.DELIVERED), NOW)
    outcome = rules.outcome(s, NOW, reports)
    assert outcome.status == DeliveryStatus.DELIVERED and outcome.reports == reports
