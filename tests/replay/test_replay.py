"""Saved histories of every released version replay against today's workflow code: a change
that breaks determinism for orders already running fails here, not in production.

``tests/histories/<version>/`` holds what each version recorded: every test scenario run to its
end, and orders caught at every point where an order waits (``waiting.*``, left there by the
upgrade test's driver on that version's code). Histories are only ever added
(``test_history_contract.py``); a change to what a workflow commands goes behind
``workflow.patched(...)`` so the histories of every version keep replaying.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from orderflow.config import PROJECT_ROOT
from orderflow.registry import Registry
from orderflow.worker import WORKFLOWS
from tests.conftest import TEST_CONVERTER

ROOT = Path(__file__).parent.parent / "histories"
HISTORIES = sorted(ROOT.rglob("*.json"))


def test_histories_are_saved_for_every_workflow_type() -> None:
    types = {path.name.split(".")[-3] for path in HISTORIES}
    assert {
        "OrderWorkflow",
        "StockWorkflow",
        "DeliveryWorkflow",
        "FollowUpWorkflow",
        "SweepWorkflow",
    } <= types


def test_every_history_belongs_to_a_version() -> None:
    loose = [p.name for p in HISTORIES if p.parent == ROOT]
    assert loose == [], "save histories under tests/histories/<version>/"


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=TEST_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


# Histories recorded since payloads are encrypted (0.7) hold no customer's personal data.
ENCRYPTED_SINCE = (0, 7)


def _payload_texts(node: object, out: list[str]) -> list[str]:
    if isinstance(node, dict):
        if isinstance(node.get("data"), str) and "metadata" in node:
            out.append(base64.b64decode(node["data"]).decode(errors="replace"))
        for value in node.values():
            _payload_texts(value, out)
    elif isinstance(node, list):
        for value in node:
            _payload_texts(value, out)
    return out


def test_histories_saved_since_encryption_hold_no_personal_data() -> None:
    customers = Registry(PROJECT_ROOT / "seeds").customers.values()
    personal = [v for c in customers for v in (c.name, c.email, c.address, c.gps) if v]
    encrypted = [
        p for p in HISTORIES if tuple(int(n) for n in p.parent.name.split(".")) >= ENCRYPTED_SINCE
    ]
    assert len(encrypted) > 300
    leaks = {}
    for path in encrypted:
        text = path.read_text()
        readable = text + "\n".join(_payload_texts(json.loads(text), []))
        found = [v for v in personal if v in readable]
        if found:
            leaks[path.name] = found
    assert leaks == {}
