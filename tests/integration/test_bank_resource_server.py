"""The bank's resource server trusts the authorization server only through public protocols: revocation through RFC 7662 introspection (cache 0: immediate), JWKS rotation
(an unknown kid refreshes the set), `fingrade serve --role bank` as a separate process against a
separate AS process, tokens from another issuer, a wrong audience. Both backends."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.backends import BACKENDS
from support.bank import PREFIX, Fintech, account_information
from support.refusals import www_authenticate
from support.server import Server, dedicated_server, start_server
from test_bank_consent_resources import CONSENTS, authorise, request_body

pytestmark = [pytest.mark.bank, pytest.mark.introspection]

TUNED = {
    "FINGRADE_KEY_RELOAD_SECONDS": "1",  # a rotation reaches the AS within a second
    "FINGRADE_BANK_INTROSPECTION_CACHE_SECONDS": "0",  # every call asks: revocation is immediate
    "FINGRADE_BANK_JWKS_REFRESH_SECONDS": "1",
}


@pytest.fixture(scope="module", params=BACKENDS)
def auth_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with dedicated_server(tmp_path_factory.mktemp("bank-as-" + request.param), request.param, TUNED) as srv:
        yield srv


@pytest.fixture(scope="module")
def fintech(auth_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(auth_server, tmp_path_factory.mktemp("bank-rs-fintech"))


def _start_bank(auth_server: Server, tmp: Path, **env: str) -> Server:
    """`fingrade serve --role bank` on its own port, with its own data dir and TLS certificate,
    sharing the AS's database (the bank tables) and one-time store (DPoP replay)."""
    rs = auth_server.add_client(
        "--name",
        "Bank API",
        "--profile",
        "confidential",
        "--resource-server",
        "--auth-method",
        "client_secret_basic",
        "--grant-type",
        "client_credentials",
    )
    extra = {
        "FINGRADE_BANK_ISSUER": auth_server.issuer,
        "FINGRADE_BANK_CA_FILE": auth_server.ca,
        "FINGRADE_BANK_CLIENT_ID": rs["client_id"],
        "FINGRADE_BANK_CLIENT_SECRET": rs["client_secret"],
        "FINGRADE_BANK_INTROSPECTION_CACHE_SECONDS": "0",
        # Tests run in any order: the rotation test may just have made a key the bank never saw.
        "FINGRADE_BANK_JWKS_REFRESH_SECONDS": "1",
        **env,
    }
    if auth_server.backend == "sqlite":
        extra["FINGRADE_DATABASE_URL"] = f"sqlite:///{auth_server.data_dir / 'fingrade.db'}"
    return start_server(
        tmp,
        backend=auth_server.backend,
        extra_env=extra,
        serve_args=("--role", "bank"),
        database_url=auth_server.env.get("FINGRADE_DATABASE_URL"),
    )


@pytest.fixture(scope="module")
def bank(auth_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _start_bank(auth_server, tmp_path_factory.mktemp("bank-role"))
    yield srv
    srv.stop()


def _account(fintech: Fintech, token: str, http: httpx.Client, base: str | None = None) -> str:
    resp = fintech.get(http, "/accounts", token, base=base)
    assert resp.status_code == 200, resp.text
    return resp.json()["Data"]["Account"][0]["AccountId"]


def _kid(token: str) -> str:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


def test_rfc7662_revoked_token_refused_at_once_with_cache_0(fintech: Fintech, auth_server: Server) -> None:
    """With bank_introspection_cache_seconds = 0 every call introspects: revocation takes effect at
    the next call (RFC 7009 at the AS, RFC 7662 at the bank)."""
    token = fintech.token(account_information())
    with auth_server.client() as http:
        acc = _account(fintech, token, http)
        assert fintech.get(http, f"/accounts/{acc}/balances", token).status_code == 200
        assert http.post("/revoke", data={"token": token, **fintech.client.auth_params()}).status_code == 200
        resp = fintech.get(http, f"/accounts/{acc}/balances", token)
    assert resp.status_code == 401
    assert www_authenticate(resp)["error"] == "invalid_token"


@pytest.mark.keys
def test_jwks_rotation_new_kid_is_fetched(fintech: Fintech, auth_server: Server) -> None:
    """`fingrade keys rotate` (twice: the first activates the already-published next key) makes the
    AS sign with a key the bank has never seen; the unknown kid makes the bank refresh the JWKS."""
    before = fintech.token(account_information())
    with auth_server.client() as http:
        acc = _account(fintech, before, http)  # the bank now holds the JWKS of this moment
        known = {k["kid"] for k in http.get("/jwks").json()["keys"]}
        auth_server.cli("keys", "rotate")
        auth_server.cli("keys", "rotate")
        time.sleep(2.2)  # the AS reloads its keys within a second; the bank's refresh limit is 1 s
        after = fintech.token(account_information())
        assert _kid(after) not in known
        assert fintech.get(http, f"/accounts/{acc}/balances", after).status_code == 200
        # Tokens signed by the retired key still verify: it stays published.
        assert fintech.get(http, f"/accounts/{acc}/balances", before).status_code == 200


def test_role_bank_separate_process(fintech: Fintech, auth_server: Server, bank: Server) -> None:
    """`fingrade serve --role bank`: a process of its own with HTTPS to the AS (TLS verified with
    bank_ca_file), every endpoint, DPoP htu from its own public URL, replay and revocation."""
    token = fintech.token(account_information())
    time.sleep(1.1)  # past the bank's JWKS refresh limit, whatever the previous test did
    with bank.client() as http:
        acc = _account(fintech, token, http, base=bank.base_url)
        for path in (f"/accounts/{acc}", f"/accounts/{acc}/balances", f"/accounts/{acc}/transactions"):
            resp = fintech.get(http, path, token, base=bank.base_url)
            assert resp.status_code == 200, resp.text
            assert resp.headers["x-fapi-interaction-id"]
        # A proof made for the AS-mounted API does not fit this server's URL (htu from bank_url).
        wrong_htu = fintech.proof(f"/accounts/{acc}/balances", token)
        resp = http.get(
            f"{bank.base_url}{PREFIX}/accounts/{acc}/balances",
            headers={"Authorization": f"DPoP {token}", "DPoP": wrong_htu},
        )
        assert resp.status_code == 401 and www_authenticate(resp)["error"] == "invalid_dpop_proof"
        proof = fintech.proof(f"/accounts/{acc}/balances", token, base=bank.base_url)
        headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
        assert http.get(f"{bank.base_url}{PREFIX}/accounts/{acc}/balances", headers=headers).status_code == 200
        replay = http.get(f"{bank.base_url}{PREFIX}/accounts/{acc}/balances", headers=headers)
        assert replay.status_code == 401 and www_authenticate(replay)["error"] == "invalid_dpop_proof"
        with auth_server.client() as as_http:
            assert as_http.post("/revoke", data={"token": token, **fintech.client.auth_params()}).status_code == 200
        revoked = fintech.get(http, f"/accounts/{acc}/balances", token, base=bank.base_url)
        assert revoked.status_code == 401 and www_authenticate(revoked)["error"] == "invalid_token"
        # The bank process serves no authorization server endpoints.
        assert http.get(f"{bank.base_url}/.well-known/openid-configuration").status_code == 404


def test_role_bank_uk_consents_over_https(fintech: Fintech, auth_server: Server, bank: Server) -> None:
    """UK Open Banking account-access-consents on a bank of its own: it lodges, reads and deletes the
    consent at the AS over HTTPS with its own resource-server credentials (the AS's consent
    resources); the customer authorises it at the AS (OIDC Core §5.5 claims, openbanking_intent_id);
    the DELETE at the bank revokes the token the AS issued."""
    cc = fintech.client_credentials()
    base = bank.base_url
    with bank.client() as http, auth_server.client() as as_http, auth_server.client(follow_redirects=False) as browser:
        resp = fintech.post(http, CONSENTS, cc, request_body(["ReadAccountsDetail"]), base=base)
        assert resp.status_code == 201, resp.text
        cid = resp.json()["Data"]["ConsentId"]
        assert resp.headers["location"] == f"{base}{PREFIX}{CONSENTS}/{cid}"
        tokens, iban = authorise(fintech, as_http, browser, cid)
        got = fintech.get(http, f"{CONSENTS}/{cid}", cc, base=base)
        assert got.status_code == 200 and got.json()["Data"]["Status"] == "Authorised"
        listed = fintech.get(http, "/accounts", tokens["access_token"], base=base)
        assert [a["Account"][0]["Identification"] for a in listed.json()["Data"]["Account"]] == [iban]
        assert fintech.delete(http, f"{CONSENTS}/{cid}", cc, base=base).status_code == 204
        assert fintech.get(http, f"{CONSENTS}/{cid}", cc, base=base).json()["Data"]["Status"] == "Revoked"
        assert fintech.get(http, "/accounts", tokens["access_token"], base=base).status_code == 401


def test_token_of_another_issuer_refused(
    fintech: Fintech, bank: Server, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A token from another authorization server (another issuer, keys the bank does not trust) is
    invalid_token: its kid is not in the trusted JWKS, even after a refresh."""
    foreign = Fintech(server, tmp_path_factory.mktemp("foreign-fintech"))
    token = foreign.token(account_information())
    with bank.client() as http:
        resp = foreign.get(http, "/accounts", token, base=bank.base_url)
    assert resp.status_code == 401
    assert www_authenticate(resp)["error"] == "invalid_token"


def test_rfc9068_4_wrong_audience_refused(
    fintech: Fintech, auth_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A bank configured for another audience refuses the AS's tokens (aud names another API)."""
    other = _start_bank(
        auth_server, tmp_path_factory.mktemp("bank-other-aud"), FINGRADE_BANK_AUDIENCE="https://other-bank.example/api"
    )
    try:
        token = fintech.token(account_information())
        with other.client() as http:
            resp = fintech.get(http, "/accounts", token, base=other.base_url)
        assert resp.status_code == 401
        challenge = www_authenticate(resp)
        assert challenge["error"] == "invalid_token"
        assert challenge["error_description"] == "the access token was not issued for this API"
    finally:
        other.stop()


def test_role_bank_serves_its_openapi_document(bank: Server) -> None:
    """With `--role bank`: the OpenAPI document at the bank's own URL names that URL in
    `servers`; a path with an encoded newline is still the bank's (404 with x-fapi-interaction-id)."""
    with bank.client() as http:
        resp = http.get(f"{PREFIX}/openapi.json")
        assert resp.status_code == 200, resp.text
        assert resp.headers["access-control-allow-origin"] == "*"
        assert resp.json()["servers"] == [{"url": f"{bank.base_url}{PREFIX}"}]
        odd = http.get(f"{PREFIX}/accounts/a%0Ab/balances")
        assert odd.status_code == 401 and odd.headers["x-fapi-interaction-id"]
        assert odd.headers["cache-control"] == "no-store"


def test_role_bank_liveness_readiness_and_security_headers(bank: Server) -> None:
    """`--role bank` on its own: /healthz (alive) and /readyz (its database and one-time store take a
    write), and the security headers on every answer, errors included, as at the AS."""
    with bank.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        for resp in (ready, http.get(f"{PREFIX}/accounts"), http.get("/nope")):
            assert resp.headers["x-frame-options"] == "DENY", resp.headers
            assert resp.headers["x-content-type-options"] == "nosniff"
            assert resp.headers["strict-transport-security"].startswith("max-age=")
            assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
