"""FAPI 2.0 Message Signing building blocks at their exact boundaries, with a frozen clock: request
object time rules (5.3.1: nbf ≤ 60 min old, +10 s skew, exp − nbf ≤ 60 min), key strength
(FAPI 2.0 SP 5.4.1), claim → parameter conversion (RFC 9101 §4), response-mode decisions (JARM
§2.3) and the RFC 9701 Accept negotiation."""

from __future__ import annotations

import dataclasses
import secrets
import warnings
from typing import Any

import orjson
import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from fingrade.oauth.context import Core
from fingrade.oauth.introspect import wants_jwt
from fingrade.oauth.models import Client
from fingrade.oauth.request_object import use_once, verify_request_object
from fingrade.oauth.response_mode import (
    FORM_POST_JWT,
    QUERY,
    QUERY_JWT,
    authorization_response,
    check_mode,
    delivery_mode,
)
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.http import HttpRequest

pytestmark = [pytest.mark.jar, pytest.mark.jarm]

NOW = 1_800_000_000
ISSUER = "https://as.example.com"
KEY = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    WEAK_RSA = RSAKey.generate_key(1024, parameters={"kid": "weak"}, private=True)


@pytest.fixture
def core(base_core: Core) -> Core:
    return dataclasses.replace(base_core, clock=lambda: NOW)


def client(profile: str = "fapi2-message-signing", key: Any = KEY) -> Client:
    return Client(
        client_id="c-" + secrets.token_hex(6),
        profile=profile,
        client_name="Fintech",
        redirect_uris=["https://fintech.example.com/cb"],
        token_endpoint_auth_method="private_key_jwt",
        grant_types=["authorization_code"],
        scope="openid accounts",
        jwks={"keys": [key.as_dict(private=False)]},
    )


def sign(c: Client, key: Any = KEY, alg: str = "ES256", **changes: Any) -> str:
    claims = {
        "iss": c.client_id,
        "client_id": c.client_id,
        "aud": ISSUER,
        "nbf": NOW,
        "exp": NOW + 300,
        "response_type": "code",
        **changes,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jws.serialize_compact(
        {"alg": alg, "kid": key.kid, "typ": "oauth-authz-req+jwt"}, orjson.dumps(claims), key, algorithms=[alg]
    )


def refused(core: Core, c: Client, token: str) -> None:
    with pytest.raises(OAuthError) as exc:
        verify_request_object(core, c, token)
    assert exc.value.error == "invalid_request_object" and exc.value.status == 400


@pytest.mark.parametrize(
    "nbf,exp,ok",
    [
        (NOW - 3600, NOW, True),
        (NOW - 3601, NOW - 3601 + 3600, False),  # nbf age limit
        (NOW + 10, NOW + 300, True),
        (NOW + 11, NOW + 300, False),  # clock skew
        (NOW, NOW + 3600, True),
        (NOW, NOW + 3601, False),  # exp − nbf
        (NOW - 100, NOW - 5, False),
        (NOW - 100, NOW - 4, True),  # expiry with 5 s leeway
    ],
)
def test_fapi2_ms_5_3_1_time_boundaries(core: Core, nbf: int, exp: int, ok: bool) -> None:
    """FAPI 2.0 Message Signing 5.3.1: the exact edges of the time rules."""
    c = client()
    token = sign(c, nbf=nbf, exp=exp)
    if ok:
        assert verify_request_object(core, c, token).params["response_type"] == "code"
    else:
        refused(core, c, token)


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")
def test_fapi2_sp_5_4_1_weak_client_key_refused(core: Core) -> None:
    """FAPI 2.0 SP 5.4.1: RSA below 2048 bits is refused even if it is registered."""
    c = client(key=WEAK_RSA)
    refused(core, c, sign(c, key=WEAK_RSA, alg="PS256"))


def test_rfc9101_s4_claims_become_parameters(core: Core) -> None:
    """RFC 9101 §4: claims are JSON; numbers and objects become the strings a form would carry; JWT
    claims about the object are not authorization parameters; other JSON types are refused."""
    c = client()
    obj = verify_request_object(core, c, sign(c, max_age=300, claims={"id_token": {"acr": None}}, jti="j1", iat=NOW))
    assert obj.params["max_age"] == "300"
    assert orjson.loads(obj.params["claims"]) == {"id_token": {"acr": None}}
    assert not {"iss", "aud", "nbf", "exp", "iat", "jti"} & obj.params.keys()
    assert obj.jti == "j1"
    refused(core, c, sign(c, prompt=True))
    refused(core, c, sign(c, iat=NOW + 11))
    refused(core, c, sign(c, exp="soon"))


def test_rfc9101_s10_3_jti_once_per_client(core: Core, run: Any) -> None:
    c, d = client(), client()
    jti = secrets.token_hex(8)
    run(use_once(core, c, verify_request_object(core, c, sign(c, jti=jti))))
    with pytest.raises(OAuthError):
        run(use_once(core, c, verify_request_object(core, c, sign(c, jti=jti))))
    run(use_once(core, d, verify_request_object(core, d, sign(d, jti=jti))))  # another client's namespace


def test_jarm_s2_3_modes() -> None:
    """JARM §2.3.4: jwt = query.jwt for code; fragment.jwt and unknown modes refused; signed_responses
    clients must ask for a JWT mode, and their errors are JWTs whatever they asked for."""
    plain, ms = client("fapi2"), client()
    assert check_mode(None, plain) == QUERY and check_mode("jwt", plain) == QUERY_JWT
    assert check_mode("form_post.jwt", ms) == FORM_POST_JWT
    for value in ("fragment.jwt", "fragment", "form_post", "Query"):
        with pytest.raises(OAuthError):
            check_mode(value, plain)
    for value in (None, "query"):
        with pytest.raises(OAuthError):
            check_mode(value, ms)
    assert delivery_mode("fragment.jwt", plain) == QUERY
    assert delivery_mode("query", ms) == QUERY_JWT and delivery_mode("bogus", ms) == QUERY_JWT
    assert delivery_mode("form_post.jwt", ms) == FORM_POST_JWT


def test_jarm_s2_1_response_jwt(core: Core, run: Any) -> None:
    """JARM §2.1: iss, aud = client_id, iat, exp ≤ 10 min, the response parameters; RFC 9207 iss only inside."""
    resp = run(
        authorization_response(core, "c1", "https://rp.example/cb?x=1", QUERY_JWT, {"code": "abc", "state": None})
    )
    assert resp.form is None and resp.url.startswith("https://rp.example/cb?x=1&response=")
    assert "iss=" not in resp.url
    keys = KeySet.import_key_set({"keys": run(core.keys.view()).published})
    claims = jwt.decode(resp.url.split("response=")[1], keys).claims
    assert claims == {"code": "abc", "iss": core.issuer, "aud": "c1", "iat": NOW, "exp": NOW + 300}
    form = run(authorization_response(core, "c1", "https://rp.example/cb", FORM_POST_JWT, {"error": "access_denied"}))
    assert form.url == "https://rp.example/cb" and set(form.form) == {"response"}
    plain = run(authorization_response(core, "c1", "https://rp.example/cb", QUERY, {"code": "a b"}))
    assert plain.url == f"https://rp.example/cb?code=a%20b&iss={core.issuer.replace(':', '%3A').replace('/', '%2F')}"


@pytest.mark.parametrize(
    "accept,want",
    [
        (None, False),
        ("application/json", False),
        ("application/token-introspection+jwt", True),
        ("Application/Token-Introspection+JWT", True),
        ("application/json, application/token-introspection+jwt", True),
        ("application/token-introspection+jwt;q=0", False),
        ("application/token-introspection+jwt; q=0.5", True),
        ("application/token-introspection+jwt;q=x", False),
        ("application/jwt", False),
    ],
)
def test_rfc9701_s4_accept(accept: str | None, want: bool) -> None:
    headers = {"accept": accept} if accept else {}
    assert wants_jwt(HttpRequest("POST", "/introspect", headers)) is want
