"""Shipments booked with partner carriers through a gateway adapter.

The bundled gateway keeps bookings in an SQLite file the way a carrier's API keeps them on its
side: idempotent per booking key, with a tracking number per booking. A real carrier's API
plugs in behind the same three methods.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Protocol

import structlog
from temporalio import activity

from activities.lanes import Lane
from activities.sqlite import open_db
from domain.carrier import Booking, BookShipment, CarrierCall, TraceRequest

log = structlog.get_logger("orderflow.carrier")


class CarrierGateway(Protocol):
    def book(self, req: BookShipment) -> Booking: ...
    def cancel(self, key: str) -> Booking: ...
    def open_trace(self, req: TraceRequest) -> str: ...


class SqliteCarrierGateway:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = open_db(
            path,
            "CREATE TABLE IF NOT EXISTS bookings (key TEXT PRIMARY KEY, carrier TEXT NOT NULL,"
            " tracking TEXT NOT NULL, order_id TEXT NOT NULL, destination TEXT NOT NULL,"
            " status TEXT NOT NULL DEFAULT 'booked')",
            "CREATE TABLE IF NOT EXISTS traces (key TEXT PRIMARY KEY, tracking TEXT NOT NULL)",
        )

    def book(self, req: BookShipment) -> Booking:
        tracking = req.carrier.upper()[:3] + hashlib.sha1(req.key.encode()).hexdigest()[:10].upper()
        with self._lock:
            db = self._db
            db.execute(
                "INSERT OR IGNORE INTO bookings (key, carrier, tracking, order_id, destination)"
                " VALUES (?, ?, ?, ?, ?)",
                (req.key, req.carrier, tracking, req.order_id, req.destination),
            )
            row = db.execute(
                "SELECT carrier, tracking, status FROM bookings WHERE key = ?", (req.key,)
            ).fetchone()
        return Booking(key=req.key, carrier=row[0], tracking=row[1], status=row[2])

    def cancel(self, key: str) -> Booking:
        with self._lock:
            db = self._db
            db.execute("UPDATE bookings SET status = 'cancelled' WHERE key = ?", (key,))
            row = db.execute(
                "SELECT carrier, tracking, status FROM bookings WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return Booking(key=key, carrier="", tracking="", status="not_booked")
        return Booking(key=key, carrier=row[0], tracking=row[1], status=row[2])

    def open_trace(self, req: TraceRequest) -> str:
        with self._lock:
            db = self._db
            row = db.execute(
                "SELECT tracking FROM bookings WHERE key = ?", (req.booking_key,)
            ).fetchone()
            tracking = row[0] if row else ""
            db.execute(
                "INSERT OR IGNORE INTO traces (key, tracking) VALUES (?, ?)",
                (req.key, tracking),
            )
        return f"TRACE-{tracking}"


class CarrierActivities:
    def __init__(self, gateway: CarrierGateway) -> None:
        self.gateway = gateway
        self.lane = Lane("carrier", threads=4)

    @activity.defn(name=CarrierCall.BOOK.value)
    async def book_shipment(self, req: BookShipment) -> Booking:
        booking = await self.lane.run(self.gateway.book, req)
        log.info(
            "shipment_booked", order_id=req.order_id, carrier=req.carrier, tracking=booking.tracking
        )
        return booking

    @activity.defn(name=CarrierCall.CANCEL.value)
    async def cancel_shipment(self, key: str) -> Booking:
        return await self.lane.run(self.gateway.cancel, key)

    @activity.defn(name=CarrierCall.OPEN_TRACE.value)
    async def open_trace(self, req: TraceRequest) -> str:
        return await self.lane.run(self.gateway.open_trace, req)
