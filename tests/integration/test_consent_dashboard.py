"""The consent lifecycle on the real server, both backends: the customer's
connected-apps page at /account/connections and its one-click revoke, revocation by the app
(RFC 7009) and by the bank (`fingrade consents`), and what each does to the tokens at the
authorization server and at the bank API.

The server has FINGRADE_BANK_INTROSPECTION_CACHE_SECONDS=0, so the bank sees a revocation at once."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.backends import BACKENDS
from support.bank import Fintech, account_information
from support.database import db_rows
from support.flow import CSRF
from support.server import DEMO_PASSWORD, Server, uncached_bank_server

pytestmark = [pytest.mark.consent, pytest.mark.revocation]

CONNECTIONS = "/account/connections"


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with uncached_bank_server(request, tmp_path_factory, "dash") as srv:
        yield srv


@pytest.fixture(scope="module")
def fintech(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(server, tmp_path_factory.mktemp("dash-fintech"))


def connect(fintech: Fintech, browser: httpx.Client, username: str = "alice") -> dict[str, Any]:
    """PAR + login + consent in `browser` (whose session cookie stays), then the token response."""
    fc = fintech.client
    with fintech.server.client() as http:
        params, verifier = fc.request_params(
            scope="openid accounts", authorization_details=json.dumps([account_information()])
        )
        pushed = fc.push(http, params)
        assert pushed.status_code == 201, pushed.text
        got = fc.authorize(browser, pushed.json()["request_uri"], verifier, username=username)
        assert got.code, got.params
        resp = fc.redeem(http, got)
    assert resp.status_code == 200, resp.text
    return resp.json()


def dashboard(browser: httpx.Client) -> httpx.Response:
    resp = browser.get(CONNECTIONS)
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    return resp


def revoke_form(page: httpx.Response, client_id: str) -> dict[str, str]:
    assert f'name="client_id" value="{client_id}"' in page.text, page.text
    return {"csrf_token": CSRF.search(page.text).group(1), "client_id": client_id}


def userinfo(fintech: Fintech, http: httpx.Client, token: str) -> httpx.Response:
    proof = fintech.client.dpop.proof("GET", fintech.server.issuer + "/userinfo", token=token)
    return http.get("/userinfo", headers={"Authorization": f"DPoP {token}", "DPoP": proof})


def introspect(fintech: Fintech, http: httpx.Client, token: str) -> dict[str, Any]:
    resp = http.post(
        "/introspect", data={"token": token, **fintech.client.auth_params()}, headers={"Accept": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def refresh(fintech: Fintech, http: httpx.Client, refresh_token: str) -> httpx.Response:
    return http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, **fintech.client.auth_params()},
        headers=fintech.client.dpop_header("/token"),
    )


def bank_accounts(fintech: Fintech, http: httpx.Client, token: str) -> httpx.Response:
    return fintech.get(http, "/accounts", token)


def test_dashboard_without_session_goes_to_login_and_back(server: Server) -> None:
    """No session: 303 to the sign-in page; signing in there leads back to the dashboard."""
    with server.client(follow_redirects=False) as browser:
        resp = browser.get(CONNECTIONS)
        assert resp.status_code == 303
        assert resp.headers["location"] == "/account/login"
        page = browser.get("/account/login")
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "form-action 'self'" in page.headers["content-security-policy"]
        assert 'action="/account/login"' in page.text
        csrf = CSRF.search(page.text).group(1)
        wrong = browser.post("/account/login", data={"username": "alice", "password": "nope", "csrf_token": csrf})
        assert wrong.status_code == 401 and "not correct" in wrong.text
        forged = browser.post(
            "/account/login", data={"username": "alice", "password": DEMO_PASSWORD, "csrf_token": "x" * 64}
        )
        assert forged.status_code == 403
        ok = browser.post("/account/login", data={"username": "alice", "password": DEMO_PASSWORD, "csrf_token": csrf})
        assert ok.status_code == 303 and ok.headers["location"] == CONNECTIONS
        assert ok.cookies.get("__Host-fg_session")
        page = dashboard(browser)
        assert "Connected apps" in page.text and "Alice" in page.text


def test_revoke_without_session_goes_to_login(server: Server) -> None:
    with server.client(follow_redirects=False) as browser:
        resp = browser.post(CONNECTIONS + "/revoke", data={"client_id": "x", "csrf_token": "y"})
        assert resp.status_code == 303 and resp.headers["location"] == "/account/login"


def test_dashboard_lists_the_app_what_it_may_do_and_since_when(server: Server, fintech: Fintech) -> None:
    with server.client(follow_redirects=False) as browser:
        connect(fintech, browser)
        page = dashboard(browser)
        text = html.unescape(page.text)
        assert fintech.client.client_id in page.text  # the revoke form names the app
        assert "See the names and numbers, balances and transactions of these accounts: " in text, text
        assert re.search(r"Until \d", text)  # the authorization_details expiry, in words
        assert "Connected since" in text and re.search(r'<time datetime="\d{4}-\d\d-\d\dT', page.text)
        assert "See your accounts" in text  # the scope, in words
        assert "<script" not in page.text  # no JavaScript needed
        csp = page.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp and "form-action 'self'" in csp
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "DENY" or "frame-ancestors 'none'" in csp


def test_customer_revoke_kills_tokens_at_once_everywhere(server: Server, fintech: Fintech) -> None:
    """Revoke on the dashboard: /userinfo 401, introspection inactive, refresh refused, bank API 401
    (no introspection cache here), the consent forgotten (the next authorization asks again), audited."""
    with server.client(follow_redirects=False) as browser, server.client() as http:
        tokens = connect(fintech, browser)
        access, rt = tokens["access_token"], tokens.get("refresh_token")
        assert rt, tokens
        assert userinfo(fintech, http, access).status_code == 200
        assert introspect(fintech, http, access)["active"] is True
        assert bank_accounts(fintech, http, access).status_code == 200
        page = dashboard(browser)
        done = browser.post(CONNECTIONS + "/revoke", data=revoke_form(page, fintech.client.client_id))
        assert done.status_code == 303, done.text
        assert done.headers["location"].startswith(CONNECTIONS)
        assert userinfo(fintech, http, access).status_code == 401
        assert introspect(fintech, http, access) == {"active": False}
        refused = refresh(fintech, http, rt)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        resp = bank_accounts(fintech, http, access)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
        after = browser.get(done.headers["location"])
        assert "can no longer access your bank" in after.text
        assert f'value="{fintech.client.client_id}"' not in after.text
        # The remembered consent is gone: the next authorization shows the consent page again.
        params, _ = fintech.client.request_params(scope="openid accounts")
        pushed = fintech.client.push(http, params)
        resp = browser.get(
            "/authorize", params={"client_id": fintech.client.client_id, "request_uri": pushed.json()["request_uri"]}
        )
        resp = browser.get(resp.headers["location"])
        assert 'name="decision"' in resp.text
    rows = db_rows(
        server,
        "SELECT detail FROM audit_events WHERE event = ? AND client_id = ?",
        "consent_revoked",
        fintech.client.client_id,
    )
    assert any(json.loads(r[0])["by"] == "customer" for r in rows)


def test_revoke_csrf_missing_or_wrong_is_refused(server: Server, fintech: Fintech) -> None:
    with server.client(follow_redirects=False) as browser, server.client() as http:
        access = connect(fintech, browser)["access_token"]
        form = revoke_form(dashboard(browser), fintech.client.client_id)
        for bad in (
            {"client_id": form["client_id"]},
            {**form, "csrf_token": "0" * 64},
            {**form, "csrf_token": form["csrf_token"][:-1] + ("1" if form["csrf_token"].endswith("0") else "0")},
        ):
            resp = browser.post(CONNECTIONS + "/revoke", data=bad)
            assert resp.status_code == 403, resp.text
        # A token from another browser (its own cookie) is no good here either.
        stolen = {"__Host-fg_session": browser.cookies["__Host-fg_session"]}
        with server.client(follow_redirects=False, cookies=stolen) as other:
            resp = other.post(CONNECTIONS + "/revoke", data=form)
            assert resp.status_code == 403
        assert introspect(fintech, http, access)["active"] is True


def test_other_customers_grant_cannot_be_revoked(server: Server, fintech: Fintech, tmp_path_factory) -> None:
    """The form's client_id only ever reaches the signed-in customer's own grants."""
    other_app = Fintech(server, tmp_path_factory.mktemp("dash-other"))
    with (
        server.client(follow_redirects=False) as alice,
        server.client(follow_redirects=False) as bob,
        server.client() as http,
    ):
        connect(fintech, alice)
        bob_token = connect(fintech, bob, "bob")["access_token"]
        bob_other = connect(other_app, bob, "bob")["access_token"]
        page = dashboard(alice)
        assert other_app.client.client_id not in page.text
        for client_id in (fintech.client.client_id, other_app.client.client_id):
            form = {**revoke_form(page, fintech.client.client_id), "client_id": client_id}
            assert alice.post(CONNECTIONS + "/revoke", data=form).status_code == 303
        assert introspect(fintech, http, bob_token)["active"] is True
        assert introspect(other_app, http, bob_other)["active"] is True
        assert bank_accounts(fintech, http, bob_token).status_code == 200


def test_rfc7009_2_1_app_revoking_its_refresh_token_ends_the_grant(server: Server, fintech: Fintech) -> None:
    """RFC 7009 §2.1: revoking a refresh token revokes its grant, access tokens included."""
    with server.client(follow_redirects=False) as browser, server.client() as http:
        tokens = connect(fintech, browser)
        resp = http.post(
            "/revoke",
            data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token", **fintech.client.auth_params()},
        )
        assert resp.status_code == 200
        assert introspect(fintech, http, tokens["access_token"]) == {"active": False}
        assert bank_accounts(fintech, http, tokens["access_token"]).status_code == 401
    listed = json.loads(server.cli("consents", "list", "--user", "alice", "--all").stdout)
    assert {"revoked"} <= {g["state"] for g in listed}


def test_bank_revokes_a_grant_with_the_cli(server: Server, fintech: Fintech) -> None:
    with server.client(follow_redirects=False) as browser, server.client() as http:
        access = connect(fintech, browser, "bob")["access_token"]
        listed = json.loads(server.cli("consents", "list", "--user", "bob").stdout)
        mine = [g for g in listed if g["client_id"] == fintech.client.client_id]
        assert mine and all(g["state"] == "active" for g in mine)
        assert mine[-1]["authorization_details"][0]["type"] == "account_information"
        for g in mine:
            server.cli("consents", "revoke", g["grant_id"])  # as listed, even one beginning with "-"
        assert introspect(fintech, http, access) == {"active": False}
        assert bank_accounts(fintech, http, access).status_code == 401
        assert userinfo(fintech, http, access).status_code == 401
    after = json.loads(server.cli("consents", "list", "--user", "bob").stdout)
    assert not [g for g in after if g["client_id"] == fintech.client.client_id]
    missing = server.cli("consents", "revoke", "no-such-grant", check=False)
    assert missing.returncode == 1
    rows = db_rows(server, "SELECT detail FROM audit_events WHERE event = ?", "consent_revoked")
    assert any(json.loads(r[0])["by"] == "bank" for r in rows)


def test_revoked_notice_only_follows_the_customers_own_revocation(
    server: Server, fintech: Fintech, tmp_path_factory
) -> None:
    """The bank's notice "<app> can no longer access your bank" names a client: a link naming any
    client (one never used, or one whose registered name is a phishing text) must show nothing. Only
    the customer's own revocation, in their own browser, leads to it."""
    notice = "can no longer access your bank"
    with server.client(follow_redirects=False) as alice, server.client(follow_redirects=False) as bob:
        connect(fintech, alice)
        connect(fintech, bob, "bob")
        for client_id in (fintech.client.client_id, "demo-spa", "demo-backend"):
            page = alice.get(CONNECTIONS, params={"revoked": client_id})
            assert page.status_code == 200 and notice not in page.text
        done = alice.post(CONNECTIONS + "/revoke", data=revoke_form(dashboard(alice), fintech.client.client_id))
        assert done.status_code == 303
        assert notice in alice.get(done.headers["location"]).text
        # The same address in another browser (another customer) shows nothing.
        assert notice not in bob.get(done.headers["location"]).text
        # Nor with its client swapped for another, nor with a malformed time (no 500 either).
        swapped = done.headers["location"].replace(fintech.client.client_id, "demo-spa")
        assert notice not in alice.get(swapped).text
        for at in ("²", "1" * 13, "-1", ""):
            page = alice.get(CONNECTIONS, params={"revoked": fintech.client.client_id, "at": at, "sig": "0" * 64})
            assert page.status_code == 200 and notice not in page.text
