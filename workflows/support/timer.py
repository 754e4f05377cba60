"""One timer for every deadline a workflow has, re-armed only when the soonest comes sooner.

The order (hold SLAs, promises, the pickup window) and the delivery (trace, lost, its window)
each keep their deadlines in state and wait on this one timer. When a deadline moves later (a
promise kept, a hold released, a scan) the armed timer stays; on firing the caller finds nothing
due and waits again, which arms the next one. A change elsewhere costs no command, and a workflow
that ends leaves its timer unfired, with no cancel event for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from temporalio import workflow


def _never() -> bool:
    return False


class DeadlineTimer:
    """Sleep until the soonest deadline; wake early only when it comes sooner.

    ``moved()`` says the deadlines may have changed: the soonest one is looked at again at the
    next wake-up check, and only then (looking costs the walk over every deadline).
    """

    def __init__(
        self,
        soonest: Callable[[], datetime | None],
        *,
        summary: str,
        arm_early: float = 0.0,
        wait_out: Callable[[datetime], Awaitable[bool]] | None = None,
    ) -> None:
        self._soonest = soonest
        # Waits out the last stretch before a deadline in the worker (False: it does not, and
        # the timer does).
        self._wait_out = wait_out
        # The deadline the last wait reached when it was waited out in the worker: the task that
        # follows may start a moment before it by the server's clock (whose time the workflow
        # reads) when the worker's clock runs ahead, and the deadline has passed all the same.
        self.reached: datetime | None = None
        self._summary = summary
        self._arm_early = arm_early
        self._moves = 0
        self._seen = -1
        self._closed = False

    def moved(self) -> None:
        self._moves += 1

    def close(self) -> None:
        """The workflow is ending: whoever waits stops at its next wake-up."""
        self._closed = True
        self.moved()

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait(
        self,
        *,
        asleep_while: Callable[[], bool] = _never,
        wake_when: Callable[[], bool] = _never,
    ) -> bool:
        """Wait for the soonest deadline. True when it passed (the timer fired); False when the
        wait ended early: a sooner deadline, or ``wake_when``. Nothing wakes it while
        ``asleep_while`` holds."""
        armed = self._soonest()
        self._seen = self._moves
        self.reached = None
        timeout = None
        if armed is not None:
            remaining = (armed - workflow.now()).total_seconds()
            # The server starts the timer when this workflow task completes, which can be a
            # moment after workflow.now() when the task also sends e-mail. A far deadline may
            # therefore be armed a little early; the wake-up, a task with nothing else in it,
            # arms the exact remainder.
            if remaining > 2 * self._arm_early:
                remaining -= self._arm_early
            elif remaining > 0 and self._wait_out is not None and await self._wait_out(armed):
                # A timer this short would still fire when the server's timer queue next reads
                # (up to a second late); the worker's clock is exact.
                self.reached = armed
                return True
            timeout = max(remaining, 0.001)
        try:
            await workflow.wait_condition(
                lambda: not asleep_while() and (wake_when() or self._sooner(armed)),
                timeout=timeout,
                timeout_summary=self._summary,
            )
        except TimeoutError:
            return True
        return False

    def now(self) -> datetime:
        """The workflow's time after a wait: never before the deadline a wait in the worker
        reached (see ``reached``)."""
        now = workflow.now()
        return max(now, self.reached) if self.reached is not None else now

    def _sooner(self, armed: datetime | None) -> bool:
        if self._seen == self._moves:
            return False
        self._seen = self._moves
        soonest = self._soonest()
        return soonest is not None and (armed is None or soonest < armed)
