"""Links to a customer's order page, put at the end of every e-mail the order sends them.

A link carries a token the order page's key (``portal:web``) signs for that customer and that
order only, good for opening the page for ``LINK_TTL`` (it cannot carry any message to the
engine). It is made when the e-mail leaves, so a resent or later e-mail carries a fresh one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

from domain.notices import Notification
from orderflow.config import Settings
from orderflow.identity import PORTAL, KeyRing
from orderflow.registry import Registry

_log = logging.getLogger(__name__)


def order_page_url(settings: Settings, order_id: str, token: str) -> str:
    return f"{settings.public_web_url}/o/{quote(order_id, safe='')}?t={token}"


def order_links(settings: Settings, registry: Registry) -> Callable[[Notification], str | None]:
    """For each e-mail: the link to its order's page when it goes to that order's customer (a
    department's e-mail gets none), or None when this machine holds no order page key."""
    ring = KeyRing(settings.keys_path)
    by_email = {c.email.lower(): c.customer_id for c in registry.customers.values() if c.email}
    warned = False

    def link(note: Notification) -> str | None:
        nonlocal warned
        customer = by_email.get(note.to.lower())
        if not note.order_id or customer is None:
            return None
        if not ring.private_keys(PORTAL):
            if not warned:
                _log.warning("no key of %s here: e-mails go out without order links", PORTAL)
                warned = True
            return None
        return order_page_url(
            settings, note.order_id, ring.for_customer(customer, note.order_id, link=True)
        )

    return link
