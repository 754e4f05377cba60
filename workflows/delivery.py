"""DeliveryWorkflow: one shipment with one partner carrier, a child of its order.

The order starts this workflow, then books the shipment under this workflow's booking key, so
the delivery is there before the carrier can know of the parcel. Carrier events arrive as
validated updates; evidence decides whether an attempt counts (``domain.carrier_events``).
Silence past the scan SLA opens a trace, and past ``lost_after`` declares the parcel lost; the
end of the window is the order's promise, watched here on the same timer
(``workflows/support/timer.py``). Every event the customer must hear of is reported to the
parent order at once, which alone talks to the customer; routine movements (pickup, scans) ride
along with the next report or the outcome, so a delivery that goes to plan costs the order no
signals at all.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from domain import authority
    from domain import carrier_events as events
    from domain import delivery as rules
    from domain.authority import Caller
    from domain.carrier import (
        CarrierCall,
        CarrierEvent,
        CarrierEventRecorded,
        TraceRequest,
        booking_key,
    )
    from domain.delivery import (
        DeliveryInput,
        DeliveryOutcome,
        DeliveryReport,
        DeliveryReports,
        DeliveryState,
        DeliveryStatus,
        DeliveryUpdated,
        Redirect,
        ReportKind,
        Reschedule,
    )
    from domain.errors import NotAllowed
    from workflows.search_attributes import CARRIER
    from workflows.support.gate import CallGate
    from workflows.support.refusals import NO_INPUT, accepted, door
    from workflows.support.timer import DeadlineTimer


def _by(report: DeliveryReport, who: Caller | None) -> DeliveryReport:
    """The report, saying who sent what it reports."""
    if who is None:
        return report
    return report.model_copy(
        update={"principal": who.principal, "actor": who.actor, "kid": who.kid}
    )


@workflow.defn
class DeliveryWorkflow:
    @workflow.init
    def __init__(self, inp: DeliveryInput) -> None:
        self.state = DeliveryState(
            inp=inp,
            window_start=inp.window_start,
            window_end=inp.window_end,
            last_movement_at=workflow.now(),
            # The order books the shipment as soon as this workflow is running: the carrier
            # can only send events for a booking it has.
            status=DeliveryStatus.BOOKED,
        )
        self.pending: list[DeliveryReport] = []
        # Who sent the update being validated: set by the credentials interceptor.
        self.caller: Caller | None = None
        # A task with no command yet indexes the delivery's carrier before its first call.
        self.gate = CallGate(
            lambda: workflow.upsert_search_attributes([CARRIER.value_set(inp.carrier)])
        )
        self.deadlines = DeadlineTimer(
            lambda: rules.next_deadline(self.state), summary="trace-or-lost"
        )

    @property
    def booking_key(self) -> str:
        """The key the order books the shipment under."""
        return booking_key(workflow.info().workflow_id)

    @workflow.run
    async def run(self, inp: DeliveryInput) -> DeliveryOutcome:
        s = self.state
        self._details()
        # Never awaited: when the delivery ends, an armed timer ends with it, with no cancel.
        self.watcher = asyncio.create_task(self._watch())
        try:
            await workflow.wait_condition(lambda: s.terminal)
            await workflow.wait_condition(workflow.all_handlers_finished)
        except asyncio.CancelledError:
            # The order was cancelled: the booking goes too, then the cancellation stands.
            await asyncio.shield(self.gate.call(CarrierCall.CANCEL, self.booking_key))
            s.status = DeliveryStatus.CANCELLED
            raise
        if s.inp.reports_read:
            # Its order reads every report from here: the outcome carries them all, and the
            # order takes those it has not read.
            return rules.outcome(s, workflow.now(), [*s.reported, *self.pending])
        return rules.outcome(s, workflow.now(), self.pending)

    async def _watch(self) -> None:
        """The trace, lost and window deadlines on one timer; reports the order must have now
        are sent from here, so they reach the order in the order they happened."""
        s = self.state
        while True:
            fired = await self.deadlines.wait(
                asleep_while=lambda: s.terminal, wake_when=lambda: rules.urgent(self.pending)
            )
            if fired:
                now = workflow.now()
                missed = rules.window_passed(s, now)
                if missed is not None:
                    self._report(missed)
                if rules.silence_passed(s, now):
                    await self._silence()
            if s.terminal:
                return  # what is pending goes with the outcome
            await self._flush()

    async def _silence(self) -> None:
        s = self.state
        if not s.trace_opened:
            s.trace_opened = True
            await self.gate.call(
                CarrierCall.OPEN_TRACE,
                TraceRequest(
                    key=f"{workflow.info().workflow_id}.trace",
                    carrier=s.inp.carrier,
                    booking_key=self.booking_key,
                ),
            )
            self._report(rules.report(s, ReportKind.TRACE_OPENED, workflow.now()))
        else:
            self._report(rules.declare_lost(s, workflow.now()))

    def _report(self, report: DeliveryReport) -> None:
        self.pending.append(report)
        self.deadlines.moved()
        self._details()

    def _details(self) -> None:
        s = self.state
        workflow.set_current_details(
            f"**Delivery {s.inp.delivery_id} of order {s.inp.order_id}** with {s.inp.carrier}: "
            f"{s.status}; attempts {s.verified_attempts} verified, "
            f"{s.unverified_attempts} unverified"
        )

    async def _flush(self) -> None:
        """Tell the order what it must hear now, with the routine reports before it."""
        if not rules.urgent(self.pending):
            return
        parent = workflow.info().parent
        reports, self.pending = self.pending, []
        self.state.reported.extend(reports)
        if parent is not None and reports:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "delivery_reports", DeliveryReports(reports=reports)
            )

    # -- carrier events ---------------------------------------------------------------------

    @workflow.update
    def carrier_event(
        self, raw: Annotated[RawValue, CarrierEvent] = NO_INPUT
    ) -> CarrierEventRecorded:
        who = self.caller
        event = accepted(raw, CarrierEvent)
        result, reports = events.record_event(self.state, event, workflow.now())
        for report in reports:
            self._report(_by(report, who))
        return result

    @carrier_event.validator
    def validate_carrier_event(self, raw: Annotated[RawValue, CarrierEvent] = NO_INPUT) -> None:
        def rule(cmd: CarrierEvent) -> None:
            inp = self.state.inp
            authority.check_carrier(self.caller, inp.carrier, inp.order_id)
            events.check_event(self.state, cmd)

        door(raw, CarrierEvent, "carrier_event", rule)

    # -- self-service ------------------------------------------------------------------------

    @workflow.update
    def reschedule(self, raw: Annotated[RawValue, Reschedule] = NO_INPUT) -> DeliveryUpdated:
        who = self.caller
        cmd = accepted(raw, Reschedule)
        self._report(_by(rules.reschedule(self.state, cmd, workflow.now()), who))
        return rules.updated(self.state)

    @reschedule.validator
    def validate_reschedule(self, raw: Annotated[RawValue, Reschedule] = NO_INPUT) -> None:
        def rule(cmd: Reschedule) -> None:
            self._customer("reschedule the delivery")
            rules.check_reschedule(self.state, cmd, workflow.now())

        door(raw, Reschedule, "reschedule", rule)

    @workflow.update
    def redirect(self, raw: Annotated[RawValue, Redirect] = NO_INPUT) -> DeliveryUpdated:
        who = self.caller
        cmd = accepted(raw, Redirect)
        self._report(_by(rules.redirect(self.state, cmd, workflow.now()), who))
        return rules.updated(self.state)

    @redirect.validator
    def validate_redirect(self, raw: Annotated[RawValue, Redirect] = NO_INPUT) -> None:
        def rule(cmd: Redirect) -> None:
            self._customer("redirect the delivery")
            rules.check_redirect(self.state, cmd)

        door(raw, Redirect, "redirect", rule)

    def _customer(self, what: str) -> None:
        """Only the order's customer. A delivery booked before credentials does not know its
        customer: there an order desk acts for the customer, who asks it."""
        inp = self.state.inp
        if inp.customer_id:
            authority.check_customer(self.caller, inp.customer_id, inp.order_id, what)
            return
        who = authority.require_caller(self.caller, what, inp.order_id)
        if who.kind != authority.DESK:
            raise NotAllowed(
                f"credential: delivery {inp.delivery_id} of order {inp.order_id} was booked "
                f"before it knew its customer; an order desk may {what} for them, not "
                f"{who.principal}"
            )

    @workflow.query
    def status(self) -> DeliveryState:
        return self.state

    @workflow.query
    def reports_after(self, after: int) -> list[DeliveryReport]:
        """The reports sent to the order since its first ``after``."""
        return self.state.reported[after:]
