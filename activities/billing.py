"""Payments against an SQLite ledger. Every entry has a UNIQUE idempotency key, so a retried
activity returns the first entry instead of charging twice."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

import structlog
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.lanes import Lane
from activities.sqlite import open_db
from domain.billing import PaymentCall, PaymentRequest

log = structlog.get_logger("orderflow.billing")


class LedgerEntry(BaseModel):
    entry_id: int
    order_id: str
    kind: str
    amount: Decimal
    key: str


class Ledger:
    KINDS = ("authorize", "capture", "void", "refund")

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_db(
            path,
            "CREATE TABLE IF NOT EXISTS entries ("
            " entry_id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " idempotency_key TEXT NOT NULL UNIQUE,"
            " order_id TEXT NOT NULL, kind TEXT NOT NULL, amount TEXT NOT NULL,"
            " at TEXT DEFAULT CURRENT_TIMESTAMP)",
            # A capture reads its order's entries: by index, not by reading the whole ledger.
            "CREATE INDEX IF NOT EXISTS entries_by_order ON entries (order_id)",
        )

    def post(self, kind: str, req: PaymentRequest) -> LedgerEntry:
        if kind not in self.KINDS:
            raise ValueError(kind)
        with self._lock:
            db = self._db
            # One transaction, so that no other worker posts between the check and the entry.
            db.execute("BEGIN IMMEDIATE")
            try:
                if kind == "capture":
                    self._check_capture(req)
                db.execute(
                    "INSERT OR IGNORE INTO entries (idempotency_key, order_id, kind, amount)"
                    " VALUES (?, ?, ?, ?)",
                    (req.key, req.order_id, kind, str(req.amount)),
                )
                row = db.execute(
                    "SELECT entry_id, order_id, kind, amount, idempotency_key FROM entries"
                    " WHERE idempotency_key = ?",
                    (req.key,),
                ).fetchone()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        entry = LedgerEntry(
            entry_id=row[0], order_id=row[1], kind=row[2], amount=row[3], key=row[4]
        )
        if entry.kind != kind or entry.order_id != req.order_id:
            raise ApplicationError(
                f"idempotency key {req.key} was used for {entry.kind} on {entry.order_id}",
                type="IdempotencyKeyReused",
                non_retryable=True,
            )
        return entry

    def _check_capture(self, req: PaymentRequest) -> None:
        """A capture takes at most what is still authorized (a retried capture is its own
        entry, already counted)."""
        seen = self._db.execute(
            "SELECT 1 FROM entries WHERE idempotency_key = ?", (req.key,)
        ).fetchone()
        if seen:
            return
        held = Decimal("0")
        for kind, amount in self._db.execute(
            "SELECT kind, amount FROM entries WHERE order_id = ?", (req.order_id,)
        ):
            if kind == "authorize":
                held += Decimal(amount)
            elif kind in ("capture", "void"):
                held -= Decimal(amount)
        if req.amount > held:
            raise ApplicationError(
                f"capture of {req.amount:.2f} on order {req.order_id} is more than the "
                f"{held:.2f} still authorized",
                type="CaptureOverAuthorized",
                non_retryable=True,
            )

    def entries(self, order_id: str | None = None) -> list[LedgerEntry]:
        query = "SELECT entry_id, order_id, kind, amount, idempotency_key FROM entries"
        args: tuple[str, ...] = ()
        if order_id:
            query += " WHERE order_id = ?"
            args = (order_id,)
        with self._lock:
            db = self._db
            rows = db.execute(query + " ORDER BY entry_id", args).fetchall()
        return [
            LedgerEntry(entry_id=r[0], order_id=r[1], kind=r[2], amount=r[3], key=r[4])
            for r in rows
        ]


class PaymentActivities:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.lane = Lane("ledger", threads=4)

    async def _post(self, kind: str, req: PaymentRequest) -> LedgerEntry:
        entry = await self.lane.run(self.ledger.post, kind, req)
        log.info("ledger_posted", kind=kind, order_id=req.order_id, amount=str(req.amount))
        return entry

    @activity.defn(name=PaymentCall.AUTHORIZE.value)
    async def authorize_payment(self, req: PaymentRequest) -> LedgerEntry:
        return await self._post("authorize", req)

    @activity.defn(name=PaymentCall.CAPTURE.value)
    async def capture_payment(self, req: PaymentRequest) -> LedgerEntry:
        return await self._post("capture", req)

    @activity.defn(name=PaymentCall.VOID.value)
    async def void_payment(self, req: PaymentRequest) -> LedgerEntry:
        return await self._post("void", req)

    @activity.defn(name=PaymentCall.REFUND.value)
    async def refund_payment(self, req: PaymentRequest) -> LedgerEntry:
        return await self._post("refund", req)
