"""structlog, configured once: JSON lines when not on a terminal, readable console on one."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

import structlog

_configured = False


def configure(level: str = "INFO", log_file: Path | None = None) -> None:
    """Log lines to stderr, or (``log_file``) as JSON lines appended to a file."""
    global _configured
    if _configured:
        return
    _configured = True
    stream: TextIO = sys.stderr
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        stream = log_file.open("a", buffering=1, encoding="utf-8")
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if log_file is None and sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=logging.WARNING, stream=stream, format="%(levelname)s %(name)s: %(message)s"
    )
