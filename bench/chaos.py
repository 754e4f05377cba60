"""Crash and restart, on two workers sharing the orders: 200 orders in flight while one worker
at a time is killed with SIGKILL five times and stopped with SIGTERM once (the other running on),
the Temporal dev server is killed once, and the mail server is down for a minute; every order must
still reach its terminal state with nothing lost, no e-mail sent twice or left unsent, nobody
charged twice, and each worker must have handled some of the orders.

What runs, all on loopback:

- the Temporal dev server as a subprocess (``orderflow.devserver``), persisting to an SQLite file
  in WAL mode; killed with SIGKILL once and restarted on the same file and port;
- the SMTP sink in this process, with a handler that counts every DATA it receives by
  Message-ID (the sink itself stores a repeated Message-ID once); stopped 20 seconds in for
  ``--mail-outage`` seconds (60) and started again on the same port and Maildir;
- ``--workers`` (2) worker processes (``orderflow worker``) polling the one task queue and
  sharing the data dir (sent-log, ledger, carrier records), each start under its own Temporal
  identity (``ORDERFLOW_WORKER_IDENTITY=chaos-w<n>-<start>``). At random moments of the first
  45 seconds, one worker, picked at random, is killed with SIGKILL (five times) or stopped with
  SIGTERM (once: it stops polling, lets its running activities finish, exits) and then started
  again, while the others keep working.

The bench is every department and the carrier: it places the orders (a quarter plain, a quarter
with a billing hold placed and later released, a quarter with a care promise made and later
kept, a quarter with both; every fifth has two lines), learns of each booking from the carrier
gateway's own records and sends ``picked-up``, ``scan`` and ``delivered`` (each with an event id,
as carriers do). Every call is retried while the server or a worker is down; retries rely on the
engine's idempotency (order ids, hold references, carrier event ids), and a promise is only made
again if the order's view does not show it. Every call goes through the service layer, which
signs it as the principal the rules ask for (the order desk, billing, care, the booked carrier),
with keys the bench makes for every principal of the seeds (``dev_keys``) before the first
worker starts.

At the end it checks every order's view (completed; its hold released; its promises kept; nothing
extra; no e-mail given up), the sink's counts and Maildir against the workers' shared sent-log
(every e-mail sent is in the Maildir, every e-mail waiting when the outage ended among them), and
the payment ledger. From every order's history it counts, per worker, the orders it took
workflow tasks of (WorkflowTaskStarted names the polling worker's identity; an update's
speculative task is named by the WorkflowTaskCompleted that answers it), and its workflow and
activity tasks. Then it prints one line:

    orders N, workers 2 (orders handled: A / B), worker kills K, graceful stops S,
    server restarts R, lost 0, duplicate emails 0, double charges 0

(one line; an order handled by both counts for both) and exits non-zero if lost, duplicate
e-mails or double charges is not zero, an e-mail is missing, or, with two workers or more, one of
them handled no order. Progress bars (rich) and details go to stderr. Under `make bench`
(``bench/all.py``) it records these figures for the summary table.

Run: make chaos   (or .venv/bin/python bench/chaos.py [--full] [--orders N] [--workers 2]
[--kills 5] [--stops 1] [--seed N] [--dump DIR] [--mail-outage SECONDS]: 60 orders by default,
200 with --full, as `make chaos` runs it; DIR receives the history of each order that did not
finish, to replay and study; 0 seconds means no mail outage; --workers 1 is the single worker,
every kill and stop then leaving no worker for a moment)

One module on purpose, as every bench: it is read and run as one script, top to bottom.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import email
import email.policy
import functools
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

# One version of the code for the whole run: the workers are restarted seven times, and each
# restart would otherwise import whatever the working tree holds at that moment (someone editing
# a workflow mid-run turns every replay into a nondeterminism error). So the packages are copied
# once, here, and both this process and every worker import the copy.
ROOT = Path(__file__).resolve().parent.parent
DATA = Path(tempfile.mkdtemp(prefix="orderflow-chaos-"))
CODE = DATA / "code"
for _pkg in ("domain", "workflows", "activities", "orderflow", "seeds"):
    shutil.copytree(ROOT / _pkg, CODE / _pkg, ignore=shutil.ignore_patterns("__pycache__"))
sys.path.insert(0, str(CODE))

from common import full_flag, progress, record
from temporalio.api.enums.v1 import EventType
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from activities.billing import Ledger
from activities.notify import message_id
from domain.carrier import CarrierEvent
from domain.errors import OrderflowError
from domain.holds import PlaceHold, ReleaseHold
from domain.ids import order_workflow_id
from domain.notices import SEND_EMAILS, EmailBatch
from domain.promises import KeepPromise, MakePromise
from domain.view import OrderView
from orderflow.config import Settings
from orderflow.devserver import DevServer, dev_server_command, free_port, port_open
from orderflow.identity import dev_keys
from orderflow.logging import configure
from orderflow.registry import Registry
from orderflow.service import Orderflow
from orderflow.smtp_sink import MaildirHandler, SmtpSink
from orderflow.temporal import connect
from workflows.order import OrderWorkflow

T = TypeVar("T")
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
OVERALL_TIMEOUT = 330.0  # seconds for the whole run, verification included (a last resort)
DRIVE_TIMEOUT = 210.0  # seconds for the orders to finish
VERIFY_TIMEOUT = 45.0  # seconds to read every order's final view
MAIL_OUTAGE_AT = 20.0  # seconds into the drive: every order placed, the kills under way
# What is known so far, for the result line if the overall timeout strikes.
LAST: dict[str, Any] = {
    "worker_kills": 0,
    "worker_stops": 0,
    "server_restarts": 0,
    "handler": None,
    "data": None,
    "share": {},
}
SMALL_ORDERS, FULL_ORDERS = 60, 200  # `make bench`; --full (`make chaos`)
SKUS = ("CASE-X12", "ROUTER-F1", "PHONE-A5")
LOCATIONS = [f"chaos-loc-{n}" for n in range(3)]


def add_stores(catalog: Path) -> None:
    """The run's own stores, each with ample stock, added to the copied seeds once."""
    text = catalog.read_text()
    if LOCATIONS[0] in text:
        return
    stock = ", ".join(f'"{sku}" = 10000' for sku in SKUS)
    for n, loc in enumerate(LOCATIONS):
        text += (
            f'\n[[location]]\nlocation = "{loc}"\nname = "Chaos store {n}"\n'
            f"distance_km = {n}\nstock = {{ {stock} }}\n"
        )
    catalog.write_text(text)


def say(text: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ============================================================================ the sink


class CountingHandler(MaildirHandler):
    """The real Maildir sink, also counting every DATA by Message-ID (repeats included)."""

    def __init__(self, maildir: Path) -> None:
        super().__init__(maildir)
        self.deliveries = 0
        self.by_id: collections.Counter[str] = collections.Counter()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.deliveries += 1
        mid = str(msg.get("Message-ID", ""))
        self.by_id[mid] += 1
        if self.by_id[mid] > 1:
            say(
                f"REPEAT DELIVERY {mid} (#{self.by_id[mid]}): order "
                f"{msg.get('X-Orderflow-Order', '')} to {msg.get('To', '')}: {msg.get('Subject', '')}"
            )
        return await super().handle_DATA(server, session, envelope)


class MailServer:
    """The sink, which this bench stops and starts again: a new ``SmtpSink`` each time (aiosmtpd
    closes a stopped controller's loop), on the same port and Maildir, with the same handler."""

    def __init__(self, handler: CountingHandler, maildir: Path, port: int) -> None:
        self.handler = handler
        self.maildir = maildir
        self.port = port
        self.sink: SmtpSink | None = None
        self.waiting: set[str] = set()  # Message-IDs owed, not delivered, when the outage ended

    def start(self) -> None:
        sink = SmtpSink(self.maildir, host=HOST, port=self.port)
        sink.handler = self.handler
        sink.controller.handler = self.handler
        sink.start()
        self.sink = sink

    def stop(self) -> None:
        if self.sink is not None:
            self.sink.stop()
            self.sink = None


# ============================================================================ the processes


class Processes:
    """The dev server and the workers, as subprocesses this bench may kill.

    Worker ``slot`` 0, 1, ... is one process at a time, started again after each kill or stop;
    every start of a slot polls under its own identity (``ORDERFLOW_WORKER_IDENTITY``),
    ``chaos-w<slot+1>-<start>``, which the histories then show on every task it took."""

    def __init__(
        self, data: Path, port: int, smtp_port: int, task_queue: str, workers: int
    ) -> None:
        self.data = data
        self.port = port
        self.server = DevServer(
            dev_server_command(db_file=data / "temporal.sqlite3", port=port, ui_port=None),
            port=port,
            log_file=data / "temporal.log",
        )
        self.env = {
            **os.environ,
            "TEMPORAL_ADDRESS": f"{HOST}:{port}",
            "ORDERFLOW_DATA_DIR": str(data),
            "ORDERFLOW_SMTP_HOST": HOST,
            "ORDERFLOW_SMTP_PORT": str(smtp_port),
            "ORDERFLOW_TASK_QUEUE": task_queue,
            "PYTHONPATH": str(CODE),
        }
        for key in ("TEMPORAL_PROFILE", "TEMPORAL_API_KEY", "TEMPORAL_NAMESPACE"):
            self.env.pop(key, None)
        self.env.pop("ORDERFLOW_WORKER_IDENTITY", None)
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.starts = [0] * workers
        self.worker_kills = 0
        self.worker_stops = 0
        self.server_restarts = 0
        self.unplanned_worker_exits = 0
        self.server_up = asyncio.Event()
        self.lock = asyncio.Lock()

    # -- server ------------------------------------------------------------------------

    async def start_server(self) -> None:
        await asyncio.to_thread(self.server.start, 60)
        self.server_up.set()

    async def kill_server(self) -> None:
        proc = self.server.proc
        assert proc is not None
        self.server_up.clear()
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 30)
        deadline = time.monotonic() + 30
        while port_open(HOST, self.port) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    # -- workers -----------------------------------------------------------------------

    def name(self, slot: int) -> str:
        proc = self.workers[slot]
        return f"w{slot + 1} (pid {proc.pid if proc else '-'})"

    def identity(self, slot: int) -> str:
        return f"chaos-w{slot + 1}-{self.starts[slot]}"

    async def start_worker(self, slot: int) -> None:
        await self.server_up.wait()
        self.starts[slot] += 1
        path = self.data / f"worker-w{slot + 1}-{self.starts[slot]}.log"
        proc = await asyncio.to_thread(self._spawn_worker, slot, path)
        self.workers[slot] = proc
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if b"worker_started" in path.read_bytes():
                return
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        say(f"worker {self.identity(slot)} did not start (exit {proc.poll()}); retrying")
        self.kill_worker_now(slot)
        await asyncio.sleep(1)
        await self.start_worker(slot)

    def _spawn_worker(self, slot: int, path: Path) -> subprocess.Popen[bytes]:
        with path.open("ab") as log:
            return subprocess.Popen(
                [str(BIN / "orderflow"), "worker"],
                env={**self.env, "ORDERFLOW_WORKER_IDENTITY": self.identity(slot)},
                cwd=CODE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def down(self, slot: int) -> bool:
        proc = self.workers[slot]
        return proc is None or proc.poll() is not None

    def kill_worker_now(self, slot: int) -> None:
        proc = self.workers[slot]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)

    async def kill_worker(self, slot: int) -> None:
        await asyncio.to_thread(self.kill_worker_now, slot)
        self.worker_kills += 1

    async def stop_worker(self, slot: int) -> float:
        """SIGTERM, as an operator stops a worker: it stops polling, lets running activities
        finish (20 s at most, ``graceful_shutdown_timeout``) and exits. Returns the seconds it
        took; a worker still there after 45 s is killed."""
        proc = self.workers[slot]
        assert proc is not None
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 45)
        except subprocess.TimeoutExpired:
            say(f"worker {self.name(slot)} still running 45 s after SIGTERM; SIGKILL")
            self.kill_worker_now(slot)
        self.worker_stops += 1
        return time.monotonic() - began

    async def supervise(self) -> None:
        """Restart a worker that exited on its own (not one of the planned kills or stops)."""
        while True:
            await asyncio.sleep(0.5)
            async with self.lock:
                for slot, proc in enumerate(self.workers):
                    if proc is not None and proc.poll() is not None:
                        self.unplanned_worker_exits += 1
                        say(
                            f"worker {self.identity(slot)} exited on its own "
                            f"(exit {proc.returncode}); restarting"
                        )
                        await self.start_worker(slot)

    def stop_all(self) -> None:
        for slot in range(len(self.workers)):
            self.kill_worker_now(slot)
        proc = self.server.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(15)


async def chaos(
    procs: Processes, rng: random.Random, kills: int, stops: int, window: float
) -> None:
    """SIGKILL a worker ``kills`` times, SIGTERM one ``stops`` times and SIGKILL the server
    once, at random moments of the window, in random order. Each kill or stop hits one worker,
    chosen at random, while the others keep running; it is started again 0.2 to 2 s after a
    kill, 1 to 5 s after it has stopped."""
    events = ["kill"] * kills + ["stop"] * stops + ["server"]
    rng.shuffle(events)
    # Random moments at least GAP apart: spread the slack left after the gaps at random.
    n, gap, first = len(events), 6.0, 3.0
    slack = max(window - first - (n - 1) * gap, 0.0)
    moments = [
        first + u + i * gap for i, u in enumerate(sorted(rng.uniform(0, slack) for _ in range(n)))
    ]
    start = time.monotonic()
    for event, at in zip(events, moments, strict=True):
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        async with procs.lock:
            now = time.monotonic() - start
            if event == "server":
                say(f"t={now:.1f}s: SIGKILL the Temporal dev server")
                await procs.kill_server()
                await asyncio.sleep(rng.uniform(1, 3))
                await procs.start_server()
                procs.server_restarts += 1
                say("dev server back on the same database and port")
                for slot in range(len(procs.workers)):
                    if procs.down(slot):
                        await procs.start_worker(slot)
                continue
            slot = rng.randrange(len(procs.workers))
            others = [procs.name(o) for o in range(len(procs.workers)) if o != slot]
            running = f"; {', '.join(others)} running on" if others else ""
            if event == "kill":
                say(f"t={now:.1f}s: SIGKILL worker {procs.name(slot)}{running}")
                await procs.kill_worker(slot)
                await asyncio.sleep(rng.uniform(0.2, 2.0))
            else:
                say(f"t={now:.1f}s: SIGTERM worker {procs.name(slot)}{running}")
                took = await procs.stop_worker(slot)
                say(f"worker w{slot + 1} stopped {took:.1f}s after SIGTERM")
                await asyncio.sleep(rng.uniform(1.0, 5.0))
            await procs.start_worker(slot)
            say(f"worker {procs.name(slot)} started as {procs.identity(slot)}")


async def mail_outage(mail: MailServer, driver: Driver, ids: list[str], length: float) -> None:
    """Stop the sink ``MAIL_OUTAGE_AT`` seconds in, start it again ``length`` seconds later, and
    note which e-mails were waiting then: those the orders had handed to the mailer (their
    ``send_emails`` batches in history) that the sink had not received. E-mails an order still
    holds behind a waiting batch are not in history yet, and not counted."""
    await asyncio.sleep(MAIL_OUTAGE_AT)
    say(f"t={MAIL_OUTAGE_AT:.0f}s: SMTP sink down for {length:.0f}s")
    await asyncio.to_thread(mail.stop)
    await asyncio.sleep(length)
    delivered = set(mail.handler.by_id)  # nothing arrives while it is down
    ended = datetime.now(UTC)
    await asyncio.to_thread(mail.start)
    say(f"SMTP sink back on port {mail.port}, same Maildir; counting the e-mails waiting")

    async def handed_over(order_id: str) -> set[str]:
        mids: set[str] = set()
        handle = driver.app.client.get_workflow_handle(order_workflow_id(order_id))
        async for e in handle.fetch_history_events():
            attrs = e.activity_task_scheduled_event_attributes
            if (
                e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                and attrs.activity_type.name == SEND_EMAILS
                and e.event_time.ToDatetime(tzinfo=UTC) < ended
            ):
                [batch] = await driver.app.client.data_converter.decode(
                    attrs.input.payloads, [EmailBatch]
                )
                mids.update(message_id(note.key) for note in batch.notes)
        return mids

    owed = await asyncio.gather(
        *(driver.attempt("read history", functools.partial(handed_over, o)) for o in ids)
    )
    mail.waiting = set().union(*(mids or set() for mids in owed)) - delivered
    say(f"{len(mail.waiting)} e-mails were waiting when the outage ended")


# ============================================================================ the driver


class Driver:
    """Every department and the carrier, retrying every call until the deadline."""

    def __init__(self, app: Orderflow, data: Path, rng: random.Random, deadline: float) -> None:
        self.app = app
        self.rng = rng
        self.deadline = deadline
        self.carrier_db = data / "carrier.sqlite3"
        self.gate = asyncio.Semaphore(48)
        self.errors: collections.Counter[str] = collections.Counter()
        self.expected: dict[str, dict[str, Any]] = {}
        self.final: dict[str, OrderView | None] = {}
        self.placed = 0
        self.on_done: Callable[[], None] = lambda: None  # an order reached its end

    async def attempt(
        self, what: str, fn: Callable[[], Awaitable[T]], *, done_if: tuple[str, ...] = ()
    ) -> T | None:
        """Call until it succeeds; a refusal whose text is in ``done_if`` means it already did."""
        while True:
            try:
                async with self.gate:
                    left = self.deadline - time.monotonic()
                    return await asyncio.wait_for(fn(), max(2.0, min(60.0, left + 1)))
            except OrderflowError as err:
                if any(s in str(err) for s in done_if):
                    return None
                self.errors[f"{what}: {type(err).__name__}: {_short(str(err))}"] += 1
            except Exception as err:
                self.errors[f"{what}: {type(err).__name__}: {_short(str(err))}"] += 1
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{what}: still failing at the deadline")
            await asyncio.sleep(self.rng.uniform(0.3, 1.0))

    def booked(self, order_id: str) -> bool:
        """The carrier's own records: has this delivery been booked with us?"""
        if not self.carrier_db.exists():
            return False
        try:
            with sqlite3.connect(self.carrier_db, timeout=5) as db:
                row = db.execute(
                    "SELECT 1 FROM bookings WHERE key = ?", (f"delivery-{order_id}-1.booking",)
                ).fetchone()
        except sqlite3.Error:
            return False
        return row is not None

    async def order(self, i: int, order_id: str) -> None:
        app, rng = self.app, self.rng
        with_hold, with_promise = i % 4 in (1, 3), i % 4 in (2, 3)
        self.expected[order_id] = {"hold": with_hold, "promise": with_promise, "done": False}
        location = LOCATIONS[i % len(LOCATIONS)]
        sku = SKUS[(i // len(LOCATIONS)) % len(SKUS)]
        await asyncio.sleep(i * 0.05)  # orders arrive over ten seconds
        # Every fifth order has two lines (each on its own stock record, shipped together).
        lines = [(sku, 1)]
        if i % 5 == 4:
            lines.append((SKUS[(SKUS.index(sku) + 1) % len(SKUS)], 2))
        inp = app.order_input(
            customer_id=f"C-100{1 + i % 5}",
            lines=lines,
            location=location,
            carrier=("ups", "dhl", "post")[i % 3],
            pickup=False,
            order_id=order_id,
            actor="chaos",
        )
        await self.attempt("place order", lambda: app.place_order(inp))
        self.placed += 1
        hold_id: str | None = None
        if with_hold:
            placed = await self.attempt(
                "place hold",
                lambda: app.place_hold(
                    order_id,
                    PlaceHold(
                        department="billing",
                        actor="chaos",
                        reason_code="arrears",
                        customer_message=f"Invoice INV-{i} is unpaid.",
                        reference=f"INV-{i}",
                        amount=Decimal("10.00"),
                    ),
                ),
            )
            assert placed is not None
            hold_id = placed.hold_id
            self.expected[order_id]["hold_id"] = hold_id
        promise_text = f"call you back about order {order_id}"
        if with_promise:
            self.expected[order_id]["promise_id"] = await self.make_promise_once(
                order_id, promise_text
            )
        await asyncio.sleep(rng.uniform(0, 25))
        if hold_id is not None:
            await self.attempt(
                "release hold",
                lambda: app.release_hold(
                    order_id,
                    ReleaseHold(
                        hold_id=hold_id, department="billing", actor="chaos", resolution="Paid."
                    ),
                ),
                done_if=("already released",),
            )
        while not self.booked(order_id):
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{order_id} never booked")
            await asyncio.sleep(rng.uniform(0.5, 1.5))
        for event, extra in (
            ("picked-up", {}),
            ("scan", {"location": "Hub North"}),
            ("delivered", {}),
        ):
            await asyncio.sleep(rng.uniform(0, 6))
            cmd = CarrierEvent(event=event, event_id=f"{order_id}-{event}", **extra)  # type: ignore[arg-type]
            await self.attempt(f"carrier {event}", lambda cmd=cmd: app.carrier_event(order_id, cmd))
        if with_promise:
            await asyncio.sleep(rng.uniform(0, 4))
            promise_id = self.expected[order_id]["promise_id"]
            await self.attempt(
                "keep promise",
                lambda: app.keep_promise(
                    order_id, KeepPromise(promise_id=promise_id, note="called", actor="chaos")
                ),
                done_if=("already kept",),
            )
        # The order's result is its final view: reading it needs no replay.
        final = await self.attempt(
            "wait for the order",
            lambda: app.client.get_workflow_handle_for(
                OrderWorkflow.run, order_workflow_id(order_id)
            ).result(rpc_timeout=timedelta(seconds=60)),
        )
        self.final[order_id] = final
        self.expected[order_id]["done"] = True
        self.on_done()

    async def make_promise_once(self, order_id: str, text: str) -> str:
        """make_promise has no idempotency key: look before (re)trying, so a retry after a lost
        answer does not make a second promise."""

        async def once() -> str:
            view = await self.app.view(order_id)
            for p in view.promises:
                if p.text == text:
                    return p.promise_id
            made = await self.app.make_promise(
                order_id,
                MakePromise(
                    kind="callback",
                    due_at=datetime.now(UTC) + timedelta(hours=2),
                    text=text,
                    department="care",
                    actor="chaos",
                ),
            )
            return made.promise_id

        result = await self.attempt("make promise", once)
        assert result is not None
        return result


def _short(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return first[:90]


# ============================================================================ verification


WORKER_IDENTITY = re.compile(r"^chaos-(w\d+)-\d+$")


async def worker_share(
    driver: Driver, ids: list[str], advance: Callable[..., None]
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Which worker took each order's tasks, from the order's history: a WorkflowTaskStarted or
    ActivityTaskStarted event names the identity of the worker that polled the task. The server
    writes the started event of an update's speculative workflow task without one; the
    WorkflowTaskCompleted (or Failed) event that answers it names the worker. Returns, per
    worker (w1, w2, ...; any other identity as itself, "(none)" for a task that timed out
    unnamed), the orders it took at least one workflow task of, the workflow tasks and the
    activity tasks."""
    orders: collections.Counter[str] = collections.Counter()
    wf_tasks: collections.Counter[str] = collections.Counter()
    act_tasks: collections.Counter[str] = collections.Counter()

    def who(identity: str) -> str:
        m = WORKER_IDENTITY.match(identity)
        return m.group(1) if m else identity or "(none)"

    async def read(order_id: str) -> tuple[collections.Counter[str], collections.Counter[str]]:
        started: dict[int, str] = {}  # workflow task started event id -> identity
        act: collections.Counter[str] = collections.Counter()
        handle = driver.app.client.get_workflow_handle(order_workflow_id(order_id))
        async for e in handle.fetch_history_events():
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                started[e.event_id] = e.workflow_task_started_event_attributes.identity
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                done = e.workflow_task_completed_event_attributes
                started[done.started_event_id] = started.get(done.started_event_id) or done.identity
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failed = e.workflow_task_failed_event_attributes
                started[failed.started_event_id] = (
                    started.get(failed.started_event_id) or failed.identity
                )
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                act[who(e.activity_task_started_event_attributes.identity)] += 1
        return collections.Counter(who(i) for i in started.values()), act

    async def one(order_id: str) -> None:
        got = await driver.attempt("read history", functools.partial(read, order_id))
        if got is not None:
            wf, act = got
            orders.update(wf.keys())
            wf_tasks.update(wf)
            act_tasks.update(act)
        advance()

    await asyncio.gather(*(one(o) for o in ids))
    return dict(orders), dict(wf_tasks), dict(act_tasks)


def check_order(view: OrderView | None, exp: dict[str, Any]) -> list[str]:
    if view is None:
        return ["no view"]
    problems: list[str] = []
    if view.status != "completed":
        problems.append(f"status {view.status}")
    holds = [(h.hold_id, h.status) for h in view.holds]
    want_holds = [(exp.get("hold_id", "H1"), "released")] if exp.get("hold") else []
    if holds != want_holds:
        problems.append(f"holds {holds}, expected {want_holds}")
    promises = sorted((p.kind, p.department, p.status) for p in view.promises)
    want = [("delivery_window", "fulfilment", "kept")]
    if exp.get("promise"):
        want.append(("callback", "care", "kept"))
    if promises != sorted(want):
        problems.append(f"promises {promises}, expected {sorted(want)}")
    if view.undeliverable_emails:
        problems.append(f"e-mails given up: {view.undeliverable_emails}")
    return problems


def maildir_ids(maildir: Path) -> tuple[int, collections.Counter[str], dict[str, int]]:
    """Files stored, Message-IDs across them, and customer e-mails stored per order."""
    files = 0
    ids: collections.Counter[str] = collections.Counter()
    per_order: dict[str, int] = collections.Counter()
    for path in (maildir / "new").iterdir():
        files += 1
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        ids[str(msg.get("Message-ID", ""))] += 1
        order = str(msg.get("X-Orderflow-Order", ""))
        if order and "@example.com" in str(msg.get("To", "")):
            per_order[order] += 1
    return files, ids, per_order


# ============================================================================ main


async def run(
    orders: int,
    kills: int,
    seed: int,
    dump: Path | None = None,
    outage: float = 60.0,
    workers: int = 2,
    stops: int = 1,
) -> int:
    configure("WARNING")
    started = time.monotonic()
    rng = random.Random(seed)
    data = DATA
    port, smtp_port = free_port(), free_port()
    tag = uuid.uuid4().hex[:6].upper()
    task_queue = f"chaos-{tag.lower()}"
    say(f"seed {seed}, data {data}, Temporal {HOST}:{port}, SMTP {HOST}:{smtp_port}")

    handler = CountingHandler(data / "maildir")
    mail = MailServer(handler, data / "maildir", smtp_port)
    add_stores(CODE / "seeds" / "catalog.toml")
    settings = Settings(data_dir=data, smtp_host=HOST, smtp_port=smtp_port, task_queue=task_queue)
    # The chaos stores are in the copied seeds (``add_stores``): the workers' order desk
    # places orders only at stores its registry knows.
    registry = Registry(CODE / "seeds")
    # A key for every principal of the seeds in the data dir (the workers' keys dir), before
    # the first worker starts and loads the trust store.
    dev_keys(settings, registry)
    procs = Processes(data, port, smtp_port, task_queue, workers)
    LAST.update(handler=handler, data=data, workers=workers)
    supervisor: asyncio.Task[None] | None = None
    outage_task: asyncio.Task[None] | None = None
    driver: Driver | None = None
    ids = [f"CH-{tag}-{i:03d}" for i in range(orders)]
    views: dict[str, OrderView | None] = {}
    share: dict[str, int] = {}
    try:
        mail.start()
        await procs.start_server()
        for slot in range(workers):
            await procs.start_worker(slot)
        supervisor = asyncio.create_task(procs.supervise())
        quiet = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                )
            )
        )
        client = await connect(f"{HOST}:{port}", converter=settings.data_converter(), runtime=quiet)
        app = Orderflow(client, registry, settings)
        # An order ends once its e-mails are sent, and the mailer's retries back off (doubling):
        # the last e-mails leave up to about as long again as the outage after it, later still
        # when a worker died with an attempt (a 30 s attempt timeout).
        drive_timeout = DRIVE_TIMEOUT + 2 * outage
        driver = Driver(app, data, rng, time.monotonic() + drive_timeout)
        say(
            f"placing {orders} orders on {workers} worker(s) sharing task queue {task_queue}; "
            f"{kills} worker kills, {stops} graceful stop(s) and one server kill to come"
        )
        with progress("orders completed", orders) as advance:
            driver.on_done = advance
            drive = asyncio.gather(*(driver.order(i, o) for i, o in enumerate(ids)))
            havoc = asyncio.create_task(chaos(procs, rng, kills, stops, window=45))
            if outage > 0:
                outage_task = asyncio.create_task(mail_outage(mail, driver, ids, outage))

            async def notes() -> None:
                assert driver is not None
                while True:
                    mail_note = ", mail down" if outage > 0 and mail.sink is None else ""
                    advance(
                        0,
                        note=f"placed {driver.placed}, worker kills {procs.worker_kills}, "
                        f"stops {procs.worker_stops}, server restarts "
                        f"{procs.server_restarts}{mail_note}",
                    )
                    LAST.update(
                        worker_kills=procs.worker_kills,
                        worker_stops=procs.worker_stops,
                        server_restarts=procs.server_restarts,
                    )
                    await asyncio.sleep(1)

            ticker = asyncio.create_task(notes())
            try:
                try:
                    await asyncio.wait_for(drive, drive_timeout + 5)
                except TimeoutError as err:
                    say(f"orders did not all finish: {err}")
                await havoc
                if outage_task is not None:
                    await outage_task
            finally:
                ticker.cancel()
            advance(0, note="")  # printed once where stderr is no terminal: keep it short
        LAST.update(
            worker_kills=procs.worker_kills,
            worker_stops=procs.worker_stops,
            server_restarts=procs.server_restarts,
        )
        say(f"orders driven in {time.monotonic() - started:.0f}s; verifying")
        top = driver.errors.most_common(8)
        if top:
            say("retried calls (most common): " + "; ".join(f"{n}x {m}" for m, n in top))
        for order_id, exp in driver.expected.items():
            if not exp["done"]:
                say(f"NOT FINISHED {order_id}: {exp}")
                if dump is not None:
                    history = await client.get_workflow_handle(
                        order_workflow_id(order_id)
                    ).fetch_history()
                    dump.mkdir(parents=True, exist_ok=True)
                    (dump / f"{order_id}.json").write_text(history.to_json())

        async def final_view(order_id: str) -> None:
            assert driver is not None
            if driver.final.get(order_id) is not None:
                views[order_id] = driver.final[order_id]
                return
            try:  # not finished: what does its view say now?
                views[order_id] = await driver.attempt("final view", lambda: app.view(order_id))
            except TimeoutError:
                views[order_id] = None

        driver.deadline = time.monotonic() + VERIFY_TIMEOUT - 10
        try:
            await asyncio.wait_for(asyncio.gather(*(final_view(o) for o in ids)), VERIFY_TIMEOUT)
        except TimeoutError:
            say("some final views could not be read in time; those orders count as lost")

        # -- which worker took which orders' tasks, from their histories
        driver.deadline = time.monotonic() + VERIFY_TIMEOUT - 10
        with progress("histories read", orders) as advance:
            try:
                share, wf_tasks, act_tasks = await asyncio.wait_for(
                    worker_share(driver, ids, advance), VERIFY_TIMEOUT
                )
            except TimeoutError:
                say("the histories could not all be read in time")
                wf_tasks, act_tasks = {}, {}
        for who in sorted(set(share) | set(wf_tasks) | set(act_tasks)):
            if who == "(none)":
                say(
                    f"{wf_tasks.get(who, 0)} workflow tasks of {share.get(who, 0)} orders "
                    "started without a worker's name and were never answered (timed out)"
                )
                continue
            say(
                f"worker {who}: workflow tasks of {share.get(who, 0)} orders, "
                f"{wf_tasks.get(who, 0)} workflow tasks, {act_tasks.get(who, 0)} activity tasks"
            )
        LAST.update(share=share)
    finally:
        if supervisor is not None:
            supervisor.cancel()
        if outage_task is not None:
            outage_task.cancel()
        procs.stop_all()
        mail.stop()

    assert driver is not None
    # -- lost: orders not completed, holds or promises missing, wrong or extra
    lost = 0
    for order_id in ids:
        problems = check_order(views.get(order_id), driver.expected.get(order_id, {}))
        if problems:
            lost += 1
            say(f"LOST {order_id}: {'; '.join(problems)}")

    # -- e-mails: every DATA the sink received, by Message-ID; and the Maildir itself
    files, stored_ids, per_order = maildir_ids(data / "maildir")
    # A duplicate is a Message-ID the customer's mailbox holds twice. A crash between the
    # server's acceptance and the sent-log write can make the worker hand the same message
    # over again; it carries the same Message-ID and the mail store keeps it once. Those
    # redeliveries are counted and shown, not hidden, but they are not duplicate e-mails.
    repeats = sum(n - 1 for n in handler.by_id.values() if n > 1)
    duplicates = sum(n - 1 for n in stored_ids.values() if n > 1)
    missing_mail = 0
    for o, v in views.items():
        if v is not None and v.customer_emails > per_order.get(o, 0):
            missing_mail += v.customer_emails - per_order.get(o, 0)
            say(
                f"MAIL {o}: the view counts {v.customer_emails} customer e-mails, the sink "
                f"stored {per_order.get(o, 0)}"
            )
    say(
        f"sink: {handler.deliveries} deliveries, {len(handler.by_id)} Message-IDs, "
        f"{repeats} redelivered after a crash and stored once; Maildir: {files} files, "
        f"{len(stored_ids)} Message-IDs; customer e-mails the orders sent and the sink lacks: "
        f"{missing_mail}"
    )
    # -- the outage: the Maildir holds exactly what the worker's sent-log says it sent, and
    # every e-mail that was waiting when the sink came back arrived after it, stored once. A
    # completed order has sent all it queued (it waits for its outbox; an e-mail given up shows
    # on its view), each recorded in the sent-log: so the sent-log is every e-mail owed.
    sent: set[str] = set()
    if (data / "sent.sqlite3").exists():
        with sqlite3.connect(data / "sent.sqlite3", timeout=5) as db:
            sent = {mid for (mid,) in db.execute("SELECT message_id FROM sent")}
    unsent, unlogged = sent - stored_ids.keys(), stored_ids.keys() - sent
    late = mail.waiting - stored_ids.keys()
    for mid in sorted(unsent):
        say(f"MAIL {mid}: in the sent-log, not in the Maildir")
    for mid in sorted(unlogged):
        say(f"MAIL {mid}: in the Maildir, not in the sent-log")
    for mid in sorted(late):
        say(f"MAIL {mid}: waiting when the outage ended, never delivered")
    missing_mail += len(unsent) + len(unlogged) + len(late)
    if outage > 0:
        say(
            f"mail outage {outage:.0f}s: {len(mail.waiting)} e-mails waiting when it ended, "
            f"{len(mail.waiting) - len(late)} delivered since "
            f"({sum(1 for m in mail.waiting if handler.by_id[m] > 1)} of them more than once, "
            f"stored once); sent-log {len(sent)} e-mails, Maildir {len(stored_ids)}: "
            f"{len(unsent)} sent and not stored, {len(unlogged)} stored and not logged"
        )

    # -- double charges: at most one capture per order, for exactly the order's total
    entries = Ledger(data / "ledger.sqlite3").entries()
    by_order: dict[str, list[Any]] = collections.defaultdict(list)
    for e in entries:
        by_order[e.order_id].append(e)
    double = 0
    for order_id in ids:
        mine = by_order.get(order_id, [])
        captures = [e for e in mine if e.kind == "capture"]
        authorizations = [e for e in mine if e.kind == "authorize"]
        view = views.get(order_id)
        total = view.total if view else None
        if len(captures) > 1 or len(authorizations) > 1:
            double += 1
            say(f"DOUBLE {order_id}: {[(e.kind, str(e.amount)) for e in mine]}")
        elif captures and total is not None and Decimal(captures[0].amount) != Decimal(total):
            double += 1
            say(f"WRONG AMOUNT {order_id}: captured {captures[0].amount}, total {total}")
    kinds = collections.Counter(e.kind for e in entries)
    say(f"ledger: {dict(kinds)}")

    # -- sharing: with two workers or more, every one of them took some orders' workflow tasks
    slots = [f"w{n + 1}" for n in range(workers)]
    idle = [w for w in slots if not share.get(w)]
    if workers > 1 and idle:
        say(f"NOT SHARED: {', '.join(idle)} took no order's workflow task")
    others = sorted(set(share) - set(slots) - {"(none)"})
    if others:
        say(f"tasks taken by identities this bench did not start: {others}")

    if procs.unplanned_worker_exits:
        say(f"a worker also exited on its own {procs.unplanned_worker_exits} time(s)")
    took = time.monotonic() - started
    say(f"done in {took:.0f}s")
    print(
        result_line(
            orders,
            workers,
            [share.get(w, 0) for w in slots],
            procs.worker_kills,
            procs.worker_stops,
            procs.server_restarts,
            lost,
            duplicates,
            double,
        ),
        flush=True,
    )
    handled = " / ".join(str(share.get(w, 0)) for w in slots)
    record("chaos", "orders under chaos", f"{orders}")
    record(
        "chaos",
        f"workers sharing the task queue (orders handled by {' / '.join(slots)})",
        f"{workers} ({handled})",
        "each handles some" if workers > 1 else "",
        (not idle) if workers > 1 else None,
    )
    record(
        "chaos",
        "worker kills, graceful stops, server restarts",
        f"{procs.worker_kills}, {procs.worker_stops}, {procs.server_restarts}",
    )
    record("chaos", "orders lost", str(lost), "0", lost == 0)
    record("chaos", "duplicate e-mails", str(duplicates), "0", duplicates == 0)
    record("chaos", "e-mails owed and not stored", str(missing_mail), "0", missing_mail == 0)
    record("chaos", "double charges", str(double), "0", double == 0)
    record("chaos", "run time", f"{took:.0f} s")
    failed = lost or duplicates or double or missing_mail or (workers > 1 and idle)
    return 1 if failed else 0


def result_line(
    orders: int,
    workers: int,
    handled: list[int],
    kills: int,
    stops: int,
    restarts: int,
    lost: int,
    duplicates: int,
    double: int,
) -> str:
    return (
        f"orders {orders}, workers {workers} (orders handled: "
        f"{' / '.join(str(n) for n in handled)}), worker kills {kills}, graceful stops {stops}, "
        f"server restarts {restarts}, lost {lost}, duplicate emails {duplicates}, "
        f"double charges {double}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    full_flag(parser, f"{FULL_ORDERS} orders")
    parser.add_argument(
        "--orders", type=int, default=None, help=f"{SMALL_ORDERS}; {FULL_ORDERS} with --full"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes on the one task queue (2)"
    )
    parser.add_argument("--kills", type=int, default=5, help="worker SIGKILLs (5)")
    parser.add_argument("--stops", type=int, default=1, help="worker SIGTERMs, graceful (1)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--dump", type=Path, default=None, help="save the history of each unfinished order here"
    )
    parser.add_argument(
        "--mail-outage",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long the SMTP sink is down mid-run (0: not at all)",
    )
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    orders = args.orders or (FULL_ORDERS if args.full else SMALL_ORDERS)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    overall = OVERALL_TIMEOUT + 2 * args.mail_outage  # as the drive's own timeout grows
    try:
        code = asyncio.run(
            asyncio.wait_for(
                run(
                    orders,
                    args.kills,
                    seed,
                    args.dump,
                    args.mail_outage,
                    workers=args.workers,
                    stops=args.stops,
                ),
                overall,
            )
        )
    except TimeoutError:
        say(f"gave up after {overall:.0f}s; orders unverified count as lost")
        handler = LAST["handler"]
        dup = sum(n - 1 for n in handler.by_id.values() if n > 1) if handler else 0
        double = 0
        if LAST["data"] is not None and (LAST["data"] / "ledger.sqlite3").exists():
            kinds = collections.Counter(
                (e.order_id, e.kind) for e in Ledger(LAST["data"] / "ledger.sqlite3").entries()
            )
            double = sum(1 for (_, kind), n in kinds.items() if kind == "capture" and n > 1)
        share = LAST["share"]
        print(
            result_line(
                orders,
                args.workers,
                [share.get(f"w{n + 1}", 0) for n in range(args.workers)],
                LAST["worker_kills"],
                LAST["worker_stops"],
                LAST["server_restarts"],
                orders,
                dup,
                double,
            ),
            flush=True,
        )
        record("chaos", "orders under chaos", f"{orders}")
        record("chaos", "orders lost", f"{orders} (gave up after {overall:.0f} s)", "0", False)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
