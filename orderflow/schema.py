"""The JSON Schema of every update a department system can send, read from the workflows
themselves: what ``orderflow schema`` prints for systems written in other languages, which talk
to Temporal directly (the ``temporal`` CLI, any SDK) with the same JSON the CLI sends."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import TypeAdapter
from temporalio import workflow

from domain.errors import NotFound
from domain.order import PlaceOrder
from domain.view import OrderView
from workflows.delivery import DeliveryWorkflow
from workflows.order import OrderWorkflow
from workflows.stock import StockWorkflow

# The workflows that take updates from outside, with the id each is addressed by.
ADDRESSED = {
    OrderWorkflow: "order-<order_id>",
    DeliveryWorkflow: "delivery-<order_id>-<n>",
    StockWorkflow: "stock-<location>-<sku>",
}


# The stock record's own updates from orders (reserve, reserve_batch, release) are the engine's,
# not a department's: they are left out.
ENGINE_ONLY = {"reserve", "reserve_batch", "release"}


def _schema(hint: Any, mode: typing.Literal["validation", "serialization"]) -> dict[str, Any]:
    return TypeAdapter(hint).json_schema(mode=mode)


def _model(hint: Any) -> Any:
    if typing.get_origin(hint) is typing.Annotated:
        return typing.get_args(hint)[1]
    return hint


def update_schemas() -> dict[str, dict[str, Any]]:
    """Every message a department system sends by name: the order's start (``place_order``)
    and every update, each with the workflow it goes to, how it is sent, its input and its
    result."""
    out: dict[str, dict[str, Any]] = {
        "place_order": {
            "workflow": "OrderWorkflow",
            "workflow_id": ADDRESSED[OrderWorkflow],
            "sent_as": "workflow start",
            "input": _schema(PlaceOrder, "validation"),
            "result": _schema(OrderView, "serialization"),
        }
    }
    for cls, workflow_id in ADDRESSED.items():
        defn = workflow._Definition.must_from_class(cls)
        for name, update in sorted(defn.updates.items()):
            if name is None or name in ENGINE_ONLY:
                continue
            hints = typing.get_type_hints(update.fn, include_extras=True)
            result = hints.pop("return", None)
            # An input is taken raw (``Annotated[RawValue, Model]``) and read by its model.
            args = [_model(h) for key, h in hints.items() if key != "self"]
            out[name] = {
                "workflow": defn.name,
                "workflow_id": workflow_id,
                "sent_as": "update",
                "input": _schema(args[0], "validation") if args else None,
                "result": _schema(result, "serialization") if result is not None else None,
            }
    return out


def update_schema(name: str) -> dict[str, Any]:
    schemas = update_schemas()
    if name not in schemas:
        raise NotFound(f"no message '{name}'; known: {', '.join(schemas)}")
    key = "start" if schemas[name]["sent_as"] == "workflow start" else "update"
    return {key: name, **schemas[name]}
