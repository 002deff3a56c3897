"""private_key_jwt against the real server (RFC 7523 §3, OIDC Core §9, FAPI 2.0 SP 5.3.2.1-8 and
-13, 5.4.1-1): a registered EC P-256 key signs client assertions; replays, wrong audiences,
forged algorithms and stale assertions are refused with 401 invalid_client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey
from support.dpop import DPoPKey
from support.refusals import assert_oauth_error
from support.server import Server
from support.tokens import race

pytestmark = pytest.mark.client_auth

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
KEY = ECKey.generate_key("P-256", parameters={"kid": "fintech-1", "alg": "ES256"}, private=True)


@pytest.fixture(scope="session")
def pkjwt_client(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [KEY.as_dict(private=False)]}))
    out = server.add_client(
        "--name",
        "Fintech with keys",
        "--profile",
        "confidential",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(path),
        "--grant-type",
        "client_credentials",
        "--scope",
        "accounts",
    )
    assert "client_secret" not in out
    return out["client_id"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(server: Server, client_id: str, key: Any = KEY, header: dict | None = None, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": server.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
        **changes,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jws.serialize_compact(
        header or {"alg": "ES256", "kid": "fintech-1"}, json.dumps(claims), key, algorithms=["ES256"]
    )


def token_request(
    http: httpx.Client, client_assertion: str, headers: dict[str, str] | None = None, **extra: str
) -> httpx.Response:
    return http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": "accounts",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion,
            **extra,
        },
        headers=headers,
    )


def refused(resp: httpx.Response) -> None:
    assert_oauth_error(resp, "invalid_client", 401)
    assert resp.headers["www-authenticate"]  # RFC 6749 §5.2


def test_valid_assertion_authenticates_rfc7523_3(server: Server, http: httpx.Client, pkjwt_client: str) -> None:
    resp = token_request(http, assertion(server, pkjwt_client))
    assert resp.status_code == 200, resp.text
    assert resp.json()["scope"] == "accounts"


def test_assertion_with_iat_8_s_ahead_accepted_fapi2_sp_5_3_2_1_13(
    server: Server, http: httpx.Client, pkjwt_client: str
) -> None:
    now = int(time.time())
    resp = token_request(http, assertion(server, pkjwt_client, iat=now + 8, nbf=now + 8))
    assert resp.status_code == 200, resp.text


def test_replayed_assertion_refused_ghsa_3p3g_vpw6_4w66(server: Server, http: httpx.Client, pkjwt_client: str) -> None:
    """RFC 7523 §3 item 7: the jti is single-use while the assertion is valid."""
    signed = assertion(server, pkjwt_client)
    assert token_request(http, signed).status_code == 200
    refused(token_request(http, signed))
    # The same jti in a freshly signed assertion is a replay too.
    jti = secrets.token_urlsafe(8)
    assert token_request(http, assertion(server, pkjwt_client, jti=jti)).status_code == 200
    refused(token_request(http, assertion(server, pkjwt_client, jti=jti)))


def test_an_assertion_verified_on_a_refused_request_stays_spent_rfc7523_3(
    server: Server, http: httpx.Client, pkjwt_client: str
) -> None:
    """The assertion's jti is claimed once the assertion is verified, whatever the request's fate
    after that (here an unsupported grant type): it cannot be presented again."""
    signed = assertion(server, pkjwt_client)
    assert_oauth_error(token_request(http, signed, grant_type="urn:example:unknown"), "unsupported_grant_type", 400)
    refused(token_request(http, signed))


def test_assertion_and_dpop_proof_are_each_single_use_when_claimed_together_rfc9449_11_1(
    server: Server, http: httpx.Client, pkjwt_client: str
) -> None:
    """A token request's client assertion and DPoP proof are claimed in one step of the replay cache
    (protocol/single_use.py). Each keeps its own refusal, the assertion's first, and a value verified
    on a refused request is spent."""
    key = DPoPKey()
    htu = server.issuer + "/token"

    def request(client_assertion: str, proof: str) -> httpx.Response:
        return token_request(http, client_assertion, headers={"DPoP": proof})

    first_assertion, first_proof = assertion(server, pkjwt_client), key.proof("POST", htu)
    ok = request(first_assertion, first_proof)
    assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP", ok.text
    # A fresh assertion with the proof again: the proof's refusal, and the assertion is spent.
    second_assertion = assertion(server, pkjwt_client)
    assert_oauth_error(request(second_assertion, first_proof), "invalid_dpop_proof", 400)
    refused(request(second_assertion, key.proof("POST", htu)))
    # Both replayed: the assertion's refusal comes first.
    refused(request(first_assertion, first_proof))
    # A fresh pair still works.
    assert request(assertion(server, pkjwt_client), key.proof("POST", htu)).status_code == 200


def test_concurrent_replays_have_one_winner_rfc7523_3(server: Server, pkjwt_client: str) -> None:
    signed = assertion(server, pkjwt_client)
    results = race(server, 6, lambda c: token_request(c, signed))
    assert sorted(r.status_code for r in results) == [200] + [401] * 5


@pytest.mark.parametrize(
    "aud", ["/token", "array", "array-token", "/"], ids=["token-endpoint", "array", "array-with-token", "slash"]
)
def test_audience_other_than_the_issuer_string_refused_fapi2_sp_5_3_2_1_8(
    server: Server, http: httpx.Client, pkjwt_client: str, aud: str
) -> None:
    value: Any = {
        "/token": server.issuer + "/token",
        "array": [server.issuer],
        "array-token": [server.issuer, server.issuer + "/token"],
        "/": server.issuer + "/",
    }[aud]
    refused(token_request(http, assertion(server, pkjwt_client, aud=value)))


def test_alg_none_refused_rfc8725_3_1(server: Server, http: httpx.Client, pkjwt_client: str) -> None:
    now = int(time.time())
    claims = {
        "iss": pkjwt_client,
        "sub": pkjwt_client,
        "aud": server.issuer,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(8),
    }
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64(json.dumps({'alg': alg, 'kid': 'fintech-1'}).encode())}.{b64(json.dumps(claims).encode())}."
        refused(token_request(http, unsigned))


def test_hs256_keyed_with_the_public_key_refused_cve_2024_37568(
    server: Server, http: httpx.Client, pkjwt_client: str
) -> None:
    """Algorithm confusion: HMAC-SHA-256 over the assertion, keyed with the client's public key
    (as PEM, and as its JWK JSON), which anyone can fetch."""
    now = int(time.time())
    for secret in (KEY.as_pem(private=False), json.dumps(KEY.as_dict(private=False)).encode()):
        claims = {
            "iss": pkjwt_client,
            "sub": pkjwt_client,
            "aud": server.issuer,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(8),
        }
        signing_input = (
            f"{b64(json.dumps({'alg': 'HS256', 'kid': 'fintech-1'}).encode())}.{b64(json.dumps(claims).encode())}"
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        refused(token_request(http, f"{signing_input}.{b64(mac)}"))


def test_expired_assertion_refused_rfc7523_3(server: Server, http: httpx.Client, pkjwt_client: str) -> None:
    now = int(time.time())
    refused(token_request(http, assertion(server, pkjwt_client, iat=now - 600, exp=now - 300)))


def test_assertion_without_exp_refused_rfc7523_3(server: Server, http: httpx.Client, pkjwt_client: str) -> None:
    now = int(time.time())
    refused(token_request(http, assertion(server, pkjwt_client, exp=None, iat=now)))


def test_assertion_from_the_future_refused_fapi2_sp_5_3_2_1_13(
    server: Server, http: httpx.Client, pkjwt_client: str
) -> None:
    now = int(time.time())
    refused(token_request(http, assertion(server, pkjwt_client, iat=now + 120, exp=now + 180)))
    refused(token_request(http, assertion(server, pkjwt_client, nbf=now + 120, exp=now + 180)))


def test_assertion_without_jti_refused_rfc7523_3(server: Server, http: httpx.Client, pkjwt_client: str) -> None:
    signed = assertion(server, pkjwt_client, jti=None)
    refused(token_request(http, signed))


def test_assertion_for_another_client_refused_rfc7523_3(server: Server, http: httpx.Client, pkjwt_client: str) -> None:
    """iss/sub must name the client whose key signed it: our key cannot speak for demo-backend,
    and a mismatched client_id parameter is refused."""
    refused(token_request(http, assertion(server, pkjwt_client, iss="demo-backend", sub="demo-backend")))
    refused(token_request(http, assertion(server, pkjwt_client, sub="demo-backend")))
    refused(token_request(http, assertion(server, pkjwt_client), client_id="demo-backend"))


def test_signature_by_an_unregistered_key_refused(server: Server, http: httpx.Client, pkjwt_client: str) -> None:
    """Including the attacker's key shipped in the `jwk` header (CVE-2026-27962)."""
    attacker = ECKey.generate_key("P-256", private=True)
    refused(token_request(http, assertion(server, pkjwt_client, key=attacker)))
    header = {"alg": "ES256", "jwk": attacker.as_dict(private=False)}
    refused(token_request(http, assertion(server, pkjwt_client, key=attacker, header=header)))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x",
        "a.b.c",
        "a.b.c.d.e",
        "e30.e30.",
        b64(b"[]") + "." + b64(b"[]") + ".x",
        b64(b'{"alg":"ES256"}') + "." + b64(b'{"iss":["x"]}') + ".x",
        b64(b'{"alg":"ES256"}') + "." + b64(b'{"iss":"demo-backend"}') + ".x",
    ],
)
def test_garbage_assertions_refused(http: httpx.Client, pkjwt_client: str, value: str) -> None:
    resp = token_request(http, value)
    assert resp.status_code in (400, 401) and resp.json()["error"] in ("invalid_client", "invalid_request"), resp.text


def test_wrong_assertion_type_refused_rfc7523_2_2(server: Server, http: httpx.Client, pkjwt_client: str) -> None:
    resp = http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion": assertion(server, pkjwt_client),
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        },
    )
    refused(resp)


def test_secret_cannot_replace_the_assertion_rfc6749_2_3(http: httpx.Client, pkjwt_client: str) -> None:
    """A private_key_jwt client has no secret; trying client_secret_basic/post is refused."""
    refused(http.post("/token", auth=(pkjwt_client, "anything"), data={"grant_type": "client_credentials"}))
    refused(
        http.post(
            "/token", data={"grant_type": "client_credentials", "client_id": pkjwt_client, "client_secret": "anything"}
        )
    )
    refused(http.post("/token", data={"grant_type": "client_credentials", "client_id": pkjwt_client}))
