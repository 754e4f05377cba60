"""The SQLite file behind an adapter (ledger, carrier gateway, sent-log)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_db(path: Path, *schema: str) -> sqlite3.Connection:
    """One connection for the worker's life, shared by the activity threads under the adapter's
    lock: WAL with synchronous=normal (durable across a process crash), autocommit, and the
    adapter's tables created if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=4, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=normal")
    for statement in schema:
        db.execute(statement)
    return db
