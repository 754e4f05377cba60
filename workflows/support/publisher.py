"""What the Temporal UI and visibility show of an order: its search attributes and its current
details, refreshed once per workflow task however many changes the task held, and not while a
step's call runs (a run of steps is published once, when it stops)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from domain.order import OrderState
    from domain.view import details, index_values
    from workflows.search_attributes import BLOCKED_BY, CARRIER, ORDER_STATUS


class Publisher:
    def __init__(self, state: OrderState, *, indexed: bool = False) -> None:
        """Args:
        indexed: take the search attributes the workflow's start set as indexed already, so
            the first publish upserts only what differs from them.
        """
        self._state = state
        self._changes = 0
        self._closing = False
        self._indexed: tuple[str, tuple[str, ...], str] | None = None
        # A carrier the start set where the order has none is unset (the order says when).
        self.unset_carrier = False
        if indexed:
            sa = workflow.info().typed_search_attributes
            self._indexed = (
                sa.get(ORDER_STATUS) or "",
                tuple(sa.get(BLOCKED_BY) or ()),
                sa.get(CARRIER) or "",
            )

    @property
    def indexed_as_started(self) -> bool:
        """The search attributes the start set say what the order says now (a start straight
        through Temporal may have set others, or none)."""
        return self._indexed == index_values(self._state)

    def changed(self) -> None:
        """Something the UI shows may have changed."""
        self._changes += 1

    def close(self) -> None:
        """Publish the final state once more, then stop."""
        self._closing = True
        self.changed()

    def index(self) -> None:
        """Upsert the order's search attributes as they stand."""
        status, blocked, carrier = self._indexed = index_values(self._state)
        updates: list[SearchAttributeUpdate[Any]] = [
            ORDER_STATUS.value_set(status),
            BLOCKED_BY.value_set(list(blocked)) if blocked else BLOCKED_BY.value_unset(),
        ]
        if carrier:
            updates.append(CARRIER.value_set(carrier))
        elif self.unset_carrier:
            updates.append(CARRIER.value_unset())
        workflow.upsert_search_attributes(updates)

    async def run(self, idle: Callable[[], bool]) -> None:
        published = -1
        while True:
            await workflow.wait_condition(
                lambda published=published: self._changes != published and idle()  # type: ignore[misc]
            )
            published = self._changes
            if index_values(self._state) != self._indexed:
                self.index()  # each upsert is a history event: only on real change
            workflow.set_current_details(details(self._state))
            if self._closing:
                return
