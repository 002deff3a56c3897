"""The customer's connected-apps page in Chromium: a fintech gets a DPoP-bound token
through PAR, login and consent; the customer opens /account/connections, sees the app and what it may
do, clicks Revoke, and the bank API refuses the token (within its introspection cache time)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from browserkit import fintech_connects
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.bank import Fintech, account_information
from support.server import Server
from test_pages import CONTRAST_JS

pytestmark = [pytest.mark.consent, pytest.mark.revocation]


@pytest.fixture(scope="module")
def fintech(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(server, tmp_path_factory.mktemp("browser-dash-fintech"))


@pytest.fixture
def context(chromium: Browser, server: Server) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(
        ignore_https_errors=True, base_url=server.base_url, viewport={"width": 320, "height": 640}
    )
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


def share_first_account_only(page: Page) -> None:
    boxes = page.get_by_role("group", name="Which accounts may").get_by_role("checkbox")
    assert boxes.count() >= 2
    for i in range(1, boxes.count()):
        boxes.nth(i).uncheck()


def test_dashboard_revoke_in_chromium_then_bank_api_401(
    context: BrowserContext, fintech: Fintech, server: Server
) -> None:
    page = context.new_page()
    # A demo customer (she has accounts to choose from) shares only her first account.
    token = fintech_connects(
        page, fintech, [account_information()], "openid accounts", choose=share_first_account_only
    )["access_token"]
    with server.client() as http:
        shared = fintech.get(http, "/accounts", token)
        assert shared.status_code == 200 and len(shared.json()["Data"]["Account"]) == 1  # only the chosen one

        page.goto("/account/connections")
        expect(page.get_by_role("heading", level=1)).to_have_text("Connected apps")
        name = f"Fintech {fintech.client.key.kid}"
        expect(page.get_by_role("heading", level=2, name=name)).to_be_visible()
        allowed = page.get_by_role("list", name=f"What {name} may do")
        expect(allowed).to_contain_text("balances and transactions of these accounts: ")
        expect(allowed).to_contain_text("Until ")
        # Readable on a 320 px phone, AA contrast, no script.
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        low = [c for c in page.evaluate(CONTRAST_JS) if c["ratio"] < c["need"]]
        assert not low, low
        assert page.locator("script").count() == 0

        with page.expect_navigation():
            page.get_by_role("button", name=f"Revoke access of {name}").click()
        expect(page.get_by_role("status")).to_contain_text(f"{name} can no longer access your bank")
        expect(page.get_by_role("heading", level=2, name=name)).to_have_count(0)

        # The bank asks the AS again once its positive introspection cache (default 2 s) lapses.
        deadline = time.monotonic() + 5
        while (resp := fintech.get(http, "/accounts", token)).status_code != 401:
            assert resp.status_code == 200, resp.text
            assert time.monotonic() < deadline, "the bank still accepts the revoked token"
            time.sleep(0.25)
        assert resp.json()["error"] == "invalid_token"
