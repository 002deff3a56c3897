"""Consent resources lodged by a resource server (UK Open Banking account-access-consents, the FAPI
"lodging intent" pattern), at the authorization server, on both backends: the resource servers'
endpoint (/consent-resources), an authorization naming the consent with the OIDC `claims` parameter
(OIDC Core §5.5, `openbanking_intent_id`), the status transitions AwaitingAuthorisation -> Authorised
| Rejected -> Revoked, and revocation killing the tokens. The bank's UK-shaped API on top of this is
tested in test_bank_consent_resources.py."""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from support.database import db_rows
from support.demo import BACKEND_REDIRECT
from support.flow import checked_choices, consent, query_of
from support.operator import new_confidential_client
from support.server import Server
from support.tokens import exchange, introspect
from test_rich_authorization_requests import PAYMENT, accounts_detail, authorized, claims, request_params, to_consent

pytestmark = pytest.mark.consent


@pytest.fixture(scope="module")
def rs(server: Server) -> tuple[str, str]:
    """The bank's resource server client (may introspect and lodge consents)."""
    return new_confidential_client(server, "--resource-server", "--grant-type", "client_credentials")


@pytest.fixture(scope="module")
def tpp(server: Server) -> tuple[str, str]:
    """A fintech registered for account access."""
    return new_confidential_client(
        server,
        "--authorization-details-type",
        "account_information",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
    )


def lodge(
    http: httpx.Client, rs: tuple[str, str], client_id: str, details: Any = None, data: Any = None
) -> httpx.Response:
    body = {
        "client_id": client_id,
        "authorization_details": details or [accounts_detail()],
        "data": data if data is not None else {"Permissions": ["ReadAccountsDetail"]},
    }
    return http.post(
        "/consent-resources", content=json.dumps(body), auth=rs, headers={"Content-Type": "application/json"}
    )


def lodged(http: httpx.Client, rs: tuple[str, str], client_id: str) -> str:
    resp = lodge(http, rs, client_id)
    assert resp.status_code == 201, resp.text
    return resp.json()["consent_id"]


def read(http: httpx.Client, rs: tuple[str, str], consent_id: str, client_id: str) -> httpx.Response:
    return http.get(f"/consent-resources/{consent_id}?" + urlencode({"client_id": client_id}), auth=rs)


def intent_claims(consent_id: str) -> str:
    """How UK Open Banking apps name the consent (OIDC Core §5.5 claims parameter)."""
    ask = {"openbanking_intent_id": {"value": consent_id, "essential": True}}
    return json.dumps({"id_token": {**ask, "acr": {"essential": True}}, "userinfo": ask})


def push(browser: httpx.Client, tpp: tuple[str, str], consent_id: str, **extra: str) -> tuple[str, httpx.Response]:
    verifier, params = request_params(tpp[0], None, scope="openid accounts", claims=intent_claims(consent_id), **extra)
    return verifier, browser.post("/par", data=params, auth=tpp)


def consent_page(browser: httpx.Client, tpp: tuple[str, str], pushed: httpx.Response) -> httpx.Response:
    assert pushed.status_code == 201, pushed.text
    page = to_consent(
        browser,
        browser.get("/authorize?" + urlencode({"client_id": tpp[0], "request_uri": pushed.json()["request_uri"]})),
    )
    assert page.status_code == 200 and 'name="decision"' in page.text, page.text[:300]
    return page


def first_account(page: httpx.Response) -> dict[str, str]:
    """Share one account only (of the boxes ticked by default: all of the customer's)."""
    ticked = checked_choices(page.text)
    assert len(ticked) >= 2, ticked
    return dict(list(ticked.items())[:1])


def authorise(browser: httpx.Client, tpp: tuple[str, str], consent_id: str) -> dict[str, Any]:
    verifier, pushed = push(browser, tpp, consent_id)
    page = consent_page(browser, tpp, pushed)
    got = authorized(consent(browser, page, choices=first_account(page)), verifier)
    resp = exchange(browser, got, auth=tpp)
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- the resource servers' endpoint -------------------------------------------------------------------


def test_lodged_consent_awaits_authorisation(http: httpx.Client, rs: tuple[str, str], tpp: tuple[str, str]) -> None:
    """A resource server lodges a consent for an app: AwaitingAuthorisation, details normalised as at
    PAR (RFC 9396 §2), the resource server's own data returned unchanged."""
    resp = lodge(
        http,
        rs,
        tpp[0],
        [{"type": "account_information", "actions": ["balances", "accounts"]}],
        {"Permissions": ["ReadBalances", "ReadAccountsDetail"], "Risk": {}},
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["consent_id"].startswith("aac-") and body["client_id"] == tpp[0]
    assert body["status"] == "AwaitingAuthorisation" and body["created_at"] == body["status_updated_at"]
    assert body["authorization_details"][0]["actions"] == ["accounts", "balances"]  # canonical order
    assert "expires_at" in body["authorization_details"][0]  # the default validity was added
    assert body["data"] == {"Permissions": ["ReadBalances", "ReadAccountsDetail"], "Risk": {}}
    assert read(http, rs, body["consent_id"], tpp[0]).json() == body


def test_only_resource_servers_may_lodge(http: httpx.Client, tpp: tuple[str, str]) -> None:
    """Like introspection (RFC 7662 §2.1): callers authenticate, and only resource servers may use it."""
    denied = lodge(http, tpp, tpp[0])
    assert denied.status_code == 403 and denied.json()["error"] == "access_denied"
    anonymous = lodge(http, None, tpp[0])  # type: ignore[arg-type]
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    wrong = lodge(http, (tpp[0], "not-the-secret"), tpp[0])
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "body, error",
    [
        pytest.param({"authorization_details": [PAYMENT]}, "invalid_authorization_details", id="payment-not-lodgeable"),
        pytest.param(
            {"authorization_details": [{"type": "account_information"}]},
            "invalid_authorization_details",
            id="no-actions",
        ),
        pytest.param(
            {"authorization_details": {"type": "account_information"}}, "invalid_authorization_details", id="not-a-list"
        ),
        pytest.param({"client_id": "no-such-client"}, "invalid_request", id="unknown-client"),
        pytest.param({"client_id": 7}, "invalid_request", id="client-id-not-a-string"),
        pytest.param({"data": []}, "invalid_request", id="data-not-an-object"),
        pytest.param({"data": {"x": "y" * 5000}}, "invalid_request", id="data-too-large"),
    ],
)
def test_rfc9396_s5_bad_lodgings_are_refused(
    http: httpx.Client, server: Server, rs: tuple[str, str], tpp: tuple[str, str], body: dict[str, Any], error: str
) -> None:
    """RFC 9396 §5: details the app may not use or that do not conform are invalid_authorization_details;
    the other mistakes are invalid_request. Nothing is stored."""
    full = {"client_id": tpp[0], "authorization_details": [accounts_detail()], "data": {}, **body}
    before = db_rows(server, "SELECT COUNT(*) FROM consent_resources")[0][0]
    resp = http.post(
        "/consent-resources", content=json.dumps(full), auth=rs, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400 and resp.json()["error"] == error, resp.text
    assert db_rows(server, "SELECT COUNT(*) FROM consent_resources")[0][0] == before


def test_type_the_app_did_not_register_is_refused(http: httpx.Client, rs: tuple[str, str], server: Server) -> None:
    """RFC 9396 §10.2: the app's registered types apply to lodged consents as to its own requests."""
    plain = new_confidential_client(server)
    resp = lodge(http, rs, plain[0])
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_authorization_details"


@pytest.mark.parametrize(
    "content, ctype",
    [
        (b"{not json", "application/json"),
        (b"[]", "application/json"),
        (b"client_id=x", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_bodies_are_invalid_request(
    http: httpx.Client, rs: tuple[str, str], content: bytes, ctype: str
) -> None:
    resp = http.post("/consent-resources", content=content, auth=rs, headers={"Content-Type": ctype})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_repeated_json_members_are_refused_and_nothing_lodged_rfc8259_4(
    http: httpx.Client, server: Server, rs: tuple[str, str], tpp: tuple[str, str]
) -> None:
    """RFC 8259 §4: a repeated member (here the TPP the consent is lodged for) is refused, not read
    as whichever value one parser keeps; nothing is stored."""
    before = db_rows(server, "SELECT COUNT(*) FROM consent_resources")[0][0]
    body = {
        "client_id": tpp[0],
        "authorization_details": [accounts_detail()],
        "data": {"Permissions": ["ReadAccountsDetail"]},
    }
    raw = '{"client_id": "someone-else", ' + json.dumps(body)[1:]
    resp = http.post("/consent-resources", content=raw, auth=rs, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", resp.text
    assert db_rows(server, "SELECT COUNT(*) FROM consent_resources")[0][0] == before


def test_another_apps_consent_is_not_found(
    http: httpx.Client, rs: tuple[str, str], tpp: tuple[str, str], server: Server
) -> None:
    consent_id = lodged(http, rs, tpp[0])
    other = new_confidential_client(server, "--authorization-details-type", "account_information")
    for resp in (
        read(http, rs, consent_id, other[0]),
        read(http, rs, "aac-unknown", tpp[0]),
        http.delete(f"/consent-resources/{consent_id}?client_id={other[0]}", auth=rs),
    ):
        assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    assert read(http, rs, consent_id, tpp[0]).json()["status"] == "AwaitingAuthorisation"


def test_methods(http: httpx.Client, rs: tuple[str, str], tpp: tuple[str, str]) -> None:
    consent_id = lodged(http, rs, tpp[0])
    assert http.get("/consent-resources", auth=rs).status_code == 405
    assert http.put(f"/consent-resources/{consent_id}", auth=rs).status_code == 405


# -- the authorization naming the consent ----------------------------------------------------------------


def test_authorised_consent_and_its_tokens(
    http: httpx.Client, browser: httpx.Client, rs: tuple[str, str], tpp: tuple[str, str]
) -> None:
    """OIDC Core §5.5: the claims parameter names the consent; its details are what the customer is
    shown and approves (with the account chosen); the ID token carries openbanking_intent_id; the
    consent becomes Authorised with exactly what was approved."""
    consent_id = lodged(http, rs, tpp[0])
    verifier, pushed = push(browser, tpp, consent_id)
    page = consent_page(browser, tpp, pushed)
    # The lodged account access, in plain words, as for a request carrying it (RFC 9396 §3).
    assert "See the names and numbers, balances and transactions of your accounts" in page.text
    choice = first_account(page)
    got = authorized(consent(browser, page, choices=choice), verifier)
    body = exchange(browser, got, auth=tpp).json()
    assert claims(body["id_token"])["openbanking_intent_id"] == consent_id
    assert body["authorization_details"][0]["accounts"] == [{"iban": iban} for iban in choice.values()]
    shown = read(http, rs, consent_id, tpp[0]).json()
    assert shown["status"] == "Authorised" and shown["authorization_details"] == body["authorization_details"]
    assert introspect(http, body["access_token"], auth=rs).json()["active"] is True


def test_authorised_consent_cannot_be_authorised_again(
    http: httpx.Client, browser: httpx.Client, rs: tuple[str, str], tpp: tuple[str, str]
) -> None:
    consent_id = lodged(http, rs, tpp[0])
    authorise(browser, tpp, consent_id)
    _v, again = push(browser, tpp, consent_id)
    assert again.status_code == 400 and again.json()["error"] == "invalid_request"
    assert "Authorised" in again.json()["error_description"]


def test_denied_consent_is_rejected(
    http: httpx.Client, browser: httpx.Client, rs: tuple[str, str], tpp: tuple[str, str]
) -> None:
    """The customer declines: access_denied to the app (RFC 6749 §4.1.2.1), the consent Rejected, and
    it can never be authorised afterwards."""
    consent_id = lodged(http, rs, tpp[0])
    _verifier, pushed = push(browser, tpp, consent_id)
    resp = consent(browser, consent_page(browser, tpp, pushed), decision="deny")
    assert query_of(resp.headers["location"])["error"] == "access_denied"
    shown = read(http, rs, consent_id, tpp[0]).json()
    assert shown["status"] == "Rejected"
    _v, again = push(browser, tpp, consent_id)
    assert again.status_code == 400 and "Rejected" in again.json()["error_description"]
    # Deleting a rejected consent leaves it rejected.
    assert http.delete(f"/consent-resources/{consent_id}?client_id={tpp[0]}", auth=rs).json()["status"] == "Rejected"


def test_deleted_consent_is_revoked_with_its_tokens(
    http: httpx.Client, browser: httpx.Client, rs: tuple[str, str], tpp: tuple[str, str]
) -> None:
    """The app withdraws the consent (UK DELETE account-access-consents): Revoked, and every token of
    it dies at once (introspection inactive, refresh refused)."""
    consent_id = lodged(http, rs, tpp[0])
    body = authorise(browser, tpp, consent_id)
    resp = http.delete(f"/consent-resources/{consent_id}?client_id={tpp[0]}", auth=rs)
    assert resp.status_code == 200 and resp.json()["status"] == "Revoked"
    assert introspect(http, body["access_token"], auth=rs).json() == {"active": False}
    refreshed = http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}, auth=tpp
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


def test_deleting_an_awaiting_consent_stops_its_authorisation(
    http: httpx.Client, browser: httpx.Client, server: Server, rs: tuple[str, str], tpp: tuple[str, str]
) -> None:
    consent_id = lodged(http, rs, tpp[0])
    verifier, pushed = push(browser, tpp, consent_id)
    page = consent_page(browser, tpp, pushed)
    assert http.delete(f"/consent-resources/{consent_id}?client_id={tpp[0]}", auth=rs).json()["status"] == "Revoked"
    resp = consent(browser, page)  # approving after the delete gives no code
    assert "code" not in query_of(resp.headers["location"])
    assert query_of(resp.headers["location"])["error"] == "invalid_request"
    assert read(http, rs, consent_id, tpp[0]).json()["status"] == "Revoked"
    assert db_rows(server, "SELECT grant_id FROM consent_resources WHERE id = ?", consent_id) == [(None,)]


@pytest.mark.parametrize("how", ["app-revokes-refresh-token", "bank-cli", "bank-cli-by-consent-id"])
def test_revoking_the_grant_revokes_the_consent(
    http: httpx.Client, browser: httpx.Client, rs: tuple[str, str], tpp: tuple[str, str], server: Server, how: str
) -> None:
    """One fact in one place: revoking the grant (RFC 7009 §2.1 refresh token, the bank's CLI by grant id
    or by ConsentId; the dashboard is in test_bank_consent_resources.py) shows the consent as Revoked."""
    consent_id = lodged(http, rs, tpp[0])
    body = authorise(browser, tpp, consent_id)
    if how == "bank-cli":
        # The bank's listing links the grant to the ConsentId the app and the customer know.
        listed = json.loads(server.cli("consents", "list", "--all").stdout)
        grant_id = next(g["grant_id"] for g in listed if g["consent_id"] == consent_id)
        assert grant_id == db_rows(server, "SELECT grant_id FROM consent_resources WHERE id = ?", consent_id)[0][0]
        server.cli("consents", "revoke", grant_id)
    elif how == "bank-cli-by-consent-id":  # a customer's complaint quotes the ConsentId
        out = server.cli("consents", "revoke", consent_id).stdout.strip()
        assert out == f"consent {consent_id} of client {tpp[0]} revoked"
    else:
        assert http.post("/revoke", data={"token": body["refresh_token"]}, auth=tpp).status_code == 200
    shown = read(http, rs, consent_id, tpp[0]).json()
    assert shown["status"] == "Revoked" and shown["status_updated_at"] >= shown["created_at"]
    assert introspect(http, body["access_token"], auth=rs).json() == {"active": False}


def test_two_authorisations_of_one_consent_yield_one_grant(
    http: httpx.Client, server: Server, rs: tuple[str, str], tpp: tuple[str, str]
) -> None:
    """Two sign-ins race for one consent (two PARs while it awaited authorisation): exactly one gets
    a code; the status change and the grant are one transaction."""
    consent_id = lodged(http, rs, tpp[0])
    browsers = [server.client(follow_redirects=False) for _ in range(2)]
    try:
        pages = []
        for b in browsers:
            _v, pushed = push(b, tpp, consent_id)
            pages.append(consent_page(b, tpp, pushed))
        results: list[httpx.Response] = []
        threads = [
            threading.Thread(target=lambda b=b, p=p: results.append(consent(b, p)))
            for b, p in zip(browsers, pages, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for b in browsers:
            b.close()
    outcomes = sorted(
        "code" if "code" in query_of(r.headers["location"]) else query_of(r.headers["location"])["error"]
        for r in results
    )
    assert outcomes == ["code", "invalid_request"]
    assert db_rows(
        server,
        "SELECT COUNT(*) FROM grants WHERE id = (SELECT grant_id FROM consent_resources WHERE id = ?)",
        consent_id,
    ) == [(1,)]


# -- the claims parameter --------------------------------------------------------------------------------


def test_another_apps_consent_cannot_be_named(
    http: httpx.Client, browser: httpx.Client, rs: tuple[str, str], tpp: tuple[str, str], server: Server
) -> None:
    other = new_confidential_client(server, "--authorization-details-type", "account_information")
    consent_id = lodged(http, rs, other[0])
    _v, pushed = push(browser, tpp, consent_id)
    assert pushed.status_code == 400 and pushed.json()["error"] == "invalid_request"
    assert read(http, rs, consent_id, other[0]).json()["status"] == "AwaitingAuthorisation"


def test_front_channel_request_with_an_unknown_consent_is_redirected_with_an_error(
    browser: httpx.Client, tpp: tuple[str, str]
) -> None:
    """A plain (not pushed) request naming no consent of the app: invalid_request at the verified
    redirect URI with iss (RFC 6749 §4.1.2.1, RFC 9207 §2)."""
    _verifier, params = request_params(tpp[0], None, scope="openid accounts", claims=intent_claims("aac-nothing"))
    resp = browser.get("/authorize?" + urlencode(params))
    assert resp.status_code in (302, 303)
    assert resp.headers["location"].startswith(BACKEND_REDIRECT)
    got = query_of(resp.headers["location"])
    assert got["error"] == "invalid_request" and got["iss"] and got["state"] == params["state"]


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[]",
        '{"id_token": []}',
        '{"id_token": {"openbanking_intent_id": "aac-x"}}',
        '{"id_token": {"openbanking_intent_id": {"values": ["aac-x"]}}}',
        '{"id_token": {"openbanking_intent_id": {"value": "aac-x"}}, "userinfo": {"openbanking_intent_id": {"value": "aac-y"}}}',
        '{"id_token": {"openbanking_intent_id": {"value": "a b"}}}',
        '{"id_token": {"acr": {"essential": "yes"}}}',
        '{"id_token": {}, "id_token": {}}',
    ],
)
def test_oidc_5_5_malformed_claims_parameter_is_invalid_request(
    browser: httpx.Client, tpp: tuple[str, str], raw: str
) -> None:
    verifier, params = request_params(tpp[0], None, scope="openid accounts", claims=raw)
    resp = browser.post("/par", data=params, auth=tpp)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", resp.text


def test_claims_without_an_intent_are_ignored(browser: httpx.Client, tpp: tuple[str, str]) -> None:
    """OIDC Core §5.5: claims the OP does not provide are not an error."""
    _verifier, params = request_params(tpp[0], None, scope="openid", claims='{"id_token": {"email": null}}')
    assert browser.post("/par", data=params, auth=tpp).status_code == 201


def test_intent_and_authorization_details_together_are_refused(
    http: httpx.Client, browser: httpx.Client, rs: tuple[str, str], tpp: tuple[str, str]
) -> None:
    consent_id = lodged(http, rs, tpp[0])
    _v, params = request_params(tpp[0], [accounts_detail()], scope="openid accounts", claims=intent_claims(consent_id))
    resp = browser.post("/par", data=params, auth=tpp)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_metadata_advertises_the_claims_parameter(http: httpx.Client) -> None:
    doc = http.get("/.well-known/openid-configuration").json()
    assert doc["claims_parameter_supported"] is True and "openbanking_intent_id" in doc["claims_supported"]


def test_bank_revokes_an_awaiting_consent_by_its_id(
    http: httpx.Client, browser: httpx.Client, server: Server, rs: tuple[str, str], tpp: tuple[str, str]
) -> None:
    consent_id = lodged(http, rs, tpp[0])
    server.cli("consents", "revoke", consent_id)
    assert read(http, rs, consent_id, tpp[0]).json()["status"] == "Revoked"
    _v, pushed = push(browser, tpp, consent_id)
    assert pushed.status_code == 400 and "Revoked" in pushed.json()["error_description"]
    missing = server.cli("consents", "revoke", "aac-nothing-here", check=False)
    assert missing.returncode == 1 and "no such grant or consent" in missing.stderr
