"""The consent page for a rich authorization request (RFC 9396 §3; FAPI informed consent): a
payment in plain words, escaped, readable on a 320 px phone and with AA contrast."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest
from browserkit import ALICE, Person, on_consent_page, sign_in, start_authorization
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.server import Server
from test_pages import CONTRAST_JS

pytestmark = [pytest.mark.rar, pytest.mark.consent, pytest.mark.payments]

BACKEND_REDIRECT = "https://localhost:9443/callback"  # demo-backend; the test stops at the consent page
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "1250.00"},
    "creditorName": "Acme Ltd <b>Trading</b>",
    "creditorAccount": {"iban": "GB33BUKB20201555555555"},
    "remittanceInformationUnstructured": "Invoice 123",
}


@pytest.fixture
def page(chromium: Browser, server: Server) -> Iterator[Callable[..., Page]]:
    made: list[BrowserContext] = []

    def make(**kw: object) -> Page:
        ctx = chromium.new_context(ignore_https_errors=True, base_url=server.base_url, **kw)
        ctx.set_default_timeout(10_000)
        made.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in made:
        ctx.close()


def to_payment_consent(page: Page, person: Person) -> None:
    start_authorization(
        page, BACKEND_REDIRECT, client_id="demo-backend", scope="openid", authorization_details=json.dumps([PAYMENT])
    )
    sign_in(page, person)
    assert on_consent_page(page)


def test_rfc9396_s3_payment_consent_in_plain_words(page: Callable[..., Page]) -> None:
    """RFC 9396 §3: the customer sees the amount, payee, account and reference, as text (escaped).
    (A customer with an account that can pay: without one the payment cannot be approved, below.)"""
    p = page()
    to_payment_consent(p, ALICE)
    details = p.get_by_role("list", name="What Fingrade Demo Fintech asks you to approve")
    expect(details).to_contain_text("Pay €1,250.00 to Acme Ltd <b>Trading</b>")
    expect(details).to_contain_text("To account GB33 BUKB 2020 1555 5555 55")
    expect(details).to_contain_text("Reference: “Invoice 123”")
    assert p.locator("main b").count() == 0  # the markup in the creditor name stayed text


def test_rfc9396_s3_payment_consent_reflows_at_320_px_with_aa_contrast(page: Callable[..., Page]) -> None:
    """WCAG 2.2 SC 1.4.10 (no horizontal scrolling at 320 CSS px) and SC 1.4.3 (contrast)."""
    p = page(viewport={"width": 320, "height": 640})
    to_payment_consent(p, ALICE)
    assert p.evaluate("document.documentElement.scrollWidth") <= 320
    low = [c for c in p.evaluate(CONTRAST_JS) if c["ratio"] < c["need"]]
    assert not low, low


def test_payer_choice_is_labelled_and_reflows_at_320_px(page: Callable[..., Page]) -> None:
    """Account selection at consent: the payer accounts as a named radio group, each labelled, one
    chosen at first; readable at 320 px with AA contrast (WCAG 2.2 SC 1.3.1, 1.4.3, 1.4.10)."""
    p = page(viewport={"width": 320, "height": 640})
    to_payment_consent(p, ALICE)  # a demo customer with EUR accounts
    group = p.get_by_role("group", name="Pay from which account?")
    radios = group.get_by_role("radio")
    assert radios.count() >= 1
    expect(radios.first).to_be_checked()
    for i in range(radios.count()):
        expect(radios.nth(i)).not_to_have_accessible_name("")
        expect(radios.nth(i)).to_have_accessible_name(re.compile(r"\(EUR\)$"))
    assert p.evaluate("document.documentElement.scrollWidth") <= 320
    low = [c for c in p.evaluate(CONTRAST_JS) if c["ratio"] < c["need"]]
    assert not low, low


def test_a_payment_no_account_can_make_offers_no_allow(page: Callable[..., Page]) -> None:
    """A payment none of the customer's accounts can make (alice has no GBP account): the page says
    why in an alert, offers no Allow button — only Deny — and reflows at 320 px (WCAG 2.2 SC 4.1.3,
    1.4.10)."""
    p = page(viewport={"width": 320, "height": 640})
    gbp = {**PAYMENT, "instructedAmount": {"currency": "GBP", "amount": "5.00"}}
    start_authorization(
        p, BACKEND_REDIRECT, client_id="demo-backend", scope="openid", authorization_details=json.dumps([gbp])
    )
    sign_in(p, ALICE)
    expect(p.get_by_role("alert")).to_contain_text("This payment cannot be approved")
    expect(p.get_by_role("button", name="Allow")).to_have_count(0)
    expect(p.get_by_role("button", name="Deny")).to_be_visible()
    expect(p.get_by_role("radio")).to_have_count(0)
    assert p.evaluate("document.documentElement.scrollWidth") <= 320
