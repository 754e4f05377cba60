"""Orders ended outside the engine are noticed, compensated and explained.

``SweepWorkflow`` runs on a Temporal Schedule (``orderflow-sweep-<task queue>``, created by the
worker on start-up and by ``orderflow dev``) and starts one ``FollowUpWorkflow`` per order that
was terminated, timed out or failed. A closed order's search attributes can no longer change, so
the follow-up is the record staff see: its ``OrderStatus`` says how the order ended, its summary
and details say what was undone. It does what the order's compensation would have done, under
the same idempotency keys (a void or refund the order had already made is not made again),
tells the customer the truth and alerts fulfilment and care.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain import followup as rules
    from domain.billing import PaymentCall, PaymentRequest
    from domain.carrier import CarrierCall
    from domain.followup import (
        EndedOrder,
        FollowUpCall,
        FollowUpInput,
        FollowUpResult,
        SweepRequest,
    )
    from domain.ids import order_workflow_id
    from domain.notices import SEND_EMAILS, EmailBatch, Notification
    from domain.stock import ReleaseRequest, StockCall

CALL = {
    "start_to_close_timeout": timedelta(seconds=30),
    # Outages of a dependency delay the follow-up; they never make it give up.
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=5)),
}


@workflow.defn
class SweepWorkflow:
    @workflow.run
    async def run(self, req: SweepRequest) -> list[str]:
        started: list[str] = await workflow.execute_activity(
            FollowUpCall.START_FOLLOWUPS, req, result_type=list[str], **CALL
        )
        return started


@workflow.defn
class FollowUpWorkflow:
    def __init__(self) -> None:
        self.actions: list[str] = []

    @workflow.run
    async def run(self, inp: FollowUpInput) -> FollowUpResult:
        if rules.needs_nothing(inp):
            workflow.set_current_details(
                f"Order {inp.order_id} was rejected by the engine: nothing was promised, "
                "charged or reserved."
            )
            return FollowUpResult(order_id=inp.order_id, ended_as=inp.ended_as, rejected=True)
        order: EndedOrder = await workflow.execute_activity(
            FollowUpCall.READ_ENDED_ORDER, inp.order_id, result_type=EndedOrder, **CALL
        )
        key = order_workflow_id(order.order_id)
        if order.open_booking:
            await workflow.execute_activity(CarrierCall.CANCEL, order.open_booking, **CALL)
            self.actions.append("cancelled the delivery with the carrier")
        if order.payment == "authorized":
            await workflow.execute_activity(
                PaymentCall.VOID,
                PaymentRequest(order_id=order.order_id, amount=order.total, key=f"{key}.void"),
                **CALL,
            )
            self.actions.append(f"voided the payment authorization of {order.total:.2f}")
        elif order.payment == "captured":
            await workflow.execute_activity(
                PaymentCall.REFUND,
                PaymentRequest(order_id=order.order_id, amount=order.charged, key=f"{key}.refund"),
                **CALL,
            )
            self.actions.append(f"refunded {order.charged:.2f}")
        if order.reservation_status in ("reserved", "waitlisted"):
            await workflow.execute_activity(
                StockCall.RELEASE,
                ReleaseRequest(
                    location=order.reservation_location,
                    sku=order.reservation_sku,
                    order_id=order.order_id,
                ),
                **CALL,
            )
            self.actions.append("released the item reserved for you")
        me = workflow.info().workflow_id
        subject, body = rules.customer_mail(order, inp, self.actions)
        notes = [
            Notification(
                key=f"{me}.customer",
                to=order.customer_email,
                subject=subject,
                body=body,
                order_id=order.order_id,
            )
        ]
        subject, body = rules.alert_mail(order, inp, self.actions)
        notes += [
            Notification(
                key=f"{me}.alert.{n}", to=to, subject=subject, body=body, order_id=order.order_id
            )
            for n, to in enumerate(order.alert_emails, start=1)
        ]
        await workflow.execute_activity(SEND_EMAILS, EmailBatch(notes=notes), **CALL)
        workflow.set_current_details(
            f"**Order {order.order_id} {inp.ended_as.value}** while {order.status}. "
            + ("Undone: " + "; ".join(self.actions) + ". " if self.actions else "")
            + "Customer told; fulfilment and care alerted."
        )
        return FollowUpResult(order_id=order.order_id, ended_as=inp.ended_as, actions=self.actions)
