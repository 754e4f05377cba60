"""Settings: flags, then environment variables, then these defaults.

The Temporal connection comes from ``temporalio.envconfig`` (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS*``, ``TEMPORAL_PROFILE`` and the
TOML config file), so the same command talks to a dev server, a cluster or Temporal Cloud.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig

from domain.ids import DEFAULT_TASK_QUEUE
from domain.registry import Policy
from orderflow.codec import KEY_FILE, CodecKeys, configured_keys, data_converter

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Written by `orderflow dev` into its data dir: the address of the stack's Web UI.
STACK_UI_FILE = "ui-url"
DEFAULT_ADDRESS = "localhost:7233"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERFLOW_", extra="ignore")

    data_dir: Path = Path(".orderflow")
    # Seconds a command keeps trying to reach the Temporal server before exit 3.
    connect_wait: float = Field(default=10.0, ge=0, le=300)
    seeds_dir: Path = PROJECT_ROOT / "seeds"
    smtp_host: str = "localhost"
    smtp_port: int = 1025
    task_queue: str = DEFAULT_TASK_QUEUE
    # Story and test time: every policy duration is divided by this factor.
    time_scale: float = Field(default=1.0, gt=0)
    # Worker sizing, for operators.
    max_concurrent_activities: int = Field(default=100, ge=1)
    max_concurrent_workflow_tasks: int = Field(default=100, ge=1)
    max_cached_workflows: int = Field(default=1000, ge=0)
    # Run workflow code in the SDK's sandbox, which refuses non-deterministic calls (the tests
    # do). Workers in production run without it: it re-imports the workflow's module for every
    # run and executes code for every payload, a fifth of the worker's time; determinism is
    # guarded by the tests running sandboxed and by replaying saved histories.
    workflow_sandbox: bool = False
    # Worker Deployment Versioning (README, Upgrading): with a build id the worker joins the
    # deployment as that version, and every workflow upgrades in place (AUTO_UPGRADE) once the
    # version is made current; without one the worker is unversioned, as the dev stack runs.
    deployment_name: str = "orderflow"
    build_id: str | None = None
    # The name the worker gives Temporal with every task it polls for (shown in each history's
    # task events and the Web UI's pollers); by default the client's, pid@host. Set it to tell
    # several workers on one task queue apart across restarts.
    worker_identity: str | None = None
    # How often the sweep looks for orders ended outside the engine (terminated, timed out).
    sweep_every: timedelta = timedelta(seconds=30)
    # Serve the SDK's Prometheus metrics on this port (0.0.0.0:PORT) when set.
    metrics_port: int | None = None
    ui_url: str = "http://localhost:8233"
    # Keys of the principals this machine acts as, and the trust store (orderflow.identity);
    # by default in the data dir, where `orderflow dev` creates a dev key for every principal.
    keys_dir: Path | None = None
    # The principal this machine acts as, when a command does not say (ORDERFLOW_AS, --as).
    acting_as: str | None = Field(default=None, validation_alias="ORDERFLOW_AS")
    # The payload codec's AES-256 keys (orderflow.codec): KID=BASE64[,KID=BASE64...], the first
    # encrypts; else the key file, by default codec-keys.json in the keys dir.
    codec_key: SecretStr | None = None
    codec_keys_file: Path | None = None
    # Off only while rolling this release out beside one that cannot decrypt (README,
    # Upgrading): payloads are still decrypted, and written as plain JSON.
    codec_encrypt: bool = True
    # Off only while rolling this release out beside one whose stock records do not know
    # reserve_batch (README, Upgrading): every reservation is then sent alone.
    stock_batches: bool = True
    # orderflow's HTTP listener (the codec endpoint, and the web front end built on it).
    web_port: int = Field(default=8000, ge=0, le=65535)
    web_host: str = "127.0.0.1"
    # Where people reach it, for links (the codec endpoint the Web UI calls, e-mails).
    web_url: str | None = None

    @model_validator(mode="after")
    def _stack_ui(self) -> Settings:
        """Where ``orderflow dev`` put its Web UI, when no ``ORDERFLOW_UI_URL`` says otherwise:
        links printed by the CLI then open the UI of the stack that serves this data dir."""
        if "ui_url" not in self.model_fields_set:
            with contextlib.suppress(OSError):
                self.ui_url = (self.data_dir / STACK_UI_FILE).read_text().strip() or self.ui_url
        return self

    def policy(self) -> Policy:
        """The policy new orders are placed on: the defaults, sped up by ``time_scale``."""
        policy = Policy()
        return policy.scaled(self.time_scale) if self.time_scale != 1 else policy

    @property
    def keys_path(self) -> Path:
        return self.keys_dir or self.data_dir / "keys"

    @property
    def codec_keys_path(self) -> Path:
        return self.codec_keys_file or self.keys_path / KEY_FILE

    def codec_keys(self) -> CodecKeys:
        """The codec keys this process encrypts and decrypts with; a missing or broken key is
        an error that names it (``orderflow.codec``)."""
        text = self.codec_key.get_secret_value() if self.codec_key is not None else None
        return configured_keys(text, self.codec_keys_path)

    def data_converter(self) -> DataConverter:
        """The engine's converter with this process's codec keys (``orderflow.codec``)."""
        return data_converter(self.codec_keys(), encrypt=self.codec_encrypt)

    @property
    def public_web_url(self) -> str:
        return (self.web_url or f"http://localhost:{self.web_port}").rstrip("/")

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite3"

    @property
    def sent_log_path(self) -> Path:
        return self.data_dir / "sent.sqlite3"

    @property
    def carrier_path(self) -> Path:
        return self.data_dir / "carrier.sqlite3"

    @property
    def maildir(self) -> Path:
        return self.data_dir / "maildir"


def temporal_connect_config(address: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``Client.connect`` from the standard Temporal variables."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    if address:
        config["target_host"] = address
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", "default")
    return config
