"""How the workflows call other systems: as local activities, each attempt kept well inside a
workflow task.

A local activity still running when its workflow task has to complete (after 8 of the task's
10 seconds, or when a query arrives with the task) makes the worker complete the task
with whatever commands it has and carry on in a new one. When that completion holds no
command at all and the worker then dies, a new worker can group the next update with the
earlier jobs differently from a later replay of the same history, and the replay hands one
call's result to another (seen under `make chaos`; README, Reliability). So:

- an attempt may take at most ``ATTEMPT_TIMEOUT``, far under the 8 seconds;
- every retry waits on a durable timer (a command) rather than a local sleep;
- a workflow task that has issued no command yet issues one before its first call
  (``TaskGuard``): the order indexes its search attributes, which it does anyway whenever
  they change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

ATTEMPT_TIMEOUT = timedelta(seconds=5)
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30)
)
# Any backoff longer than this goes on a durable timer: in practice, every retry.
TIMER_BACKOFF_FROM = timedelta(milliseconds=1)


class TaskGuard:
    """Knows whether the current workflow task has issued a command, and issues one when a call
    is about to start without. A workflow task's time (``workflow.now()``) is the same for every
    activation of that task and moves on with the next, which tells the tasks apart; a call's
    result is itself a command (its marker)."""

    def __init__(self, command: Callable[[], None]) -> None:
        self._command = command
        self._at: datetime | None = None

    def issued(self) -> None:
        self._at = workflow.now()

    def command_now(self) -> None:
        if self._at != workflow.now():
            self._command()
            self.issued()


async def local_call(
    name: str,
    arg: Any,
    *,
    guard: TaskGuard,
    summary: str | None = None,
    result_type: type | None = None,
) -> Any:
    """One call as a local activity, by its name in ``domain``: one marker event in history
    instead of three events and a workflow task of its own. Every call is idempotent (keyed by
    its workflow), so a retry after a crash is safe."""
    guard.command_now()
    try:
        return await workflow.execute_local_activity(
            str(name),
            arg,
            result_type=result_type,
            start_to_close_timeout=ATTEMPT_TIMEOUT,
            retry_policy=RETRY,
            local_retry_threshold=TIMER_BACKOFF_FROM,
            summary=summary,
        )
    finally:
        guard.issued()
