"""A workflow task that must carry a command before its first call marks itself on a timer
(workflows/support/gate.py): every mark is a command the server sees, a timer started or the
armed one cancelled, never a cancel of a timer whose time has come (which issues nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from workflows.support.gate import MARK_FOR, TimerMark


class ClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose time the test sets, as a workflow's loop has its task's time."""

    now = 0.0

    def time(self) -> float:
        return self.now


@contextmanager
def workflow_loop() -> Iterator[ClockLoop]:
    loop = ClockLoop()
    try:
        yield loop
    finally:
        loop.close()


def marks(loop: ClockLoop, mark: TimerMark, at: list[float]) -> list[asyncio.TimerHandle]:
    """Mark one task at each time; the timers armed after each mark."""

    async def run() -> list[asyncio.TimerHandle]:
        armed = []
        for t in at:
            loop.now = t
            mark()
            armed.append(mark._armed)
        return armed

    return loop.run_until_complete(run())


def test_marks_start_and_cancel_in_turn_so_one_timer_at_most_is_armed() -> None:
    with workflow_loop() as loop:
        mark = TimerMark()
        first, after_cancel, second = marks(loop, mark, [0.0, 1.0, 2.0])
        assert first is not None and first.when() == MARK_FOR.total_seconds()
        assert first.cancelled()
        assert after_cancel is None
        assert second is not None and not second.cancelled()


def test_a_mark_whose_time_has_come_is_not_cancelled_a_new_one_starts() -> None:
    with workflow_loop() as loop:
        mark = TimerMark()
        due = MARK_FOR.total_seconds()
        first, again = marks(loop, mark, [0.0, due + 5.0])
        # A cancel now would be no command at all: the task would carry none.
        assert not first.cancelled()
        assert again is not None and again is not first and again.when() == 2 * due + 5.0
