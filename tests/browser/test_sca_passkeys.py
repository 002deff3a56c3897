"""Passkeys in headless Chromium against a server with strong customer authentication required: a
virtual authenticator (Chrome DevTools Protocol, WebAuthn domain) with resident keys and user
verification stands in for the customer's phone. A passkey created at the enrolment step, then used
as the first step on the login page (no password), as the second factor after a password, and to
confirm a payment, whose grant is bound to the payment's details (dynamic linking)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from browserkit import ALICE, Person, Sites, decide, on_consent_page, on_login_page, sign_in, start_authorization
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, Playwright, expect, sync_playwright
from support.flow import query_of
from support.server import DEMO_PASSWORD, DEMO_SECRET, Server, dedicated_server
from test_login_consent import redeem

from fingrade.finance.dynamic_linking import details_hash

pytestmark = [pytest.mark.sca, pytest.mark.login, pytest.mark.payments]

ACR_SCA = "urn:fingrade:acr:sca"
BACKEND_REDIRECT = "https://localhost:9443/callback"  # demo-backend's; answered by a stub route
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "25.00"},
    "creditorName": "Acme Ltd",
    "creditorAccount": {"iban": "GB33BUKB20201555555555"},
    "remittanceInformationUnstructured": "Invoice 123",
}


def _alice_without_an_app(env: dict[str, str]) -> None:
    """alice made before the demo data: the demo seeds her bank accounts, not its authenticator app
    (that comes only with the users it creates), so she is taken through enrolment."""
    subprocess.run(
        [sys.executable, "-m", "fingrade.cli", "users", "add", "alice", "--name", ALICE.name, "--password-stdin"],
        env=env,
        input=DEMO_PASSWORD + "\n",
        text=True,
        capture_output=True,
        check=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def sca(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own with `sca = required` (the shared one runs with it off)."""
    with dedicated_server(
        tmp_path_factory.mktemp(f"sca-passkeys-{server.backend}"),
        server.backend,
        {"FINGRADE_SCA": "required"},
        prepare=_alice_without_an_app,
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def playwright_driver(sca: Server) -> Iterator[Playwright]:
    # This module's server first: its PostgreSQL database is made with asyncio.run(), which fails
    # once Playwright's sync API runs its event loop in this thread (tests/browser/conftest.py).
    with sync_playwright() as p:
        yield p


@pytest.fixture
def context(chromium: Browser, sca: Server) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(ignore_https_errors=True, base_url=sca.base_url)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


class VirtualPasskeys:
    """A platform authenticator in the page's tab (CDP WebAuthn.addVirtualAuthenticator): CTAP 2,
    internal transport, resident keys, user verification that always succeeds."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.cdp: CDPSession = context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        options = {
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": True,
            "hasUserVerification": True,
            "isUserVerified": True,
        }
        self.id = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]

    def credentials(self) -> list[dict[str, Any]]:
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})["credentials"]


def _new_customer(srv: Server) -> Person:
    tag = secrets.token_hex(4)
    person = Person("pk-" + tag, "pw-" + secrets.token_urlsafe(12), "Pat Passkey " + tag.upper())
    srv.cli("users", "add", person.username, "--name", person.name, "--password-stdin", input=person.password + "\n")
    return person


def _to_consent_or_back(page: Page, redirect_uri: str) -> dict[str, str]:
    """After a sign-in: Allow on the consent page (an app whose identity is not assured asks again)."""
    page.wait_for_load_state()
    expect(page.locator('button[name="decision"][value="approve"]')).to_be_visible()
    assert on_consent_page(page)
    return decide(page, "Allow", redirect_uri)


def _sign_out(page: Page) -> None:
    page.goto("/logout")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Signed out")).to_be_visible()


def test_passkey_enrolled_then_used_first_and_as_second_factor(
    context: BrowserContext, page: Page, sca: Server, sites: Sites, tmp_path: Any
) -> None:
    """W3C WebAuthn §7.1 (registration with a resident key and user verification) and §7.2
    (authentication): enrolled at sign-in, the passkey then signs the customer in alone from the
    login page (a discoverable credential, §5.4.6) with acr SCA and amr hwk/swk + user + mfa, and
    serves as the second factor after a password."""
    passkeys = VirtualPasskeys(context, page)
    person = _new_customer(sca)
    callback = sites.callback()

    # Password, then the enrolment step: "Create a passkey" first, the authenticator app below it.
    started = start_authorization(page, callback, scope="openid profile")
    assert on_login_page(page), page.content()
    expect(page.get_by_role("button", name="Use a passkey")).to_be_visible()
    sign_in(page, person)
    expect(page.get_by_role("heading", name="Set up a second step")).to_be_visible()
    page.get_by_role("button", name="Create a passkey").click()
    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    made = passkeys.credentials()
    assert len(made) == 1 and made[0]["isResidentCredential"] and made[0]["rpId"] == "localhost"
    assert page.locator(".recovery-codes li").count() >= 8
    page.get_by_role("link", name="I have saved them, continue").click()
    first = redeem(sca, started, _to_consent_or_back(page, callback)["code"])["id_claims"]
    assert first["acr"] == ACR_SCA
    assert first["amr"][0] == "pwd" and {"user", "mfa"} <= set(first["amr"])

    # Signed out, back with the passkey alone: no username, no password.
    _sign_out(page)
    started = start_authorization(page, callback, scope="openid profile")
    assert on_login_page(page)
    page.get_by_role("button", name="Use a passkey").click()
    claims = redeem(sca, started, _to_consent_or_back(page, callback)["code"])["id_claims"]
    assert claims["acr"] == ACR_SCA
    assert {"user", "mfa"} <= set(claims["amr"]) and "pwd" not in claims["amr"]
    assert claims["amr"][0] in ("hwk", "swk")
    assert claims["sub"] == first["sub"]

    # Signed out, back with the password: the passkey is offered first at the second step.
    _sign_out(page)
    started = start_authorization(page, callback, scope="openid profile")
    sign_in(page, person)
    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    expect(page.get_by_role("button", name="Use a passkey")).to_be_visible()
    expect(page.get_by_label("Code from your authenticator app")).to_be_visible()  # the fallback stays
    page.screenshot(path=tmp_path / "second-factor-passkey.png")
    page.get_by_role("button", name="Use a passkey").click()
    claims = redeem(sca, started, _to_consent_or_back(page, callback)["code"])["id_claims"]
    assert claims["acr"] == ACR_SCA and claims["amr"][0] == "pwd" and {"user", "mfa"} <= set(claims["amr"])


def test_passkey_pages_allow_only_our_own_script(page: Page, sca: Server, sites: Sites) -> None:
    """The login page runs one script, ours (CSP script-src 'self'); no inline script, no other
    origin. Without WebAuthn the passkey button stays hidden and the page says why."""
    start_authorization(page, sites.callback(), scope="openid")
    assert on_login_page(page)
    served = page.goto(page.url)  # the page's own headers, as served
    assert served is not None
    csp = served.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.locator("script:not([src])").count() == 0
    assert page.locator("script[src]").evaluate_all("s => s.map(e => new URL(e.src).pathname)") == [
        "/static/passkey.js"
    ]


def test_passkey_button_hidden_and_explained_without_webauthn(chromium: Browser, sca: Server, sites: Sites) -> None:
    """Progressive enhancement: without `PublicKeyCredential` the passkey form stays hidden, a note
    says so, and the password form works as before."""
    ctx = chromium.new_context(ignore_https_errors=True, base_url=sca.base_url)
    try:
        ctx.add_init_script("delete window.PublicKeyCredential;")
        page = ctx.new_page()
        start_authorization(page, sites.callback(), scope="openid")
        assert on_login_page(page)
        expect(page.get_by_text("This browser cannot use passkeys.")).to_be_visible()
        expect(page.get_by_role("button", name="Use a passkey")).to_be_hidden()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    finally:
        ctx.close()


def test_cancelled_passkey_shows_a_message_and_the_password_still_works(
    context: BrowserContext, page: Page, sca: Server, sites: Sites
) -> None:
    """A customer who cancels (or whose authenticator has no passkey for this site: NotAllowedError,
    W3C WebAuthn §6.3.3 step 2) sees a message on the page and nothing is submitted."""
    passkeys = VirtualPasskeys(context, page)  # an empty authenticator: nothing to offer
    assert passkeys.credentials() == []
    start_authorization(page, sites.callback(), scope="openid")
    assert on_login_page(page)
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.get_by_role("alert")).to_contain_text("cancelled or timed out", timeout=20_000)
    assert on_login_page(page)
    sign_in(page, _new_customer(sca))
    expect(page.get_by_role("heading", name="Set up a second step")).to_be_visible()


def test_payment_confirmed_with_a_passkey_is_linked_to_the_payment(
    context: BrowserContext, page: Page, sca: Server
) -> None:
    """PSD2 RTS Art. 5 (dynamic linking) with W3C WebAuthn §13.4.3: the page shows the amount and
    payee, the passkey's challenge commits to the payment's details, and the access token carries
    the details hash of exactly the payment approved. A passkey with user verification is both
    elements, so no password or code is asked at the confirmation."""
    VirtualPasskeys(context, page)
    started = start_authorization(
        page, BACKEND_REDIRECT, client_id="demo-backend", scope="openid", authorization_details=json.dumps([PAYMENT])
    )
    sign_in(page, ALICE)
    assert on_consent_page(page)
    page.get_by_role("button", name="Allow").click()
    # alice has no second factor yet: the payment's confirmation starts with enrolment.
    expect(page.get_by_role("heading", name="Set up a second step")).to_be_visible()
    page.get_by_role("button", name="Create a passkey").click()
    page.get_by_role("link", name="I have saved them, continue").click()
    expect(page.get_by_role("heading", name="Confirm your payment")).to_be_visible()
    expect(page.locator(".payment-confirmation")).to_have_text("Confirm €25.00 to Acme Ltd")
    # Nothing listens at demo-backend's redirect URI: the browser's request to it carries the answer.
    with page.expect_request(lambda r: r.url.startswith(BACKEND_REDIRECT + "?")) as sent:
        page.get_by_role("button", name="Confirm payment with a passkey").click()
    back = query_of(sent.value.url)
    assert back["state"] == query_of(started.url)["state"]
    with sca.client() as http:
        resp = http.post(
            "/token",
            auth=("demo-backend", DEMO_SECRET),
            data={
                "grant_type": "authorization_code",
                "code": back["code"],
                "redirect_uri": BACKEND_REDIRECT,
                "code_verifier": started.verifier,
            },
        )
        assert resp.status_code == 200, resp.text
        keys = KeySet.import_key_set(http.get("/jwks").json())
    body = resp.json()
    access = jwt.decode(body["access_token"], keys).claims
    assert access["linked_details_hash"] == details_hash(body["authorization_details"])
    assert access["acr"] == ACR_SCA and {"user", "mfa"} <= set(access["amr"])
    [approved] = body["authorization_details"]
    assert approved["instructedAmount"] == PAYMENT["instructedAmount"] and approved["creditorName"] == "Acme Ltd"
