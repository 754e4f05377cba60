"""The worker's clock, for the last second before an order's deadline.

A workflow's timer fires when the server's timer queue next reads it: on a server with its own
settings that is up to a second after its time (`history.timerProcessorMaxTimeShift`), which at
many open orders is most of a second every time. The order therefore wakes about a second before
a deadline on its timer and waits out the rest here, in the worker, to the millisecond
(``workflows/support/timer.py``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio import activity

from domain.order import WAIT_UNTIL


@activity.defn(name=WAIT_UNTIL)
async def wait_until(at: datetime) -> None:
    """Return at ``at`` by this machine's clock (at once when it has passed)."""
    await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
