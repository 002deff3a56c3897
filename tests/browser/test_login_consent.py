"""Login and consent in headless Chromium against the real server: the authorization code flow as a
person clicks through it (RFC 6749 §4.1, RFC 7636, RFC 9207, OIDC Core §3.1.2), with the redirect
to the native app's loopback redirect URI (RFC 8252 §7.3) caught by a real local HTTP server."""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

import pytest
from browserkit import (
    Person,
    Recorder,
    Sites,
    Started,
    decide,
    on_consent_page,
    on_login_page,
    sign_in,
    start_authorization,
)
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import BrowserContext, Page, expect
from support.flow import query_of
from support.server import Server

pytestmark = [pytest.mark.login, pytest.mark.consent]

SESSION_COOKIE = "__Host-fg_session"


def redeem(server: Server, started: Started, code: str, client_id: str = "demo-native") -> dict:
    """Exchange the code at /token with PKCE (RFC 6749 §4.1.3, RFC 7636 §4.5), outside the browser."""
    with server.client() as http:
        resp = http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": started.redirect_uri,
                "client_id": client_id,
                "code_verifier": started.verifier,
            },
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        keys = KeySet.import_key_set(http.get("/jwks").json())
    body["id_claims"] = jwt.decode(body["id_token"], keys).claims if "id_token" in body else {}
    return body


@pytest.fixture(scope="module")
def verified_native(server: Server) -> str:
    """A native app an operator verified (RFC 8252 §8.6): its identity is assured, so a remembered
    consent lets a returning user go straight back, as for any client whose identity is assured."""
    return server.add_client(
        "--name",
        "Verified Mobile App",
        "--profile",
        "native",
        "--verified",
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--scope",
        "openid profile email",
    )["client_id"]


def sign_in_and_allow(
    page: Page,
    sites: Sites,
    person: Person,
    scope: str = "openid profile email",
    client_id: str = "demo-native",
    **extra: str,
) -> tuple[Started, dict]:
    started = start_authorization(page, sites.callback(), client_id, scope=scope, **extra)
    assert on_login_page(page)
    sign_in(page, person)
    assert on_consent_page(page)
    return started, decide(page, "Allow", started.redirect_uri)


def test_login_consent_allow_sends_code_state_iss_to_redirect_uri(
    server: Server, page: Page, sites: Sites, recorder: Recorder, person: Person
) -> None:
    """RFC 6749 §4.1.2 (code and state), RFC 9207 §2 (iss), RFC 8252 §7.3 (loopback redirect, any port)."""
    started = start_authorization(
        page, sites.callback(), scope="openid profile email accounts", nonce="n-" + secrets.token_hex(4)
    )
    # The login page: the fields other clients and tests rely on, labelled, and who is asking.
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.locator('input[name="username"]')).to_have_accessible_name("Username")
    expect(page.locator('input[name="password"]')).to_have_attribute("type", "password")
    expect(page.get_by_role("main")).to_contain_text("Fingrade Demo Mobile App")
    expect(page.get_by_role("alert")).to_have_count(0)
    sign_in(page, person)

    # The consent page names the client and says in plain words what it may do.
    expect(page.get_by_role("heading", level=1)).to_have_text("Allow Fingrade Demo Mobile App to access your bank?")
    permissions = page.get_by_role("list", name="Permissions Fingrade Demo Mobile App asks for").get_by_role("listitem")
    expect(permissions).to_have_count(4)
    for words in ("Confirm who you are", "See your name", "See your email address", "See your accounts"):
        expect(permissions.filter(has_text=words)).to_have_count(1)
    expect(permissions.filter(has_text="openid")).to_have_count(0)  # words, not raw scope names
    expect(permissions.filter(has_text="Permission:")).to_have_count(0)  # (the fallback for unknown scopes)
    expect(page.get_by_role("main")).to_contain_text(f"Signed in as {person.name}.")
    expect(page.locator('button[name="decision"][value="approve"]')).to_have_text("Allow")
    expect(page.locator('button[name="decision"][value="deny"]')).to_have_text("Deny")

    params = decide(page, "Allow", started.redirect_uri)
    assert params["state"] == started.state
    assert params["iss"] == server.issuer
    assert len(params["code"]) >= 43 and set(params) == {"code", "state", "iss"}
    # The app's own HTTP server received exactly this response, once.
    hits = [h for h in sites.hits("/callback") if h.query.get("state") == started.state]
    assert [h.query for h in hits] == [params]

    tokens = redeem(server, started, params["code"])
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "openid profile email accounts"
    assert tokens["id_claims"]["aud"] == "demo-native"

    # RFC 9700 §4.12: every redirect after a credential POST is a 303, never a 307.
    posts = recorder.find("POST", "/interaction/")
    assert [urlsplit(r.url).path.rsplit("/", 1)[1] for r in posts] == ["login", "consent"]
    assert all(r.status == 303 for r in posts), [(r.url, r.status) for r in posts]
    assert not [r for r in recorder.responses if r.status in (301, 302, 307, 308)]


def test_oidc_core_11_stay_connected_is_asked_exactly_when_a_refresh_token_follows(
    server: Server, page: Page, sites: Sites, person: Person
) -> None:
    """OIDC Core §11: a refresh token keeps the app connected while the customer is away; the consent
    page lists "Stay connected" when (and only when) one will be issued, and the customer approves it."""
    for scope, stays in (("openid profile", False), ("openid profile offline_access", True)):
        started = start_authorization(page, sites.callback(), scope=scope, prompt="login")
        sign_in(page, person)
        permissions = page.get_by_role("list", name="Permissions Fingrade Demo Mobile App asks for")
        expect(permissions.get_by_role("listitem").filter(has_text="Stay connected")).to_have_count(int(stays))
        params = decide(page, "Allow", started.redirect_uri)
        assert ("refresh_token" in redeem(server, started, params["code"])) is stays, scope


def test_deny_sends_access_denied_with_state_and_iss(
    server: Server, page: Page, sites: Sites, recorder: Recorder, person: Person
) -> None:
    """RFC 6749 §4.1.2.1 (access_denied, state), RFC 9207 §2 (iss on errors too)."""
    started = start_authorization(page, sites.callback())
    sign_in(page, person)
    params = decide(page, "Deny", started.redirect_uri)
    assert params["error"] == "access_denied"
    assert params["state"] == started.state and params["iss"] == server.issuer
    assert "code" not in params
    consent_post = recorder.find("POST", "/interaction/")[-1]
    assert consent_post.url.endswith("/consent") and consent_post.status == 303  # RFC 9700 §4.12


def test_code_from_the_browser_redeems_once(server: Server, page: Page, sites: Sites, person: Person) -> None:
    """RFC 6749 §4.1.2 / §10.5: the code redeems at /token once; an attempt by anyone else (another
    verifier) is invalid_grant. (The client's own retry gets its lost answer: test_token_retry.py.)"""
    started, params = sign_in_and_allow(page, sites, person)
    tokens = redeem(server, started, params["code"])
    assert tokens["access_token"] and tokens["id_claims"]["sub"]
    with server.client() as http:
        again = http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": started.redirect_uri,
                "client_id": "demo-native",
                "code_verifier": secrets.token_urlsafe(48),
            },
        )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_wrong_password_shows_an_alert_with_401(page: Page, sites: Sites, recorder: Recorder, person: Person) -> None:
    """A failed login is reported accessibly (role=alert tied to the fields) with 401."""
    start_authorization(page, sites.callback())
    page.get_by_label("Username").fill(person.username)
    page.get_by_label("Password").fill("not-" + person.password)
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/login")) as info:
        page.get_by_role("button", name="Sign in").click()
    assert info.value.status == 401
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("The username or password is not correct.")
    expect(page).to_have_title("Error: Sign in · Fingrade Bank")
    password = page.get_by_label("Password")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_accessible_description("The username or password is not correct.")
    expect(password).to_have_value("")  # never echoed back
    expect(page.get_by_label("Username")).to_have_value(person.username)
    expect(password).to_be_focused()
    # The form still works: the right password goes on to consent.
    sign_in(page, person)
    assert on_consent_page(page)


def test_repeated_failures_are_throttled_with_429(server: Server, page: Page, sites: Sites, person: Person) -> None:
    """Failed logins throttled per account; RFC 6585 §4 (429). A user of its own,
    so the lock-out does not touch the demo users other tests sign in with."""
    start_authorization(page, sites.callback())

    def attempt(pw: str) -> int:
        page.get_by_label("Username").fill(person.username)
        page.get_by_label("Password").fill(pw)
        with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/login")) as info:
            page.get_by_role("button", name="Sign in").click()
        return info.value.status

    statuses = [attempt("wrong-" + str(i)) for i in range(5)]
    assert statuses == [401] * 5
    # Now even the right password is refused until the window passes.
    assert attempt(person.password) == 429
    # The page says how long (the first wait of the back-off, login_backoff_seconds).
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(
            r"Too many failed attempts\. Wait \d+ seconds and "
            r"try again\."
        )
    )
    assert not [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]


def test_session_cookie_is_secure_httponly_samesite_lax(
    page: Page, context: BrowserContext, sites: Sites, recorder: Recorder, person: Person
) -> None:
    """RFC 6265 §4.1.2.5 (Secure), §4.1.2.6 (HttpOnly), RFC 6265bis §4.1.2.7 (SameSite=Lax) and the
    __Host- prefix (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain), as the browser stored them."""
    start_authorization(page, sites.callback())
    sign_in(page, person)
    cookies = {c["name"]: c for c in context.cookies()}
    assert SESSION_COOKIE in cookies
    for name in (SESSION_COOKIE, "__Host-fg_browser", "__Host-fg_device"):
        c = cookies[name]
        assert (c["secure"], c["httpOnly"], c["sameSite"], c["path"]) == (True, True, "Lax", "/"), c
    raw = recorder.find("POST", "/interaction/")[0].all_headers()["set-cookie"].lower()
    assert "domain=" not in raw
    # HttpOnly, seen from the page itself: scripts cannot read either cookie.
    assert page.evaluate("document.cookie") == ""


def test_returning_user_goes_straight_back_without_a_page(
    server: Server, page: Page, sites: Sites, recorder: Recorder, person: Person, verified_native: str
) -> None:
    """Remembered consent per user, client and scopes; OIDC Core §3.1.2.6 (prompt=none with a
    session and consent issues a code without any page), for a client whose identity is assured."""
    sign_in_and_allow(page, sites, person, client_id=verified_native)
    for extra in ({}, {"prompt": "none"}):
        seen = len(recorder.responses)
        again = start_authorization(page, sites.callback(), verified_native, **extra)
        page.wait_for_url(again.redirect_uri + "?**")
        params = query_of(page.url)
        assert params["state"] == again.state and params["iss"] == server.issuer and params["code"]
        assert not [r for r in recorder.responses[seen:] if "/interaction/" in r.url], "a page was shown"
        assert redeem(server, again, params["code"], verified_native)["access_token"]
    # More scopes than were granted: consent is asked again for the new set.
    start_authorization(page, sites.callback(), "demo-native", scope="openid profile email payments")
    assert on_consent_page(page)
    expect(page.get_by_role("main")).to_contain_text("Prepare payments")


def test_rfc8252_8_6_returning_user_of_a_native_app_confirms_every_time(
    server: Server, page: Page, sites: Sites, person: Person
) -> None:
    """RFC 8252 §8.6: demo-native's loopback redirect cannot prove which app is asking, so the signed-in
    user who approved these scopes before is asked again (the page says to continue only from the
    app), and prompt=none gets consent_required (OIDC Core §3.1.2.6) instead of a code."""
    sign_in_and_allow(page, sites, person)
    again = start_authorization(page, sites.callback())
    assert on_consent_page(page) and not on_login_page(page)
    expect(page.locator("#confirm-app")).to_contain_text(
        "Only continue if you started this in Fingrade Demo Mobile App"
    )
    params = decide(page, "Allow", again.redirect_uri)
    assert params["state"] == again.state and params["code"]
    silent = start_authorization(page, sites.callback(), prompt="none")
    page.wait_for_url(silent.redirect_uri + "?**")
    params = query_of(page.url)
    assert params["error"] == "consent_required" and "code" not in params and params["state"] == silent.state


def session_cookie(context: BrowserContext) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE)


def test_prompt_login_shows_the_login_page_again(
    server: Server, context: BrowserContext, page: Page, sites: Sites, person: Person, verified_native: str
) -> None:
    """OIDC Core §3.1.2.1 prompt=login: re-authenticate even with a session. The new login makes a new
    session, and the ID token carries its auth_time."""
    first, first_params = sign_in_and_allow(page, sites, person, client_id=verified_native)
    first_auth_time = redeem(server, first, first_params["code"], verified_native)["id_claims"]["auth_time"]
    old_session = session_cookie(context)
    started = start_authorization(page, sites.callback(), verified_native, prompt="login")
    assert on_login_page(page)
    sign_in(page, person)
    page.wait_for_url(started.redirect_uri + "?**")  # consent is remembered: straight back
    params = query_of(page.url)
    assert params["state"] == started.state and params["code"]
    assert session_cookie(context) != old_session
    assert redeem(server, started, params["code"], verified_native)["id_claims"]["auth_time"] >= first_auth_time


def test_max_age_zero_forces_login(
    server: Server, context: BrowserContext, page: Page, sites: Sites, person: Person, verified_native: str
) -> None:
    """OIDC Core §3.1.2.1 max_age: "max_age=0 is equivalent to prompt=login", even in the same second as
    the last login; the ID token then carries auth_time."""
    sign_in_and_allow(page, sites, person, client_id=verified_native)
    old_session = session_cookie(context)
    started = start_authorization(page, sites.callback(), verified_native, max_age="0")
    assert on_login_page(page), page.url
    sign_in(page, person)
    page.wait_for_url(started.redirect_uri + "?**")
    params = query_of(page.url)
    assert session_cookie(context) != old_session
    claims = redeem(server, started, params["code"], verified_native)["id_claims"]
    assert isinstance(claims["auth_time"], int)


def test_prompt_consent_shows_consent_again(page: Page, sites: Sites, person: Person) -> None:
    """OIDC Core §3.1.2.1 prompt=consent: ask for consent even though it is remembered."""
    sign_in_and_allow(page, sites, person)
    started = start_authorization(page, sites.callback(), prompt="consent")
    assert on_consent_page(page) and not on_login_page(page)
    params = decide(page, "Allow", started.redirect_uri)
    assert params["code"] and params["state"] == started.state


def test_prompt_none_without_session_redirects_login_required(
    server: Server, page: Page, sites: Sites, recorder: Recorder
) -> None:
    """OIDC Core §3.1.2.6: prompt=none and nobody signed in -> login_required, with state and iss
    (RFC 9207 §2), and no page shown."""
    started = start_authorization(page, sites.callback(), prompt="none")
    page.wait_for_url(started.redirect_uri + "?**")
    params = query_of(page.url)
    assert params["error"] == "login_required"
    assert params["state"] == started.state and params["iss"] == server.issuer and "code" not in params
    assert not [r for r in recorder.responses if "/interaction/" in r.url]
    assert recorder.find("GET", "/authorize")[0].status == 303
