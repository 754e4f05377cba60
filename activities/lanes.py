"""Each external system's blocking calls run on threads of their own.

Run on the event loop's shared default pool, calls stuck on one system (a ledger locked for
minutes, a carrier gateway that does not answer) fill every thread, and the e-mail of every
other order waits behind them. A lane per system bounds what an outage can hold up to that
system's own calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Lane:
    """A small thread pool for one system's blocking calls."""

    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"lane-{name}")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
