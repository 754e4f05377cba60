"""The SQLite file behind an adapter (ledger, carrier gateway, sent-log)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def open_db(path: Path, *schema: str) -> sqlite3.Connection:
    """One connection for the worker's life, shared by the activity threads under the adapter's
    lock: WAL with synchronous=normal (durable across a process crash), autocommit, and the
    adapter's tables created if missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Payments, addresses and e-mail keys: readable by the engine's own user only. SQLite gives
    # its -wal and -shm files the database file's permissions.
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    path.chmod(0o600)
    db = sqlite3.connect(path, timeout=4, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=normal")
    for statement in schema:
        db.execute(statement)
    return db
