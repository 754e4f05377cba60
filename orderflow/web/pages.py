"""What every page of the listener shares: the templates (autoescaped), and the headers that keep
another site from framing a page (a framed form is a clickjacking target)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
FRAMING = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}


def framed(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status, headers=FRAMING)


def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return framed(TEMPLATES.get_template(name).render(**values), status)


def message(title: str, text: str, status: int, **more: Any) -> HTMLResponse:
    return page("message.html", status, title=title, text=text, **more)
