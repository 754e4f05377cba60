"""The ledger (a real SQLite file): a capture never takes more than is still authorized."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.billing import Ledger
from domain.billing import PaymentRequest


def pay(key: str, amount: str, order: str = "ORD-1") -> PaymentRequest:
    return PaymentRequest(order_id=order, amount=Decimal(amount), key=key)


def test_a_capture_takes_at_most_what_is_still_authorized(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    ledger.post("authorize", pay("a", "100.00"))
    ledger.post("void", pay("void-line-2", "30.00"))
    first = ledger.post("capture", pay("c-1", "50.00"))
    # A retried capture answers with its entry, however little is left.
    assert ledger.post("capture", pay("c-1", "50.00")) == first
    with pytest.raises(ApplicationError) as refused:
        ledger.post("capture", pay("c-2", "20.01"))
    assert refused.value.type == "CaptureOverAuthorized" and refused.value.non_retryable
    assert "more than the 20.00 still authorized" in str(refused.value)
    ledger.post("capture", pay("c-2", "20.00"))
    # Another order's authorization is its own.
    with pytest.raises(ApplicationError):
        ledger.post("capture", pay("c-x", "1.00", order="ORD-2"))
    assert [(e.kind, e.amount) for e in ledger.entries("ORD-1")] == [
        ("authorize", Decimal("100.00")),
        ("void", Decimal("30.00")),
        ("capture", Decimal("50.00")),
        ("capture", Decimal("20.00")),
    ]


def test_a_capture_finds_its_orders_entries_by_index_in_a_ledger_made_before_the_index(
    tmp_path: Path,
) -> None:
    """A capture reads its order's entries: on a ledger of a year's orders that must not read
    the whole file. A ledger file written by an older version gets the index when opened."""
    path = tmp_path / "ledger.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE entries (entry_id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " idempotency_key TEXT NOT NULL UNIQUE, order_id TEXT NOT NULL, kind TEXT NOT NULL,"
        " amount TEXT NOT NULL, at TEXT DEFAULT CURRENT_TIMESTAMP)"
    )
    old.execute(
        "INSERT INTO entries (idempotency_key, order_id, kind, amount)"
        " VALUES ('a', 'ORD-1', 'authorize', '10.00')"
    )
    old.commit()
    old.close()
    ledger = Ledger(path)
    plan = " ".join(
        str(row[-1])
        for row in ledger._db.execute(
            "EXPLAIN QUERY PLAN SELECT kind, amount FROM entries WHERE order_id = ?", ("ORD-1",)
        )
    )
    assert "USING INDEX" in plan, plan
    assert ledger.post("capture", pay("c", "10.00")).amount == Decimal("10.00")
