"""The engine's registry: catalog, locations, customers, carriers, departments, and the policy
every duration comes from. Loaded by the worker and recorded in each order's input."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from pydantic import Field

from domain.base import Identifier, Model, Money


class Sku(Model):
    sku: Identifier
    name: str
    price: Money


class Location(Model):
    location: Identifier
    name: str
    region: str = ""
    # Distance from the customer's usual region, for --any-location; smaller is nearer.
    distance_km: int = 0
    stock: dict[str, int] = Field(default_factory=dict)


class Customer(Model):
    customer_id: Identifier
    name: str
    email: str
    address: str = ""
    # "lat,lon" of the address: carriers' GPS evidence is checked against it.
    gps: str = ""


class Carrier(Model):
    carrier_id: Identifier
    name: str
    notify_email: str = ""


class Department(Model):
    """A department that may place holds, with the clock its holds run on."""

    department: Identifier
    name: str
    notify_email: str
    supervisor: str
    supervisor_email: str
    hold_sla: timedelta
    # reason code -> the plain words the customer reads
    reason_codes: dict[str, str]


class LostAction(StrEnum):
    """What the engine does for a parcel the carrier lost."""

    RESHIP = "reship"
    REFUND = "refund"


class UnpickedAction(StrEnum):
    """What happens to a store-pickup order nobody collected in time."""

    CANCEL = "cancel"
    WAITLIST = "waitlist"


class Policy(Model):
    """Every duration the engine uses. Passed in each workflow's input so replays are exact and
    tests can shrink time to seconds."""

    pickup_window: timedelta = timedelta(days=3)
    restock_promise: timedelta = timedelta(days=7)
    dispute_sla: timedelta = timedelta(hours=4)
    delivery_window: timedelta = timedelta(days=2)
    scan_sla: timedelta = timedelta(days=2)
    lost_after: timedelta = timedelta(days=5)
    attempt_limit: int = 3
    lost_action: LostAction = LostAction.RESHIP
    unpicked_action: UnpickedAction = UnpickedAction.CANCEL
    # Distance, in metres, within which a carrier's GPS fix counts as "at the address".
    gps_tolerance_m: int = 150
    # How long an e-mail is retried while the mail server is unreachable before the order
    # records it as undeliverable and alerts.
    mail_give_up: timedelta = timedelta(hours=24)

    def scaled(self, factor: float) -> Policy:
        """The same policy with every duration divided by ``factor`` (story time, tests)."""
        if factor <= 0:
            raise ValueError("scale factor must be positive")
        data = self.model_dump()
        for key, value in data.items():
            if isinstance(value, timedelta):
                data[key] = value / factor
        return Policy.model_validate(data)
