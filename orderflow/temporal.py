"""The connection to Temporal: one place that knows the data converter and turns an unreachable
server into a clear error."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from orderflow.config import temporal_connect_config


class ServerUnreachable(Exception):
    def __init__(self, address: str, detail: str = "", waited: float | None = None) -> None:
        tried = f" (tried for {waited:g} s)" if waited is not None else ""
        super().__init__(
            f"cannot reach the Temporal server at {address}{tried}; is it running? "
            "(start it with `orderflow dev`, or set TEMPORAL_ADDRESS)"
        )
        self.address = address
        self.detail = detail


def metrics_runtime(port: int) -> Runtime:
    """A runtime serving the SDK's Prometheus metrics on 0.0.0.0:PORT."""
    return Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"0.0.0.0:{port}"))
    )


# How long a command keeps trying to reach the server before it says it cannot: a server that
# is up but busy (a loaded machine, a restart) answers within it.
CONNECT_WAIT = 10.0


async def connect(
    address: str | None = None,
    *,
    converter: DataConverter,
    runtime: Runtime | None = None,
    wait: float = CONNECT_WAIT,
) -> Client:
    """A client of the configured server, converting (and encrypting) with ``converter``
    (``Settings.data_converter``), trying
    again (0.25 s, doubling to 2 s between tries) for up to ``wait`` seconds before
    ``ServerUnreachable`` says how long it tried."""
    config: dict[str, Any] = temporal_connect_config(address)
    deadline = time.monotonic() + wait
    pause = 0.25
    while True:
        try:
            return await Client.connect(**config, data_converter=converter, runtime=runtime)
        except RuntimeError as err:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerUnreachable(config["target_host"], str(err), waited=wait) from None
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 2.0)
