"""E-mail to customers and departments over real SMTP, sent at most once per key.

The Message-ID is derived from the notification key (workflow id, position, content digest), and
a sent-log records each key as soon as the SMTP server accepted it, so a retried activity does not
send again. The only window left, a crash between the server's acceptance and the log write,
resends the same Message-ID, which the receiving side recognises as the same message.
"""

from __future__ import annotations

import hashlib
import smtplib
import threading
from collections.abc import Callable
from email.charset import QP, Charset
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formatdate
from pathlib import Path

import structlog
from temporalio import activity

from activities.lanes import Lane
from activities.sqlite import open_db
from domain.notices import SEND_EMAILS, EmailBatch, Notification

# UTF-8 bodies as quoted-printable: mostly ASCII text stays readable in the raw message.
UTF8_READABLE = Charset("utf-8")
UTF8_READABLE.body_encoding = QP

SENDER = "orderflow <orders@orderflow.local>"
log = structlog.get_logger("orderflow.notify")


def message_id(key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@orderflow.local>"


class SentLog:
    """SQLite record of the keys already sent."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_db(
            path,
            "CREATE TABLE IF NOT EXISTS sent (key TEXT PRIMARY KEY, message_id TEXT NOT NULL,"
            " recipient TEXT NOT NULL, sent_at TEXT DEFAULT CURRENT_TIMESTAMP)",
        )

    def was_sent(self, key: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM sent WHERE key = ?", (key,)).fetchone()
            return row is not None

    def record(self, key: str, mid: str, recipient: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO sent (key, message_id, recipient) VALUES (?, ?, ?)",
                (key, mid, recipient),
            )


# The end of every e-mail to a customer: their order's page, without a password.
ORDER_PAGE_FOOTER = (
    "See your order, and answer us, without calling:\n{url}\n"
    "(This link is for you only. If it has expired, it offers to e-mail you a new one.)"
)


class Mailer:
    """The SMTP adapter: builds the message and hands it to the server."""

    def __init__(
        self,
        host: str,
        port: int,
        sent_log: SentLog,
        link: Callable[[Notification], str | None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sent_log = sent_log
        # The link to the order's page for a customer's e-mail (orderflow.links), if any.
        self.link = link

    def send_all(self, notes: list[Notification]) -> list[str]:
        """Send each message not sent before, in order, over one SMTP connection."""
        mids = [message_id(n.key) for n in notes]
        todo = []
        for note, mid in zip(notes, mids, strict=True):
            if self.sent_log.was_sent(note.key):
                log.info("email_already_sent", key=note.key, to=note.to)
            else:
                todo.append((note, mid))
        if todo:
            # A fixed HELO name: the default looks up this host's name on every connection.
            with smtplib.SMTP(
                self.host, self.port, local_hostname="orderflow.local", timeout=4
            ) as smtp:
                for note, mid in todo:
                    try:
                        smtp.send_message(self._message(note, mid))
                    except smtplib.SMTPRecipientsRefused as err:
                        # Its text names the address, and a failure's text is stored in the
                        # order's history unencrypted: say which message, not to whom.
                        codes = sorted({code for code, _ in err.recipients.values()})
                        raise RecipientRefused(
                            f"the mail server refused the recipient of {note.key} "
                            f"(SMTP {', '.join(map(str, codes))})"
                        ) from None
                    # Recorded as soon as the server accepted it, before the next one.
                    self.sent_log.record(note.key, mid, note.to)
                    log.info("email_sent", key=note.key, to=note.to, subject=note.subject)
        return mids

    def _message(self, note: Notification, mid: str) -> MIMEText:
        # The classic message class: the same bytes on the wire as the modern one for plain
        # text, at a fraction of its header-handling cost.
        link = self.link(note) if self.link is not None else None
        body = note.body if link is None else f"{note.body}\n\n{ORDER_PAGE_FOOTER.format(url=link)}"
        msg = MIMEText(body, "plain", UTF8_READABLE)
        msg["From"] = SENDER
        msg["To"] = note.to
        msg["Subject"] = (
            Header(note.subject, "utf-8") if not note.subject.isascii() else note.subject
        )
        msg["Message-ID"] = mid
        msg["Date"] = formatdate(usegmt=True)
        if note.order_id:
            msg["X-Orderflow-Order"] = note.order_id
        return msg


class RecipientRefused(Exception):
    """The mail server would not take a message's recipient (retried like any outage)."""


class NotifyActivities:
    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self.lane = Lane("mail", threads=8)

    @activity.defn(name=SEND_EMAILS)
    async def send_emails(self, batch: EmailBatch) -> list[str]:
        """Send an order's queued e-mails in order over one connection; returns the
        Message-IDs. Messages already sent (a retry) are skipped."""
        return await self.lane.run(self.mailer.send_all, batch.notes)
