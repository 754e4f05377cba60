"""Seeds fail closed: a seed file that would change what the engine trusts by accident (a second
billing department, a typo in a key, an address that is not one) is refused with the file, the
entry and the field, and nothing of it is used."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from domain.errors import InvalidInput
from orderflow.config import PROJECT_ROOT
from orderflow.registry import Registry

SECOND_BILLING = """
[[department]]
department = "billing"
name = "Billing (shadow)"
notify_email = "billing@orderflow.local"
supervisor = "Eve"
supervisor_email = "eve@elsewhere.example"
hold_sla = "1s"
[department.reason_codes]
arrears = "an unpaid balance"
"""
NO_REASONS = """
[[department]]
department = "intern"
name = "Interns"
notify_email = "interns@orderflow.local"
supervisor = "Nobody"
supervisor_email = "nobody@orderflow.local"
hold_sla = "24h"
[department.reason_codes]
"""
EMPTY_REASON = NO_REASONS.replace(
    "[department.reason_codes]\n", '[department.reason_codes]\nwhim = " "\n'
)
SECOND_CUSTOMER = """
[[customer]]
customer_id = "C-1001"
name = "Someone Else"
email = "someone@example.com"
address = "1 Other Street"
"""


@pytest.mark.parametrize(
    ("file", "append", "replace", "says"),
    [
        (
            "departments.toml",
            SECOND_BILLING,
            None,
            "department #7 (billing): department: 'billing' is defined twice",
        ),
        (
            "departments.toml",
            NO_REASONS,
            None,
            "department #7 (intern): reason_codes: a department needs at least one reason code",
        ),
        (
            "departments.toml",
            EMPTY_REASON,
            None,
            "department #7 (intern): reason_codes.whim: needs the words",
        ),
        (
            "departments.toml",
            "",
            ('notify_email = "billing@orderflow.local"', 'notify_email = "not-an-email"'),
            "department #1 (billing): notify_email: 'not-an-email' is not an e-mail address",
        ),
        (
            "departments.toml",
            "",
            ('hold_sla = "24h"', 'hold_sla = "24h"\nhold_slaa = "1s"'),
            "department #1 (billing): hold_slaa: unknown key",
        ),
        (
            "customers.toml",
            SECOND_CUSTOMER,
            None,
            "customer #6 (C-1001): customer_id: 'C-1001' is defined twice",
        ),
        (
            "customers.toml",
            "",
            ('email = "maria.lopez@example.com"', 'email = "maria.lopez"'),
            "customer #1 (C-1001): email: 'maria.lopez' is not an e-mail address",
        ),
        (
            "catalog.toml",
            "",
            ("price = 699.00", "price = 699.00\nprise = 1"),
            "sku #1 (PHONE-X12): prise: unknown key",
        ),
        (
            "carriers.toml",
            '\n[[carrier]]\ncarrier_id = "ups"\nname = "Fake UPS"\n',
            None,
            "carrier #4 (ups): carrier_id: 'ups' is defined twice",
        ),
    ],
    ids=[
        "second-billing",
        "no-reasons",
        "empty-reason",
        "bad-email",
        "unknown-key",
        "dup-customer",
        "customer-email",
        "catalog-typo",
        "dup-carrier",
    ],
)
def test_a_bad_seed_file_is_refused_naming_file_entry_and_field(
    tmp_path: Path, file: str, append: str, replace: tuple[str, str] | None, says: str
) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(PROJECT_ROOT / "seeds", seeds)
    text = (seeds / file).read_text()
    if replace:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1], 1)
    (seeds / file).write_text(text + append)
    with pytest.raises(InvalidInput) as refused:
        Registry(seeds).validate_all()
    assert f"seed file {seeds / file}, {says}" in str(refused.value)


def test_the_shipped_seeds_load() -> None:
    registry = Registry(PROJECT_ROOT / "seeds")
    registry.validate_all()
    assert registry.department("billing").supervisor == "Dana Reyes"
