"""Workflow ids and the task queue: one place, so every caller names things the same way.

Ids carry order numbers, SKUs and locations only: never a customer's name or e-mail.
"""

from __future__ import annotations

DEFAULT_TASK_QUEUE = "orderflow"


def order_workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


def stock_workflow_id(location: str, sku: str) -> str:
    return f"stock-{location}-{sku}"


def delivery_workflow_id(order_id: str, n: int) -> str:
    return f"delivery-{order_id}-{n}"


def followup_workflow_id(order_id: str) -> str:
    """The record of an order that ended outside the engine (workflows/followup.py)."""
    return f"order-followup-{order_id}"
