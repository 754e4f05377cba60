"""The local SMTP sink: a real SMTP server (aiosmtpd) that stores every message in a Maildir,
and the reader behind ``orderflow inbox``.

Messages are filed under their Message-ID, so a message delivered twice is stored once, as a
receiving mail system would deduplicate it.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import os
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from pydantic import BaseModel


class InboxMessage(BaseModel):
    to: str
    subject: str
    body: str
    message_id: str
    date: str
    order_id: str = ""


class MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        # Customers' mail: readable by the engine's own user only.
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        maildir.chmod(0o700)
        self.dir = maildir
        self.duplicates = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        # Only the headers are needed to file the message.
        headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        mid = str(headers.get("Message-ID", "")).strip() or hashlib.sha256(raw).hexdigest()
        name = hashlib.sha256(mid.encode()).hexdigest()[:40]
        target = self.dir / "new" / name
        if target.exists():
            self.duplicates += 1
            return "250 OK (duplicate Message-ID, stored once)"
        tmp = self.dir / "tmp" / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
        os.replace(tmp, target)
        return "250 OK"


class SmtpSink:
    """Runs the SMTP server in its own thread (aiosmtpd's controller)."""

    def __init__(self, maildir: Path, host: str = "127.0.0.1", port: int = 1025) -> None:
        self.handler = MaildirHandler(maildir)
        self.controller = Controller(self.handler, hostname=host, port=port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def read_inbox(maildir: Path, to: str | None = None) -> list[InboxMessage]:
    """Every stored message, oldest first; ``to`` filters by recipient (case-insensitive)."""
    folder = maildir / "new"
    if not folder.is_dir():
        return []
    out: list[tuple[float, InboxMessage]] = []
    for path in folder.iterdir():
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipient = str(msg.get("To", ""))
        if to and to.lower() not in recipient.lower():
            continue
        body_part = msg.get_body(preferencelist=("plain",))
        body = body_part.get_content() if body_part is not None else ""
        date = str(msg.get("Date", ""))
        try:
            stamp = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            stamp = 0.0
        out.append(
            (
                path.stat().st_mtime_ns / 1e9 if stamp else 0.0,
                InboxMessage(
                    to=recipient,
                    subject=str(msg.get("Subject", "")),
                    body=body,
                    message_id=str(msg.get("Message-ID", "")),
                    date=date,
                    order_id=str(msg.get("X-Orderflow-Order", "")),
                ),
            )
        )
    out.sort(key=lambda pair: pair[0])
    return [m for _, m in out]
