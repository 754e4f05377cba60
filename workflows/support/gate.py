"""How a workflow calls other systems: as local activities, one at a time, each attempt kept
well inside a workflow task, and never from a task that has issued no command.

**One call at a time.** A step's call and the outbox's send never start together: a step waits
while a send is under way, and the outbox and the publisher wait while steps run, so a run of
steps that nothing blocks completes in one workflow task and its e-mails go out together once it
stops. The gate keeps this as its own state, looked at through ``workflow.wait_condition`` at the
same points the workflow waits: when a coroutine wakes decides the order of commands in a task,
and saved histories fix that order (an ``asyncio.Lock`` would wake its waiters at other points).

**The early-completion guard** (``TaskGuard``). A local activity still running when its workflow
task has to complete (after 8 of the task's 10 seconds, or when a query arrives with the task)
makes the worker complete the task with whatever commands it has and carry on in a new one. When
that completion holds no command at all and the worker then dies, a new worker can group the
next update with the earlier jobs differently from a later replay of the same history, and the
replay hands one call's result to another (seen under ``make chaos``; README, Reliability; the
closest upstream report is temporalio/sdk-python#673, an update replayed ahead of an activity
result that came first). So:

- an attempt may take at most ``ATTEMPT_TIMEOUT``, far under the 8 seconds;
- every retry waits on a durable timer (a command) rather than a local sleep;
- a workflow task that has issued no command yet issues one before its first call: an order
  started from 0.10 on marks the task on a durable timer (``TimerMark``), older orders index
  their search attributes, the delivery its carrier.

**Calls one at a time, even where a step makes several** (an order's lines). Calls started
together would end in activations the SDK groups one way live and another way on replay, and
the outbox, waking between them, would issue its commands in another order: a recorded history
that does not replay. One after another, a call can still outlive its task when a query rides
on that task (the worker completes it early), and the next call then starts in the next task:
the history replays, but the SDK may answer that query, on the live worker, with a
nondeterminism error (``Missing associated machine for LocalActivity``, seen under CPU load
with two lines released in turn). The client asks such a query once more
(``orderflow.service.calls``), and the worker, having dropped the run, answers from a replay. An
activity's result (an e-mail batch) that comes in that next task may reach the order before or
after the call's own result, one way live and the other on replay, so nothing the order decides
may depend on which came first: the outbox judges a step stuck by how long it has called, not by
whether it outlived its task (``workflows/support/outbox.py``).

*When it can go:* once the SDK replays an early-completed, command-less task with the same job
grouping as the live run (``make chaos`` with the guard disabled shows no nondeterminism over
several runs). Its commands are in saved histories, so removing it goes behind
``workflow.patched``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
# How long a task's mark stays armed when no later task cancels it: far beyond an order's
# usual life, so that it seldom wakes one (when it does, the wake-up does nothing).
MARK_FOR = timedelta(days=30)


class TimerMark:
    """The cheapest command a workflow task can carry: a durable timer started, or the one an
    earlier task started cancelled, in turn, so that at most one is armed.

    An upsert of the search attributes did this job before 0.10. The server writes a visibility
    record for every workflow task that upserts, the dearest thing it does for an order (on the dev
    server's SQLite, about 3 ms of its CPU each; ``bench/server_profile.py``); a
    timer's start or cancel is one history event in the same write as the task's completion.
    The search attributes are then upserted only when what they say changes, once the steps
    stop (``workflows/support/publisher.py``)."""

    def __init__(self) -> None:
        self._armed: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        loop = asyncio.get_running_loop()
        if self._armed is not None and loop.time() >= self._armed.when():
            # Its time has come: it fired, or is about to, and a cancel would issue nothing (its
            # wake-up may still wait behind the coroutines this task woke first).
            self._armed = None
        if self._armed is None:
            # The workflow's loop issues the timer's command at once, ahead of the call.
            self._armed = loop.call_later(MARK_FOR.total_seconds(), _nothing)
        else:
            self._armed.cancel()
            self._armed = None


def _nothing() -> None:
    """A mark's wake-up: the mark only had to be a command."""


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


class CallGate:
    """Every call a workflow makes goes through here (see the module's docstring).

    Args:
        command: what to issue when a task would otherwise start a call with no command.
    """

    def __init__(self, command: Callable[[], None]) -> None:
        self._guard = TaskGuard(command)
        self._steps = 0
        self._sends = 0
        self._step_starts: list[datetime] = []

    def command_now(self) -> None:
        """Make sure this workflow task carries a command (the order's first task always does)."""
        self._guard.command_now()

    def issued(self) -> None:
        """This workflow task carries a command issued elsewhere (a patch marker)."""
        self._guard.issued()

    @property
    def steps_idle(self) -> bool:
        """No step is calling out or starting a child: what the outbox and publisher wait for."""
        return self._steps == 0

    def step_stuck_for(self, least: timedelta) -> bool:
        """A step has been calling for at least ``least`` of workflow time: it is retrying
        through an outage (a call's attempt ends well before), not merely outliving a workflow
        task the worker completed early."""
        return any(workflow.now() - started >= least for started in self._step_starts)

    @property
    def step_outlasted_task(self) -> bool:
        """A step began in an earlier workflow task and still runs: it is retrying through an
        outage (its backoff timers are tasks of their own) or slow."""
        return any(started < workflow.now() for started in self._step_starts)

    @contextmanager
    def step_running(self) -> Iterator[None]:
        """A step's command that is not a call (a child workflow's start) holds the gate too."""
        self._steps += 1
        started = workflow.now()
        self._step_starts.append(started)
        try:
            yield
        finally:
            self._steps -= 1
            self._step_starts.remove(started)

    async def step(
        self, name: str, arg: Any, *, summary: str | None = None, result_type: type | None = None
    ) -> Any:
        """A step's call. It waits for a send under way; the outbox waits for it."""
        if self._sends:
            await workflow.wait_condition(lambda: not self._sends)
        with self.step_running():
            return await self.call(name, arg, summary=summary, result_type=result_type)

    async def send(self, name: str, arg: Any, *, summary: str) -> Any:
        """The outbox's call, started once no step runs; steps wait for it."""
        self._sends += 1
        try:
            return await self.call(name, arg, summary=summary)
        finally:
            self._sends -= 1

    async def call(
        self, name: str, arg: Any, *, summary: str | None = None, result_type: type | None = None
    ) -> Any:
        """One call as a local activity, by its name in ``domain``: one marker event in history
        instead of three events and a workflow task of its own. Every call is idempotent (keyed
        by its workflow), so a retry after a crash is safe."""
        self._guard.command_now()
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
            self._guard.issued()
