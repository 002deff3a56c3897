"""The customer's own pages with strong customer authentication (docs/sca.md), on the clocked
in-process server: signing in to /account/… takes the password and a second factor (or enrolment),
and /account/security lists the customer's factors and lets them remove one, add an authenticator
app and renew their recovery codes — each change with the CSRF token and the password again."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
import pytest
from support.database import audit_events, db_rows, user_id
from support.flow import CSRF
from support.inprocess import InProcessServer
from support.operator import new_user
from support.sca import SCA_ON, Authenticator, code, offered_secret, recovery_codes
from support.server import DEMO_PASSWORD

from fingrade.oauth.models import Factor, FactorKind

pytestmark = [pytest.mark.sca, pytest.mark.login]

SESSION = "__Host-fg_session"
SECURITY = "/account/security"


def _csrf(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, (page.status_code, page.text[:400])
    return found.group(1)


def _password(browser: httpx.Client, username: str, password: str, path: str = "/account/login") -> httpx.Response:
    page = browser.get(path)
    assert page.status_code == 200, page.text[:300]
    return browser.post(path, data={"username": username, "password": password, "csrf_token": _csrf(page)})


def _code(browser: httpx.Client, typed: str) -> httpx.Response:
    page = browser.get("/account/second-factor")
    assert page.status_code == 200 and 'action="/account/second-factor"' in page.text, page.text[:300]
    return browser.post("/account/second-factor", data={"code": typed, "csrf_token": _csrf(page)})


def _signed_in(srv: InProcessServer, app: Authenticator, username: str = "alice") -> httpx.Client:
    browser = srv.client()
    assert _password(browser, username, DEMO_PASSWORD).headers["location"] == "/account/second-factor"
    done = _code(browser, app.next_code(srv.clock()))
    assert done.status_code == 303, done.text[:300]
    return browser


def _has_session(browser: httpx.Client) -> bool:
    return any(SESSION in name for name in browser.cookies)


def _factor_ids(page: httpx.Response) -> list[str]:
    return re.findall(r'name="factor_id" value="([^"]+)"', page.text)


@pytest.fixture
def sca_server(start_clocked: Callable[..., InProcessServer]) -> InProcessServer:
    return start_clocked(SCA_ON)


def test_account_sign_in_takes_the_password_and_a_code(sca_server: InProcessServer) -> None:
    browser = sca_server.client()
    after = _password(browser, "alice", DEMO_PASSWORD)
    assert after.status_code == 303 and after.headers["location"] == "/account/second-factor"
    # The password alone starts no session: the account pages send the browser back to sign in.
    assert not _has_session(browser)
    assert browser.get("/account/connections").headers["location"] == "/account/login"
    wrong = _code(browser, "000000" if code(sca_server.clock()) != "000000" else "111111")
    assert wrong.status_code == 401 and "not right" in wrong.text and not _has_session(browser)
    done = _code(browser, Authenticator().next_code(sca_server.clock()))
    assert done.status_code == 303 and done.headers["location"] == "/account/connections"
    assert _has_session(browser)
    assert browser.get("/account/connections").status_code == 200
    amr = [e for e in audit_events(sca_server, "login") if e[2] == user_id(sca_server, "alice")][-1][4]
    assert json.loads(amr)["amr"] == ["pwd", "otp", "mfa"]
    # The waiting sign-in is finished: its page sends the browser back to the password.
    assert browser.get("/account/second-factor").headers["location"] == "/account/login"


def test_a_waiting_sign_in_belongs_to_its_browser(sca_server: InProcessServer) -> None:
    browser = sca_server.client()
    _password(browser, "alice", DEMO_PASSWORD)
    other = sca_server.client()
    other.cookies.update({k: v for k, v in browser.cookies.items() if "account_sign_in" in k})
    assert other.get("/account/second-factor").headers["location"] == "/account/login"


def test_a_customer_without_a_factor_sets_one_up_at_account_sign_in(sca_server: InProcessServer) -> None:
    username, password = new_user(sca_server)
    browser = sca_server.client()
    assert _password(browser, username, password).headers["location"] == "/account/second-factor"
    page = browser.get("/account/second-factor")
    assert 'id="totp-key"' in page.text and 'action="/account/enrol"' in page.text
    app = Authenticator(offered_secret(page))
    shown = browser.post(
        "/account/enrol", data={"code": app.next_code(sca_server.clock()), "name": "Phone", "csrf_token": _csrf(page)}
    )
    assert shown.status_code == 200 and len(recovery_codes(shown)) == 10
    assert shown.headers["cache-control"] == "no-store" and _has_session(browser)
    assert browser.get(SECURITY).status_code == 200


def test_the_security_page_lists_the_factors_in_words(sca_server: InProcessServer) -> None:
    browser = _signed_in(sca_server, Authenticator())
    assert 'href="/account/security"' in browser.get("/account/connections").text
    page = browser.get(SECURITY)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "Authenticator app" in page.text and "recovery code" in page.text
    assert re.search(r"Added <time datetime=\"[0-9T:-]+Z\">\d{1,2} [A-Z][a-z]+ \d{4}", page.text)
    assert "Last used" in page.text


def test_removing_a_factor_needs_the_password_and_the_csrf_token(sca_server: InProcessServer) -> None:
    app = Authenticator()
    browser = _signed_in(sca_server, app)
    page = browser.get(SECURITY)
    # alice has one factor: under sca = required it cannot go.
    assert _factor_ids(page) == [] and "Add another way first" not in page.text
    only = db_rows(sca_server, "SELECT id FROM authn_factors WHERE user_id = ?", user_id(sca_server, "alice"))[0][0]
    refused = browser.post(
        SECURITY + "/remove", data={"csrf_token": _csrf(page), "factor_id": only, "password": DEMO_PASSWORD}
    )
    assert refused.status_code == 409 and "Add another way first" in refused.text
    # A second app, then the first can go.
    added = _add_app(sca_server, browser)
    assert added.status_code == 303 and added.headers["location"] == SECURITY + "?done=added"
    page = browser.get(added.headers["location"])
    assert only in _factor_ids(page) and "Your authenticator app is added." in page.text
    csrf = _csrf(page)
    for data, status in [
        ({"factor_id": only, "password": DEMO_PASSWORD}, 403),  # no CSRF token
        ({"csrf_token": "x" * 64, "factor_id": only, "password": DEMO_PASSWORD}, 403),
        ({"csrf_token": csrf, "factor_id": only, "password": "wrong"}, 401),
        ({"csrf_token": csrf, "factor_id": only}, 401),
        ({"csrf_token": csrf, "factor_id": "nope", "password": DEMO_PASSWORD}, 404),
        ({"csrf_token": csrf, "factor_id": "", "password": DEMO_PASSWORD}, 400),
        ({"csrf_token": csrf, "factor_id": "f" * 65, "password": DEMO_PASSWORD}, 400),
    ]:
        resp = browser.post(SECURITY + "/remove", data=data)
        assert resp.status_code == status, (data, resp.status_code, resp.text[:300])
        assert "text/html" in resp.headers["content-type"]
    assert only in _factor_ids(browser.get(SECURITY))
    gone = browser.post(SECURITY + "/remove", data={"csrf_token": csrf, "factor_id": only, "password": DEMO_PASSWORD})
    assert gone.status_code == 303 and only not in _factor_ids(browser.get(SECURITY))
    removed = audit_events(sca_server, "factor_removed")
    assert removed and removed[-1][3] == "127.0.0.1"


def test_another_customers_factor_is_unknown(sca_server: InProcessServer) -> None:
    browser = _signed_in(sca_server, Authenticator())
    _add_app(sca_server, browser)  # two factors: removal is allowed in principle
    bobs = db_rows(sca_server, "SELECT id FROM authn_factors WHERE user_id = ?", user_id(sca_server, "bob"))[0][0]
    page = browser.get(SECURITY)
    resp = browser.post(
        SECURITY + "/remove", data={"csrf_token": _csrf(page), "factor_id": bobs, "password": DEMO_PASSWORD}
    )
    assert resp.status_code == 404
    assert db_rows(sca_server, "SELECT id FROM authn_factors WHERE id = ?", bobs)


def _add_app(
    srv: InProcessServer, browser: httpx.Client, right: bool = True, password: str = DEMO_PASSWORD
) -> httpx.Response:
    page = browser.get(SECURITY + "/add-app")
    assert page.status_code == 200 and 'name="enrolment"' in page.text, page.text[:300]
    secret = offered_secret(page)
    offer = re.search(r'name="enrolment" value="([^"]+)"', page.text).group(1)
    typed = code(srv.clock(), secret)
    if not right:
        typed = "000000" if typed != "000000" else "111111"
    data = {"csrf_token": _csrf(page), "enrolment": offer, "code": typed, "name": "Tablet", "password": password}
    return browser.post(SECURITY + "/add-app", data=data)


def test_adding_an_app_takes_a_right_code_and_the_password(sca_server: InProcessServer) -> None:
    browser = _signed_in(sca_server, Authenticator())
    alice = user_id(sca_server, "alice")
    count = len(db_rows(sca_server, "SELECT id FROM authn_factors WHERE user_id = ?", alice))
    wrong = _add_app(sca_server, browser, right=False)
    assert wrong.status_code == 401 and 'id="totp-key"' in wrong.text
    assert _add_app(sca_server, browser, password="wrong").status_code == 401
    assert len(db_rows(sca_server, "SELECT id FROM authn_factors WHERE user_id = ?", alice)) == count
    page = browser.get(SECURITY + "/add-app")
    offer = re.search(r'name="enrolment" value="([^"]+)"', page.text).group(1)
    data = {
        "csrf_token": _csrf(page),
        "enrolment": offer,
        "code": code(sca_server.clock(), offered_secret(page)),
        "password": DEMO_PASSWORD,
    }
    assert browser.post(SECURITY + "/add-app", data=data).status_code == 303
    # The same form again adds nothing more.
    assert browser.post(SECURITY + "/add-app", data=data).status_code == 409
    # A tampered or another browser's offer does not open.
    other = _signed_in(sca_server, Authenticator(), "bob")
    other_page = other.get(SECURITY + "/add-app")
    stolen = other.post(SECURITY + "/add-app", data={**data, "csrf_token": _csrf(other_page)})
    assert stolen.status_code == 400
    assert len(db_rows(sca_server, "SELECT id FROM authn_factors WHERE user_id = ?", alice)) == count + 1
    assert audit_events(sca_server, "factor_enrolled")[-1][3] == "127.0.0.1"


def test_renewing_recovery_codes_invalidates_the_old_ones(sca_server: InProcessServer) -> None:
    username, password = new_user(sca_server)
    browser = sca_server.client()
    _password(browser, username, password)
    page = browser.get("/account/second-factor")
    app = Authenticator(offered_secret(page))
    first = recovery_codes(
        browser.post("/account/enrol", data={"code": app.next_code(sca_server.clock()), "csrf_token": _csrf(page)})
    )
    page = browser.get(SECURITY)
    assert "10 recovery codes left" in page.text
    assert browser.post(SECURITY + "/recovery-codes", data={"csrf_token": _csrf(page)}).status_code == 401
    shown = browser.post(SECURITY + "/recovery-codes", data={"csrf_token": _csrf(page), "password": password})
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    second = recovery_codes(shown)
    assert len(second) == 10 and not set(first) & set(second)
    assert audit_events(sca_server, "recovery_codes_renewed")[-1][3] == "127.0.0.1"
    # An old code no longer signs in; a new one does.
    other = sca_server.client()
    _password(other, username, password)
    assert _code(other, first[0]).status_code == 401
    assert _code(other, second[0]).status_code == 303


def test_a_weaker_session_cannot_open_the_security_page(start_clocked: Callable[..., InProcessServer]) -> None:
    srv = start_clocked({"FINGRADE_SCA": "optional"})
    username, password = new_user(srv)  # no factor: under optional the password signs in
    browser = srv.client()
    assert _password(browser, username, password).headers["location"] == "/account/connections"
    assert browser.get("/account/connections").status_code == 200
    for path in (SECURITY, SECURITY + "/add-app"):
        resp = browser.get(path)
        assert resp.status_code == 303 and resp.headers["location"] == "/account/login?next=security"
    forged = browser.post(SECURITY + "/recovery-codes", data={"csrf_token": "x", "password": password})
    assert forged.status_code == 303
    # Signing in for the security page takes the second factor: here, setting one up.
    again = _password(browser, username, password, "/account/login?next=security")
    assert again.headers["location"] == "/account/second-factor"
    page = browser.get("/account/second-factor")
    app = Authenticator(offered_secret(page))
    shown = browser.post("/account/enrol", data={"code": app.next_code(srv.clock()), "csrf_token": _csrf(page)})
    assert 'href="/account/security"' in shown.text
    assert browser.get(SECURITY).status_code == 200
    # Under optional the last factor may go.
    page = browser.get(SECURITY)
    (only,) = _factor_ids(page)
    data = {"csrf_token": _csrf(page), "factor_id": only, "password": password}
    assert browser.post(SECURITY + "/remove", data=data).status_code == 303


def test_bad_inputs_get_a_clean_page(sca_server: InProcessServer) -> None:
    browser = _signed_in(sca_server, Authenticator())
    csrf = _csrf(browser.get(SECURITY))
    big = "a" * 9000
    for path, data in [
        (SECURITY + "/remove", {"csrf_token": csrf, "factor_id": big, "password": DEMO_PASSWORD}),
        (SECURITY + "/add-app", {"csrf_token": csrf, "enrolment": "x" * 500, "code": "1", "password": "p"}),
        (SECURITY + "/add-app", {"csrf_token": csrf, "enrolment": "1.2.3", "code": "1", "password": DEMO_PASSWORD}),
        (SECURITY + "/add-app", {"csrf_token": csrf}),
        (SECURITY + "/recovery-codes", {"csrf_token": csrf, "password": big}),
        (SECURITY + "/recovery-codes", {"password": DEMO_PASSWORD}),
        ("/account/second-factor", {"code": "1"}),
        ("/account/enrol", {"code": "1"}),
    ]:
        resp = browser.post(path, data=data)
        assert 300 <= resp.status_code < 500, (path, resp.status_code, resp.text[:300])
    not_form = browser.post(SECURITY + "/remove", content=b"{}", headers={"content-type": "application/json"})
    assert not_form.status_code == 400
    # A waiting sign-in's forms: a missing CSRF token is refused, the code is not checked.
    fresh = sca_server.client()
    _password(fresh, "alice", DEMO_PASSWORD)
    assert fresh.post("/account/second-factor", data={"code": "000000"}).status_code == 403
    assert fresh.post("/account/enrol", data={"code": "000000", "csrf_token": "x"}).status_code == 403


def test_a_customer_with_only_passkeys_is_told_to_use_a_recovery_code(sca_server: InProcessServer) -> None:
    username, password = new_user(sca_server)
    assert sca_server.core is not None
    passkey = Factor(
        id="pk1",
        user_id=user_id(sca_server, username),
        kind=FactorKind.PASSKEY,
        name="Laptop",
        created_at=sca_server.clock(),
        credential_id=b"\x01" * 16,
        credential=b"\x00",
    )
    assert sca_server.call(sca_server.core.store.add_factor(passkey, 10))
    browser = sca_server.client()
    _password(browser, username, password)
    page = browser.get("/account/second-factor")
    assert page.status_code == 200 and "Passkeys cannot be used on this page yet" in page.text
