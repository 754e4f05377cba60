"""The Temporal Web UI of `orderflow dev` shows a delivery's decoded input (the customer's address)
to a browser signed in as staff at orderflow's listener, and only encrypted payloads otherwise.
Driven in Debian's Chromium through Playwright (`make test` installs Chromium when missing)."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from orderflow.registry import Registry
from tests.conftest import SEEDS
from tests.e2e.conftest import Cli

CUSTOMER = Registry(SEEDS).customers["C-1001"]


def use_codec_endpoint(page: Page, ui: str, endpoint: str) -> None:
    """What a person does once in the UI's Data Encoder settings: "Use my browser setting",
    the endpoint, and "Include cross-origin credentials" (the UI keeps them in its
    localStorage; a dev server's UI cannot be told to send credentials any other way)."""
    page.goto(f"{ui}/namespaces/default/workflows")
    page.evaluate(
        """([endpoint]) => {
            localStorage.setItem('overrideRemoteCodecConfiguration', 'true');
            localStorage.setItem('endpoint', JSON.stringify(endpoint));
            localStorage.setItem('includeCredentials', 'true');
        }""",
        [endpoint],
    )


def test_the_temporal_ui_shows_decoded_payloads_to_signed_in_staff_only(
    cli: Cli, browser: Browser
) -> None:
    cli.run(
        "order", "place", "--customer", "C-1001", "--sku", "PHONE-A5",
        "--location", "warehouse-north", "--order-id", "E2E-UI",
    )  # fmt: skip
    cli.until(("order", "show", "E2E-UI"), lambda v: v["deliveries"])
    web = f"http://localhost:{cli.env['ORDERFLOW_WEB_PORT']}"
    ui = f"http://localhost:{cli.ui_port}"
    workflow = f"{ui}/namespaces/default/workflows/delivery-E2E-UI-1"

    # Not signed in: the UI asks the codec endpoint, is refused, and shows no customer data.
    anonymous = browser.new_context()
    page = anonymous.new_page()
    use_codec_endpoint(page, ui, f"{web}/codec")
    with page.expect_response(lambda r: "/codec/decode" in r.url, timeout=30_000) as asked:
        page.goto(workflow)
    assert asked.value.status == 401
    expect(page.locator("body")).to_contain_text("Input", timeout=30_000)
    page.wait_for_timeout(1_000)
    assert CUSTOMER.address not in page.inner_text("body")
    anonymous.close()

    # Signed in as staff at the listener: the same page shows the delivery's address.
    staff = browser.new_context()
    page = staff.new_page()
    page.goto(f"{web}/signin")
    page.get_by_label("Token").fill(cli.run("token", "--as", "staff:operator").stdout.strip())
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as staff:operator")).to_be_visible()
    use_codec_endpoint(page, ui, f"{web}/codec")
    with page.expect_response(lambda r: "/codec/decode" in r.url, timeout=30_000) as asked:
        page.goto(workflow)
    assert asked.value.status == 200
    expect(page.locator("body")).to_contain_text(CUSTOMER.address, timeout=30_000)
    assert CUSTOMER.gps in page.inner_text("body")
    staff.close()
