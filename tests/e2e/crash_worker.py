"""A real worker process for the crash tests: the engine's worker on the given task queue,
whose stock reservation takes the given seconds before it runs. Prints READY once polling."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client

from activities.stock import StockActivities
from domain.registry import Location, Policy
from domain.stock import ReserveRequest
from orderflow.codec import CodecKeys, data_converter
from orderflow.config import PROJECT_ROOT, Settings
from orderflow.desk import OrderDesk
from orderflow.identity import KeyRing
from orderflow.registry import Registry
from orderflow.worker import build_worker


async def main(
    address: str,
    task_queue: str,
    data_dir: str,
    smtp_port: str,
    delay: str,
    location: str,
    policy: str,
) -> None:
    client = await Client.connect(
        address,
        data_converter=data_converter(
            CodecKeys.from_file(PROJECT_ROOT / "tests" / "codec-keys.json")
        ),
    )
    settings = Settings(
        data_dir=Path(data_dir),
        smtp_host="127.0.0.1",
        smtp_port=int(smtp_port),
        task_queue=task_queue,
        workflow_sandbox=True,
    )
    stock = StockActivities(client, task_queue, KeyRing(settings.keys_path))

    @activity.defn(name="reserve_stock")
    async def reserve_stock(req: ReserveRequest) -> Any:
        await asyncio.sleep(float(delay))
        return await stock.reserve_stock(req)

    desk = OrderDesk(Registry(settings.seeds_dir), Policy.model_validate_json(policy))
    store = Location.model_validate_json(location)
    desk.registry.locations[store.location] = store
    async with build_worker(client, settings, replace=[reserve_stock], desk=desk):
        print("READY", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:8]))
