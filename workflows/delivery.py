"""DeliveryWorkflow: one shipment with one partner carrier, a child of its order.

The order starts this workflow, then books the shipment under this workflow's booking key, so
the delivery is there before the carrier can know of the parcel. Carrier events arrive as validated updates; evidence decides whether an attempt counts; silence past the scan
SLA opens a trace, and past ``lost_after`` declares the parcel lost. Every event the customer
must hear of is reported to the parent order at once, which alone talks to the customer; routine
movements (pickup, scans) ride along with the next report or the outcome, so a delivery that goes
to plan costs the order no signals at all.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import delivery as rules
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
        DeliveryUpdated,
        Redirect,
        Reschedule,
    )
    from domain.errors import OrderflowError
    from workflows.calls import TaskGuard, local_call
    from workflows.search_attributes import CARRIER

# Reports the order learns of with the next one, or with the outcome: nothing to tell anyone
# yet (a pickup, a scan), or the end of the delivery, which the order learns of as the result.
ROUTINE = ("picked_up", "scanned")


def _refuse(err: OrderflowError) -> ApplicationError:
    return ApplicationError(str(err), type=err.type, non_retryable=True)


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
            status="booked",
        )
        self.version = 0
        self.checked = -1
        self.pending: list[DeliveryReport] = []
        # The delivery's command before a call (workflows/calls.py): it indexes its carrier.
        self.guard = TaskGuard(
            lambda: workflow.upsert_search_attributes([CARRIER.value_set(inp.carrier)])
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
            await asyncio.shield(local_call(CarrierCall.CANCEL, self.booking_key, guard=self.guard))
            s.status = "cancelled"
            raise
        return DeliveryOutcome(
            delivery_id=inp.delivery_id,
            status=s.status,
            at=workflow.now(),
            verified_attempts=s.verified_attempts,
            unverified_attempts=s.unverified_attempts,
            reports=self.pending,
        )

    async def _watch(self) -> None:
        """One timer at a time for the next trace or lost deadline. Movement only pushes that
        deadline later, so the armed timer is kept and re-checked when it fires; it is re-armed
        at once only when the deadline comes sooner."""
        s = self.state
        while True:
            armed = rules.next_deadline(s)
            self.checked = self.version
            timeout = None
            if armed is not None:
                timeout = max((armed - workflow.now()).total_seconds(), 0.001)
            try:
                await workflow.wait_condition(
                    lambda armed=armed: not s.terminal and (self.urgent or self._sooner(armed)),
                    timeout=timeout,
                    timeout_summary="trace-or-lost",
                )
            except TimeoutError:
                now = workflow.now()
                window = rules.window_deadline(s)
                if window is not None and window <= now:
                    s.window_missed = True
                    self._report("window_missed")
                silence = rules.silence_deadline(s)
                if silence is not None and silence <= now:
                    await self._silence()
            if s.terminal:
                return  # what is pending goes with the outcome
            await self._flush()

    @property
    def urgent(self) -> bool:
        """A report waits that the order must have now, not with the next one."""
        return any(r.kind not in ROUTINE for r in self.pending)

    def _sooner(self, armed: datetime | None) -> bool:
        if self.checked == self.version:
            return False
        self.checked = self.version
        deadline = rules.next_deadline(self.state)
        return deadline is not None and (armed is None or deadline < armed)

    async def _silence(self) -> None:
        if not self.state.trace_opened:
            self.state.trace_opened = True
            await local_call(
                CarrierCall.OPEN_TRACE,
                TraceRequest(
                    key=f"{workflow.info().workflow_id}.trace",
                    carrier=self.state.inp.carrier,
                    booking_key=self.booking_key,
                ),
                guard=self.guard,
            )
            self._report("trace_opened")
        else:
            self.state.status = "lost"
            self._report("lost")

    def _report(self, kind: str, **extra: object) -> None:
        s = self.state
        self.pending.append(
            DeliveryReport(
                delivery_id=s.inp.delivery_id,
                kind=kind,  # type: ignore[arg-type]
                at=workflow.now(),
                status=s.status,
                window_start=s.window_start,
                window_end=s.window_end,
                pickup_point=s.pickup_point,
                **extra,  # type: ignore[arg-type]
            )
        )
        self.version += 1
        self._details()

    def _details(self) -> None:
        s = self.state
        workflow.set_current_details(
            f"**Delivery {s.inp.delivery_id} of order {s.inp.order_id}** with {s.inp.carrier}: "
            f"{s.status}; attempts {s.verified_attempts} verified, "
            f"{s.unverified_attempts} unverified"
        )

    async def _flush(self) -> None:
        """Tell the order what it must hear now, with the routine reports before it. Only the
        run loop flushes, so reports reach the order in the order they happened."""
        if not self.urgent:
            return
        parent = workflow.info().parent
        reports, self.pending = self.pending, []
        if parent is not None and reports:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "delivery_reports", DeliveryReports(reports=reports)
            )

    # -- carrier events ---------------------------------------------------------------------

    @workflow.update
    def carrier_event(self, event: CarrierEvent) -> CarrierEventRecorded:
        key = rules.dedupe_key(event)
        if key and key in self.state.results:
            first = self.state.results[key].model_copy(update={"duplicate": True})
            return first
        s = self.state
        now = workflow.now()
        verified: bool | None = None
        note = ""
        match event.event:
            case "picked-up":
                s.status = "picked_up"
                s.last_movement_at = now
                self._report("picked_up")
            case "scan":
                s.status = "in_transit"
                s.last_movement_at = now
                self._report("scanned", location=event.location)
            case "attempted":
                attempt = rules.judge_attempt(s, event, now)
                s.attempts.append(attempt)
                s.status = "attempted"
                s.last_movement_at = now
                verified = attempt.verified
                if not verified:
                    note = "unverified: missing " + ", ".join(attempt.missing)
                self._report(
                    "attempted", verified=verified, reason=event.reason, missing=attempt.missing
                )
                if s.verified_attempts >= s.inp.policy.attempt_limit:
                    s.status = "returned"
                    self._report("returned")
            case "delivered":
                s.status = "delivered"
                self._report("delivered")
            case "exception":
                s.status = "exception"
                s.last_movement_at = now
                self._report("exception", reason=event.code or event.reason)
            case "lost":
                s.status = "lost"
                self._report("lost")
        result = CarrierEventRecorded(
            delivery_id=s.inp.delivery_id,
            event=event.event,
            status=s.status,
            verified=verified,
            note=note,
        )
        if key:
            s.results[key] = result
        return result

    @carrier_event.validator
    def validate_carrier_event(self, event: CarrierEvent) -> None:
        try:
            rules.check_event(self.state, event)
        except OrderflowError as err:
            raise _refuse(err) from None

    # -- self-service ------------------------------------------------------------------------

    @workflow.update
    def reschedule(self, cmd: Reschedule) -> DeliveryUpdated:
        self.state.window_start = cmd.window_start
        self.state.window_end = cmd.window_end
        self._report("rescheduled")
        return self._updated()

    @reschedule.validator
    def validate_reschedule(self, cmd: Reschedule) -> None:
        try:
            rules.check_reschedule(self.state, cmd, workflow.now())
        except OrderflowError as err:
            raise _refuse(err) from None

    @workflow.update
    def redirect(self, cmd: Redirect) -> DeliveryUpdated:
        self.state.pickup_point = cmd.pickup_point.strip()
        self._report("redirected")
        return self._updated()

    @redirect.validator
    def validate_redirect(self, cmd: Redirect) -> None:
        try:
            rules.check_redirect(self.state, cmd)
        except OrderflowError as err:
            raise _refuse(err) from None

    def _updated(self) -> DeliveryUpdated:
        s = self.state
        return DeliveryUpdated(
            delivery_id=s.inp.delivery_id,
            status=s.status,
            window_start=s.window_start,
            window_end=s.window_end,
            pickup_point=s.pickup_point,
        )

    @workflow.query
    def status(self) -> DeliveryState:
        return self.state
