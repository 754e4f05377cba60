"""The connection to Temporal: one place that knows the data converter and turns an unreachable
server into a clear error."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from orderflow.config import temporal_connect_config


class ServerUnreachable(Exception):
    def __init__(self, address: str, detail: str = "") -> None:
        super().__init__(
            f"cannot reach the Temporal server at {address}; is it running? "
            "(start it with `orderflow dev`, or set TEMPORAL_ADDRESS)"
        )
        self.address = address
        self.detail = detail


def metrics_runtime(port: int) -> Runtime:
    """A runtime serving the SDK's Prometheus metrics on 0.0.0.0:PORT."""
    return Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"0.0.0.0:{port}"))
    )


async def connect(address: str | None = None, *, runtime: Runtime | None = None) -> Client:
    config: dict[str, Any] = temporal_connect_config(address)
    try:
        return await Client.connect(
            **config, data_converter=pydantic_data_converter, runtime=runtime
        )
    except RuntimeError as err:
        raise ServerUnreachable(config["target_host"], str(err)) from None
