"""Orders and deliveries for the domain tests, built without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domain.delivery import DeliveryInput, DeliveryState, DeliveryStatus
from domain.order import OrderLine, OrderState, PlaceOrderInput
from domain.registry import Carrier, Customer, Department, Policy
from domain.stock import ReservationStatus, StockReserved

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def department(name: str, **kw: object) -> Department:
    fields: dict[str, object] = {
        "department": name,
        "name": name.title(),
        "notify_email": f"{name}@x",
        "supervisor": f"{name}-boss",
        "supervisor_email": f"{name}-boss@x",
        "hold_sla": timedelta(hours=24),
        "reason_codes": {"arrears": "an unpaid balance", "check": "a check"},
    }
    fields.update(kw)
    return Department.model_validate(fields)


DEPARTMENTS = [department(d) for d in ("billing", "stock", "fulfilment", "care")]


def order(*, pickup: bool = False, policy: Policy | None = None) -> OrderState:
    inp = PlaceOrderInput(
        order_id="O-1",
        customer=Customer(
            customer_id="C-1", name="Ann", email="ann@example.com", address="1 Main St"
        ),
        lines=[OrderLine(sku="S-1", name="Case", qty=2, unit_price=Decimal("10.50"))],
        location="L-1",
        carrier=None if pickup else "fast",
        pickup=pickup,
        placed_at=NOW,
        policy=policy or Policy(),
        departments=DEPARTMENTS,
        carriers=[Carrier(carrier_id="fast", name="Fast Parcels")],
        initial_stock={"S-1": 5},
    )
    return OrderState(input=inp)


def delivery(**policy: object) -> DeliveryState:
    inp = DeliveryInput(
        order_id="O-1",
        delivery_id=1,
        carrier="fast",
        destination_gps="52.52,13.40",
        window_start=NOW,
        window_end=NOW + timedelta(days=2),
        policy=Policy.model_validate(policy),
    )
    return DeliveryState(
        inp=inp,
        window_start=inp.window_start,
        window_end=inp.window_end,
        last_movement_at=NOW,
        status=DeliveryStatus.BOOKED,
    )


def reserved(status: ReservationStatus, position: int | None = None) -> StockReserved:
    return StockReserved(
        order_id="O-1", location="L-1", sku="S-1", qty=2, status=status, position=position
    )
