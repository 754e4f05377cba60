"""The order's outbox: every e-mail the order sends, in order, exactly once.

Handlers and steps only queue; the outbox sends in one call per batch, once no step runs. The
customer hears first: their e-mail is queued before the department's.

**E-mail only about what history holds** (orders that record the ``MAIL_AFTER_RECORD`` patch).
A batch is an activity scheduled by the workflow task that recorded its facts, so the server
hands it to a worker only once that task is in history: an update whose task then fails (too
large to record, a worker gone) e-mails no one. Steps never wait for it, so a mail-server outage
delays the e-mails and nothing else; the activity retries with backoff for the policy's
``mail_give_up`` (24 hours), after which the order records the batch as undeliverable on its
view and timeline, logs an error and counts it in ``orderflow_emails_undeliverable``.

**E-mail does not wait for a step stuck on another system** (orders that record
``MAIL_BESIDE_STUCK_STEPS``). Batches normally go out between steps, which groups an order's
e-mails into few activities; a step that has been calling for ``STUCK_AFTER`` is retrying
through an outage (a ledger locked, a carrier gateway down), and the e-mails queued meanwhile (a
hold placed on the order, its receipt) leave without waiting for it.

Orders that record ``MAIL_BESIDE_STEPS_STUCK_SECONDS`` judge a step stuck by that time. Before,
a step was stuck once it outlived the workflow task it began in; but a query arriving with a task
makes the worker complete it early, so a call of a few milliseconds can outlive its task too, and
then whether its result or another activity's reached the order first decided whether the outbox
scheduled its batch before the run's next call: the worker and a later replay can see those two
results in either order (seen once in 231 histories recorded under CPU load, an order of several
lines whose release calls followed a booking). By time, the outbox decides the same in both.

Orders started before keep sending as a local activity inside the task (their histories hold
those calls), which could let an e-mail leave for a task that then failed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain import messages
    from domain.notices import SEND_EMAILS, EmailBatch, Notice, Notification, notification_key
    from domain.order import OrderState
    from domain.timeline import Told
    from workflows.support.gate import CallGate

MAIL_AFTER_RECORD = "mail-after-record"
MAIL_BESIDE_STUCK_STEPS = "mail-beside-stuck-steps"
MAIL_BESIDE_STEPS_STUCK_SECONDS = "mail-beside-steps-stuck-seconds"
# How long a step calls before the outbox sends beside it: one attempt's timeout is 5 seconds,
# and the first retries back off 0.2, 0.4 and 0.8 seconds.
STUCK_AFTER = timedelta(seconds=2)
# One attempt: one SMTP conversation for a batch. Retries back off to every five minutes.
MAIL_ATTEMPT = timedelta(seconds=30)
MAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)
)


class Outbox:
    def __init__(
        self,
        state: OrderState,
        gate: CallGate,
        patched: Callable[[str], bool],
    ) -> None:
        self._state = state
        self._gate = gate
        # How the order asks whether it makes a change (workflows/support/changes.py).
        self._patched = patched
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
        after_record: bool | None = None
        # Asked in the order's first task, where no order started before it holds the marker.
        beside_stuck = self._patched(MAIL_BESIDE_STUCK_STEPS)
        by_time = self._patched(MAIL_BESIDE_STEPS_STUCK_SECONDS)

        def may_send() -> bool:
            gate = self._gate
            if gate.steps_idle:
                return True
            if by_time:
                return gate.step_stuck_for(STUCK_AFTER)
            return beside_stuck and gate.step_outlasted_task

        while True:
            await workflow.wait_condition(
                lambda: (bool(self._queue) and may_send()) or (self._closing and not self._queue)
            )
            if not self._queue:
                return
            if after_record is None:
                after_record = self._patched(MAIL_AFTER_RECORD)
            batch = list(self._queue)
            summary = f"{len(batch)} e-mail" + ("s" if len(batch) > 1 else "")
            if after_record:
                del self._queue[: len(batch)]
                await self._deliver(batch, summary)
            else:
                await self._gate.send(SEND_EMAILS, EmailBatch(notes=batch), summary=summary)
                del self._queue[: len(batch)]

    async def _deliver(self, batch: list[Notification], summary: str) -> None:
        try:
            await workflow.execute_activity(
                SEND_EMAILS,
                EmailBatch(notes=batch),
                start_to_close_timeout=MAIL_ATTEMPT,
                schedule_to_close_timeout=self._state.input.policy.mail_give_up,
                retry_policy=MAIL_RETRY,
                summary=summary,
            )
        except ActivityError:
            s = self._state
            subjects = [note.subject for note in batch]
            s.undeliverable.extend(subjects)
            s.log(
                workflow.now(),
                Told.EMAIL_UNDELIVERABLE,
                "The mail server did not take these e-mails in time: " + "; ".join(subjects),
            )
            # What an operator alerts on: e-mail the customer or a department never got.
            workflow.logger.error(
                "e-mail undeliverable for order %s: %s", s.order_id, "; ".join(subjects)
            )
            workflow.metric_meter().create_counter(
                "orderflow_emails_undeliverable", "E-mails given up after the policy's time"
            ).add(len(batch))
