"""Saved histories of every scenario replay against today's workflow code: a change that
breaks determinism for orders already running fails here, not in production.

Re-record after an intended, versioned change with ``make histories``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orderflow.worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def test_histories_are_saved_for_every_workflow_type() -> None:
    types = {path.name.split(".")[-3] for path in HISTORIES}
    assert {"OrderWorkflow", "StockWorkflow", "DeliveryWorkflow"} <= types


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
