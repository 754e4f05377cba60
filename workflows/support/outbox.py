"""The order's outbox: every e-mail the order sends, in order, exactly once.

Handlers and steps only queue; the outbox sends what history already holds, in one call per
batch, once no step runs (a hold's e-mail goes before the department's call returns, since the
update's answer leaves with the same workflow task). The customer hears first: their e-mail is
queued before the department's.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import messages
    from domain.notices import SEND_EMAILS, EmailBatch, Notice, Notification, notification_key
    from domain.order import OrderState
    from workflows.support.gate import CallGate


class Outbox:
    def __init__(self, state: OrderState, gate: CallGate) -> None:
        self._state = state
        self._gate = gate
        self._queue: list[Notification] = []
        self._seq = 0
        self._closing = False

    def send(self, notices: list[Notice]) -> None:
        """Queue an event's e-mails, in the order the domain lists them."""
        for notice in notices:
            if notice.to_customer:
                self.tell_customer(notice.kind, notice.mail)
            else:
                self.tell(notice.to, notice.mail)

    def tell_customer(self, kind: str, mail: messages.Mail) -> None:
        """An e-mail to the customer, also on the order's timeline."""
        subject, body = mail
        self._state.told_customer(workflow.now(), kind, messages.summary(body))
        self._queue_mail(self._state.input.customer.email, subject, body)

    def tell(self, to: str, mail: messages.Mail) -> None:
        """An e-mail to a department or supervisor, when it has an address."""
        if to:
            self._queue_mail(to, *mail)

    def _queue_mail(self, to: str, subject: str, body: str) -> None:
        self._seq += 1
        key = notification_key(workflow.info().workflow_id, self._seq, to, subject, body)
        self._queue.append(
            Notification(key=key, to=to, subject=subject, body=body, order_id=self._state.order_id)
        )

    def close(self) -> None:
        """The order is done: send what is queued, then stop."""
        self._closing = True

    async def run(self) -> None:
        while True:
            await workflow.wait_condition(
                lambda: (
                    (bool(self._queue) and self._gate.steps_idle)
                    or (self._closing and not self._queue)
                )
            )
            if not self._queue:
                return
            batch = list(self._queue)
            await self._gate.send(
                SEND_EMAILS,
                EmailBatch(notes=batch),
                summary=f"{len(batch)} e-mail" + ("s" if len(batch) > 1 else ""),
            )
            del self._queue[: len(batch)]
