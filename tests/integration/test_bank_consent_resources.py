"""UK Open Banking style account-access-consents at the bank (Read/Write API v3.1, Account and
Transaction API: POST/GET/DELETE /account-access-consents), over HTTP on the real server, both
backends: the TPP's client credentials token lodges the consent (201 AwaitingAuthorisation), the
customer authorises it at the AS in an authorization request whose OIDC `claims` parameter (OIDC Core
§5.5) names it as `openbanking_intent_id`, picks an account and approves (Authorised; the approved
RFC 9396 `account_information` details carry the account), the token reads only that account, and
DELETE revokes the consent and its tokens at once. The AS side alone is tested in
test_consent_resources.py; the UK <-> RFC 9396 mapping in tests/unit/test_bank_uk_consent_rules.py.

The server has FINGRADE_BANK_INTROSPECTION_CACHE_SECONDS=0, so the bank sees a revocation at once."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.backends import BACKENDS
from support.bank import PREFIX, Fintech, account_information
from support.flow import Authorized, checked_choices, consent, follow_to_client, login, query_of
from support.refusals import www_authenticate
from support.server import DEMO_PASSWORD, Server, uncached_bank_server
from test_consent_dashboard import CONNECTIONS, dashboard, revoke_form

pytestmark = [pytest.mark.bank, pytest.mark.consent]

CONSENTS = "/account-access-consents"
TX = ["ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits"]
ALL = ["ReadAccountsBasic", "ReadAccountsDetail", "ReadBalances", *TX]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with uncached_bank_server(request, tmp_path_factory, "ukconsent") as srv:
        yield srv


@pytest.fixture(scope="module")
def tpp(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(server, tmp_path_factory.mktemp("ukconsent-tpp"))


@pytest.fixture(scope="module")
def cc(tpp: Fintech) -> str:
    """The TPP's DPoP-bound client credentials token (RFC 6749 §4.4) with the accounts scope."""
    return tpp.client_credentials()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def request_body(permissions: list[str] | None = None, **data: Any) -> dict[str, Any]:
    return {"Data": {"Permissions": ALL if permissions is None else permissions, **data}, "Risk": {}}


def lodge(tpp: Fintech, http: httpx.Client, token: str, body: Any = None, **headers: str) -> httpx.Response:
    return tpp.post(http, CONSENTS, token, request_body() if body is None else body, headers=headers)


def lodged(tpp: Fintech, http: httpx.Client, token: str, body: Any = None) -> str:
    resp = lodge(tpp, http, token, body)
    assert resp.status_code == 201, resp.text
    return resp.json()["Data"]["ConsentId"]


def status_of(tpp: Fintech, http: httpx.Client, token: str, consent_id: str) -> str:
    resp = tpp.get(http, f"{CONSENTS}/{consent_id}", token)
    assert resp.status_code == 200, resp.text
    return resp.json()["Data"]["Status"]


def intent_claims(consent_id: str) -> str:
    """OIDC Core §5.5 claims parameter naming the consent, as UK Open Banking TPPs send it."""
    ask = {"openbanking_intent_id": {"value": consent_id, "essential": True}}
    return json.dumps({"id_token": ask, "userinfo": ask})


def push(tpp: Fintech, http: httpx.Client, consent_id: str) -> tuple[httpx.Response, str]:
    """PAR with scope `openid accounts` and the claims parameter; no authorization_details (the AS
    takes them from the consent)."""
    params, verifier = tpp.client.request_params(scope="openid accounts", claims=intent_claims(consent_id))
    return tpp.client.push(http, params), verifier


def to_consent_page(
    tpp: Fintech, http: httpx.Client, browser: httpx.Client, consent_id: str, username: str = "alice"
) -> tuple[httpx.Response, str]:
    pushed, verifier = push(tpp, http, consent_id)
    assert pushed.status_code == 201, pushed.text
    fc = tpp.client
    resp = browser.get(
        "/authorize?" + urlencode({"client_id": fc.client_id, "request_uri": pushed.json()["request_uri"]})
    )
    resp = follow_to_client(browser, resp, fc.redirect_uri)
    if 'name="password"' in resp.text:
        resp = follow_to_client(browser, login(browser, resp, username, DEMO_PASSWORD), fc.redirect_uri)
    assert 'name="decision"' in resp.text, resp.text[:500]
    return resp, verifier


def redeem(tpp: Fintech, http: httpx.Client, resp: httpx.Response, verifier: str) -> dict[str, Any]:
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    code = query_of(resp.headers["location"])["code"]
    tok = tpp.client.redeem(
        http, Authorized(code=code, params={}, verifier=verifier, redirect_uri=tpp.client.redirect_uri, location="")
    )
    assert tok.status_code == 200, tok.text
    return tok.json()


def authorise(tpp: Fintech, http: httpx.Client, browser: httpx.Client, consent_id: str) -> tuple[dict[str, Any], str]:
    """The customer picks the first offered account and approves; the token response and that IBAN."""
    page, verifier = to_consent_page(tpp, http, browser, consent_id)
    name, iban = sorted(checked_choices(page.text).items())[0]
    return redeem(tpp, http, consent(browser, page, choices={name: iban}), verifier), iban


def test_uk_ob_account_access_consent_flow_end_to_end(
    server: Server, tpp: Fintech, cc: str, http: httpx.Client
) -> None:
    """UK OB Read/Write API v3.1: client credentials token → POST /account-access-consents (201
    AwaitingAuthorisation) → authorization naming the ConsentId (OIDC Core §5.5 `claims`,
    `openbanking_intent_id`) → the customer picks one account and approves → Authorised → the token
    reads only that account, its ID token carries the intent id → DELETE (204) → Revoked → the access
    token is refused (401)."""
    iid = str(uuid.uuid4())
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(microsecond=0).isoformat()  # +00:00
    body = request_body(ExpirationDateTime=expires, TransactionFromDateTime="2026-01-01T00:00:00+00:00")
    resp = lodge(tpp, http, cc, body, **{"x-fapi-interaction-id": iid})
    assert resp.status_code == 201, resp.text
    assert resp.headers["x-fapi-interaction-id"] == iid
    assert resp.headers["cache-control"] == "no-store"
    out = resp.json()
    cid = out["Data"]["ConsentId"]
    self_url = f"{server.base_url}{PREFIX}{CONSENTS}/{cid}"
    assert resp.headers["location"] == self_url
    assert out["Links"] == {"Self": self_url} and out["Risk"] == {} and out["Meta"] == {}
    data = out["Data"]
    assert data["Status"] == "AwaitingAuthorisation"
    assert data["Permissions"] == ALL  # exactly as asked
    assert data["ExpirationDateTime"] == expires and data["TransactionFromDateTime"] == "2026-01-01T00:00:00+00:00"
    assert "TransactionToDateTime" not in data
    assert data["CreationDateTime"].endswith("Z") and data["StatusUpdateDateTime"] >= data["CreationDateTime"]

    got = tpp.get(http, f"{CONSENTS}/{cid}", cc)
    assert got.status_code == 200 and got.json() == out

    with server.client(follow_redirects=False) as browser:
        page, verifier = to_consent_page(tpp, http, browser, cid)
        assert "Which accounts may" in page.text  # the consent's account access, the customer picks
        assert "balances and transactions" in page.text
        name, iban = sorted(checked_choices(page.text).items())[0]
        tokens = redeem(tpp, http, consent(browser, page, choices={name: iban}), verifier)
    [detail] = tokens["authorization_details"]
    assert detail["type"] == "account_information" and detail["accounts"] == [{"iban": iban}]
    assert detail["actions"] == ["accounts", "balances", "transactions"]
    assert detail["transactions_from"] == "2026-01-01"

    authorised = tpp.get(http, f"{CONSENTS}/{cid}", cc).json()["Data"]
    assert authorised["Status"] == "Authorised"
    assert authorised["Permissions"] == ALL and authorised["ExpirationDateTime"] == expires

    id_claims = jwt.decode(tokens["id_token"], KeySet.import_key_set(http.get("/jwks").json())).claims
    assert id_claims["openbanking_intent_id"] == cid

    token = tokens["access_token"]
    listed = tpp.get(http, "/accounts", token)
    assert listed.status_code == 200, listed.text
    assert [a["Account"][0]["Identification"] for a in listed.json()["Data"]["Account"]] == [iban]

    gone = tpp.delete(http, f"{CONSENTS}/{cid}", cc)
    assert gone.status_code == 204, gone.text
    assert gone.content == b"" and "x-fapi-interaction-id" in gone.headers
    assert status_of(tpp, http, cc, cid) == "Revoked"
    refused = tpp.get(http, "/accounts", token)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
    again = tpp.delete(http, f"{CONSENTS}/{cid}", cc)  # already over: still 204, still Revoked
    assert again.status_code == 204 and status_of(tpp, http, cc, cid) == "Revoked"


def test_denied_consent_is_rejected(server: Server, tpp: Fintech, cc: str, http: httpx.Client) -> None:
    """UK OB: the customer declines at the AS → Status Rejected; deleting it leaves it Rejected."""
    cid = lodged(tpp, http, cc)
    with server.client(follow_redirects=False) as browser:
        page, _ = to_consent_page(tpp, http, browser, cid)
        resp = consent(browser, page, "deny")
    assert resp.status_code == 303 and query_of(resp.headers["location"]).get("error") == "access_denied"
    assert status_of(tpp, http, cc, cid) == "Rejected"
    assert tpp.delete(http, f"{CONSENTS}/{cid}", cc).status_code == 204
    assert status_of(tpp, http, cc, cid) == "Rejected"
    pushed, _ = push(tpp, http, cid)
    assert pushed.status_code == 400 and pushed.json()["error"] == "invalid_request"


def test_authorised_consent_cannot_be_authorised_again(
    server: Server, tpp: Fintech, cc: str, http: httpx.Client
) -> None:
    """One consent, one authorisation: naming an Authorised consent again is refused at PAR."""
    cid = lodged(tpp, http, cc)
    with server.client(follow_redirects=False) as browser:
        authorise(tpp, http, browser, cid)
    assert status_of(tpp, http, cc, cid) == "Authorised"
    pushed, _ = push(tpp, http, cid)
    assert pushed.status_code == 400, pushed.text
    assert pushed.json()["error"] == "invalid_request"


def test_deleted_awaiting_consent_cannot_be_authorised(tpp: Fintech, cc: str, http: httpx.Client) -> None:
    cid = lodged(tpp, http, cc)
    assert tpp.delete(http, f"{CONSENTS}/{cid}", cc).status_code == 204
    assert status_of(tpp, http, cc, cid) == "Revoked"
    pushed, _ = push(tpp, http, cid)
    assert pushed.status_code == 400 and pushed.json()["error"] == "invalid_request"


def test_another_clients_consent_is_not_found_and_cannot_be_named(
    server: Server, tpp: Fintech, cc: str, http: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Another TPP's ConsentId: GET and DELETE 404 exactly like an unknown id (no probing), PAR with
    it refused (400 invalid_request), and the consent untouched."""
    other = Fintech(server, tmp_path_factory.mktemp("ukconsent-other"))
    other_cc = other.client_credentials()
    cid = lodged(tpp, http, cc)
    unknown = tpp.get(http, f"{CONSENTS}/aac-{'x' * 22}", cc)
    assert unknown.status_code == 404
    for resp in (other.get(http, f"{CONSENTS}/{cid}", other_cc), other.delete(http, f"{CONSENTS}/{cid}", other_cc)):
        assert resp.status_code == 404, resp.text
        assert resp.json() == unknown.json() == {"error": "not_found", "error_description": "no such consent"}
    pushed, _ = push(other, http, cid)
    assert pushed.status_code == 400 and pushed.json()["error"] == "invalid_request"
    assert status_of(tpp, http, cc, cid) == "AwaitingAuthorisation"


@pytest.mark.parametrize("consent_id", ["nope", "a%2Fb", "x" * 65, "%0A"])
def test_unknown_or_malformed_consent_ids_are_404(tpp: Fintech, cc: str, http: httpx.Client, consent_id: str) -> None:
    resp = tpp.get(http, f"{CONSENTS}/{consent_id}", cc)
    assert resp.status_code == 404, resp.text
    assert "x-fapi-interaction-id" in resp.headers


def test_customer_token_cannot_lodge_or_read(server: Server, tpp: Fintech, cc: str, http: httpx.Client) -> None:
    """A customer's token (authorization code grant) is not the TPP's client credentials token: 403
    insufficient_scope with a DPoP challenge (RFC 6750 §3.1, RFC 9449 §7.1) and a clear description."""
    cid = lodged(tpp, http, cc)
    customer = tpp.token(account_information())
    for resp in (
        lodge(tpp, http, customer),
        tpp.get(http, f"{CONSENTS}/{cid}", customer),
        tpp.delete(http, f"{CONSENTS}/{cid}", customer),
    ):
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"] == "insufficient_scope"
        assert "client credentials" in resp.json()["error_description"]
        challenge = www_authenticate(resp)
        assert challenge["scheme"] == "dpop" and challenge["error"] == "insufficient_scope"
    assert status_of(tpp, http, cc, cid) == "AwaitingAuthorisation"


def test_token_without_accounts_scope_is_403(tpp: Fintech, http: httpx.Client) -> None:
    token = tpp.client_credentials(scope="payments")
    resp = lodge(tpp, http, token)
    assert resp.status_code == 403 and resp.json()["error"] == "insufficient_scope"
    assert "accounts" in resp.json()["error_description"]


def test_rfc9449_7_2_dpop_token_presented_as_bearer_is_401(tpp: Fintech, cc: str, http: httpx.Client) -> None:
    resp = http.post(PREFIX + CONSENTS, json=request_body(), headers={"Authorization": f"Bearer {cc}"})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
    assert www_authenticate(resp)["scheme"] == "dpop"


def test_rfc6750_3_1_no_token_is_401(http: httpx.Client) -> None:
    for resp in (
        http.post(PREFIX + CONSENTS, json=request_body()),
        http.get(PREFIX + CONSENTS + "/aac-x"),
        http.delete(PREFIX + CONSENTS + "/aac-x"),
    ):
        assert resp.status_code == 401, resp.text
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert "x-fapi-interaction-id" in resp.headers


def test_other_methods_are_405(tpp: Fintech, cc: str, http: httpx.Client) -> None:
    resp = tpp.get(http, CONSENTS, cc)
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"
    resp = tpp.post(http, f"{CONSENTS}/aac-x", cc, {})
    assert resp.status_code == 405 and resp.headers["allow"] == "GET, DELETE"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (request_body(["ReadAccountsDetail", "ReadBeneficiariesDetail"]), "ReadBeneficiariesDetail"),
        (request_body(["ReadStatementsDetail"]), "ReadStatementsDetail"),
        (request_body(["ReadAccountsDetail", "ReadWhatever"]), "ReadWhatever"),
        (request_body(["ReadTransactionsDetail", "ReadTransactionsCredits"]), "ReadTransactionsDebits"),
        (request_body(["ReadAccountsBasic"]), "ReadAccountsDetail"),
        (request_body([]), "Permissions"),
        (request_body(["ReadBalances", "ReadBalances"]), "repeated"),
        (request_body(["ReadBalances"], ExpirationDateTime="2020-01-01T00:00:00Z"), "ExpirationDateTime"),
        (request_body(["ReadBalances"], TransactionFromDateTime="2026-01-01T00:00:00Z"), "ReadTransactionsDetail"),
        ({"Data": {"Permissions": ["ReadBalances"]}}, "Risk"),
        (b"{not json", "JSON"),
        (b'{"Data": {"Permissions": ["ReadBalances"]}, "Risk": {}, "Risk": {}}', "repeated"),
    ],
)
def test_bad_consent_requests_are_400_naming_the_problem(
    tpp: Fintech, cc: str, http: httpx.Client, body: Any, named: str
) -> None:
    """UK OB permissions this bank does not serve, or that it could only grant in part, are refused
    (fail closed), never silently narrowed; malformed bodies are 400, never 5xx."""
    resp = lodge(tpp, http, cc, body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"
    assert named in resp.json()["error_description"]


def test_oversized_body_is_413(tpp: Fintech, cc: str, http: httpx.Client) -> None:
    body = {"Data": {"Permissions": ["ReadBalances"]}, "Risk": {"x": "y" * 20000}}
    resp = lodge(tpp, http, cc, body)
    assert resp.status_code == 413 and resp.json()["error"] == "invalid_request"


def test_consent_without_expiry_states_the_default_one(tpp: Fintech, cc: str, http: httpx.Client) -> None:
    """No ExpirationDateTime asked: the consent still ends (the AS's 90-day default), and says when."""
    resp = lodge(tpp, http, cc, request_body(["ReadAccountsDetail"]))
    assert resp.status_code == 201, resp.text
    data = resp.json()["Data"]
    assert data["Permissions"] == ["ReadAccountsDetail"]
    assert data["ExpirationDateTime"] > data["CreationDateTime"]


def test_customer_revokes_on_connections_page(server: Server, tpp: Fintech, cc: str, http: httpx.Client) -> None:
    """The customer's revocation at /account/connections revokes the consent: GET shows Revoked and
    the token is refused."""
    cid = lodged(tpp, http, cc)
    with server.client(follow_redirects=False) as browser:
        tokens, _ = authorise(tpp, http, browser, cid)
        assert status_of(tpp, http, cc, cid) == "Authorised"
        page = dashboard(browser)
        done = browser.post(CONNECTIONS + "/revoke", data=revoke_form(page, tpp.client.client_id))
        assert done.status_code == 303, done.text
    assert status_of(tpp, http, cc, cid) == "Revoked"
    assert tpp.get(http, "/accounts", tokens["access_token"]).status_code == 401
