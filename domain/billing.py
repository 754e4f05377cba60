"""Payments for an order: where the order's payment stands, and the calls to the ledger."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from domain.base import Model


class PaymentState(StrEnum):
    NONE = "none"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"


class PaymentCall(StrEnum):
    """The engine's calls to the ledger (activities), each keyed by the order and a suffix."""

    AUTHORIZE = "authorize_payment"
    CAPTURE = "capture_payment"
    VOID = "void_payment"
    REFUND = "refund_payment"

    @property
    def key_suffix(self) -> str:
        return _SUFFIX[self]


_SUFFIX = {
    PaymentCall.AUTHORIZE: "a",
    PaymentCall.CAPTURE: "c",
    PaymentCall.VOID: "void",
    PaymentCall.REFUND: "refund",
}


class PaymentRequest(Model):
    order_id: str
    amount: Decimal
    key: str
