"""The local stack as a user starts it (`orderflow dev`), and a CLI driver for it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from orderflow.devserver import free_port

BIN = Path(sys.executable).parent / "orderflow"


class Cli:
    def __init__(self, env: dict[str, str], ui_port: int = 0) -> None:
        self.env = env
        self.ui_port = ui_port

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(BIN), *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"orderflow {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    def call(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The same command run in this process: what the console script runs, without the
        interpreter start-up, for tables of many commands."""
        from orderflow.cli import run

        out, err = io.StringIO(), io.StringIO()
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = run(list(args))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def until(self, args: tuple[str, ...], ok: Any, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.json(*args)
            if ok(doc):
                return doc
            if time.monotonic() > deadline:
                raise AssertionError(f"{args}: {doc}")
            time.sleep(0.3)


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    data = tmp_path_factory.mktemp("stack")
    port, ui_port, smtp = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "ORDERFLOW_DATA_DIR": str(data),
        "TEMPORAL_ADDRESS": f"localhost:{port}",
        "ORDERFLOW_SMTP_PORT": str(smtp),
        "ORDERFLOW_WEB_PORT": str(free_port()),
        # Workflow code runs in the SDK's sandbox under test: a non-deterministic call fails.
        "ORDERFLOW_WORKFLOW_SANDBOX": "1",
    }
    stack = subprocess.Popen(
        [str(BIN), "dev", "--port", str(port), "--ui-port", str(ui_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert stack.stdout is not None
    ready = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = stack.stdout.readline()
        if "Ctrl-C stops everything" in line:
            ready = True
            break
        if stack.poll() is not None:
            break
    assert ready, f"orderflow dev did not start (exit {stack.poll()})"
    try:
        yield Cli(env, ui_port)
    finally:
        stack.send_signal(signal.SIGINT)
        try:
            out, _ = stack.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            stack.kill()
            raise
        assert "stopped: worker, SMTP sink, Temporal dev server" in out
        assert (data / "temporal.sqlite3").exists()


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is missing: `make test` installs Debian's chromium with apt-get"
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test file: sync Playwright runs an event loop of its own in this
    thread while it is open, which the async tests of other files must not meet."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()
