"""``orderflow dev``: the whole local stack in one command; Ctrl-C stops all of it."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import httpx
import structlog

from orderflow.config import STACK_UI_FILE, Settings
from orderflow.devserver import DevServer, dev_server_command
from orderflow.identity import dev_keys
from orderflow.logging import configure
from orderflow.service import Orderflow
from orderflow.smtp_sink import SmtpSink
from orderflow.temporal import connect
from orderflow.web import bind, serve
from orderflow.worker import order_desk, run_worker

log = structlog.get_logger("orderflow.dev")


async def run_stack(
    settings: Settings,
    *,
    port: int,
    ui_port: int,
    demo: bool,
    exit_after_demo: bool,
    verbose: bool = False,
) -> None:
    # The worker's log lines go to a file, so the stack's own lines and the demo's tables read
    # on their own; --verbose streams them here instead.
    log_file = None if verbose else settings.data_dir / "orderflow.log"
    configure(log_file=log_file)
    # A broken seed file fails before anything starts. The demo's stories share the worker's
    # order desk: each story's store and compressed policy are staged on it.
    desk = order_desk(settings)
    data = settings.data_dir
    # The stack's state holds customers' data: its folder is the engine's user's alone.
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    data.chmod(0o700)
    (data / STACK_UI_FILE).write_text(settings.ui_url + "\n")
    created = dev_keys(settings, desk.registry)
    if created:
        print(f"Keys      {len(created)} dev keys created in {settings.keys_path}", flush=True)
    server = DevServer(
        dev_server_command(
            db_file=data / "temporal.sqlite3",
            port=port,
            ui_port=ui_port,
            ui_codec_endpoint=f"{settings.public_web_url}/codec",
        ),
        port=port,
        log_file=data / "temporal.log",
    )
    sink = SmtpSink(settings.maildir, port=settings.smtp_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The listener's port is taken before anything starts: a port in use fails here, clearly.
    sock = bind(settings)
    await asyncio.to_thread(server.start)
    try:
        sink.start()
        try:
            address = f"localhost:{port}"
            client = await connect(address, converter=settings.data_converter())
            worker = asyncio.create_task(run_worker(client, settings, stop, desk=desk))
            web = asyncio.create_task(serve(settings, stop, sock, client))
            print(f"Temporal  {address}   Web UI http://localhost:{ui_port}", flush=True)
            print(
                f"Web       {settings.public_web_url}   codec endpoint "
                f"{settings.public_web_url}/codec (staff sign in at /signin)",
                flush=True,
            )
            print(f"SMTP sink localhost:{settings.smtp_port} -> {settings.maildir}", flush=True)
            if log_file is not None:
                print(f"Logs      {log_file} (--verbose shows them here)", flush=True)
            print(
                f"Worker    task queue '{settings.task_queue}'. Ctrl-C stops everything.",
                flush=True,
            )
            if demo:
                from orderflow.demo import run_demo

                try:
                    # The customers' own actions go through the web front end's API.
                    async with httpx.AsyncClient(
                        base_url=settings.public_web_url, timeout=30
                    ) as web_api:
                        await run_demo(
                            Orderflow(client, desk.registry, settings, desk=desk), [], web=web_api
                        )
                finally:
                    if exit_after_demo:
                        stop.set()
            await stop.wait()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await web
        finally:
            sink.stop()
    finally:
        await asyncio.to_thread(server.stop)
        print("stopped: worker, SMTP sink, Temporal dev server", flush=True)
