"""E-mails as the order queues them: one notification each, keyed so it is sent once."""

from __future__ import annotations

import hashlib

from domain.base import Model

# The one call that sends e-mail (an activity).
SEND_EMAILS = "send_emails"


class Notification(Model):
    """One e-mail. ``key`` makes it idempotent: the same key is never sent twice."""

    key: str
    to: str
    subject: str
    body: str
    order_id: str = ""


class EmailBatch(Model):
    """The e-mails an order queued in one step, sent together in order."""

    notes: list[Notification]


def notification_key(workflow_id: str, seq: int, to: str, subject: str, body: str) -> str:
    """Position and content together: a retry of the same message is recognised, while a
    different message at the same position (a history that was cut short and replayed
    differently, as after a server crash) is still sent."""
    digest = hashlib.sha256(f"{to}\n{subject}\n{body}".encode()).hexdigest()[:12]
    return f"{workflow_id}.{seq}.{digest}"
