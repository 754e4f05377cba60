"""The custom search attributes the engine keeps current, and the server registers at start."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
BLOCKED_BY = SearchAttributeKey.for_keyword_list("BlockedBy")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
CARRIER = SearchAttributeKey.for_keyword("Carrier")

ALL = (ORDER_STATUS, BLOCKED_BY, CUSTOMER_ID, CARRIER)


def registration_args() -> list[str]:
    """``--search-attribute NAME=Type`` arguments for ``temporal server start-dev``."""
    kinds = {"KEYWORD": "Keyword", "KEYWORD_LIST": "KeywordList"}
    args: list[str] = []
    for key in ALL:
        args += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type.name]}"]
    return args
