"""What the CLI, the demo and department systems do, as plain async methods over a client,
one module per topic: orders, holds and promises, stock, carriers.

Every failure leaves here as an ``OrderflowError`` (a refusal: exit 2) or ``ServerUnreachable``
(exit 3), with a message a person can act on.
"""

from __future__ import annotations

from orderflow.service.calls import NoSuchWorkflow, call, money, send_update
from orderflow.service.carriers import CarrierService
from orderflow.service.holds import HoldService
from orderflow.service.stock import StockService

__all__ = ["NoSuchWorkflow", "Orderflow", "call", "money", "send_update"]


class Orderflow(HoldService, StockService, CarrierService):
    """The application: a Temporal client, the registry and the settings, and every action
    on orders (``OrderService``), holds and promises (``HoldService``), stock
    (``StockService``) and carriers (``CarrierService``)."""
