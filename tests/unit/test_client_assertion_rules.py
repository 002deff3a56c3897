"""private_key_jwt client assertions: RFC 7523 §3 claim rules, OIDC Core §9, the FAPI 2.0 SP
audience and clock-skew rules (5.3.2.1-8, 5.3.2.1-13) and JOSE hygiene (5.4.1-1)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import warnings
from typing import Any

import orjson
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from fingrade.oauth.client_auth import ASSERTION_TYPE, authenticate_client, verify_client_jwt
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.http import HttpRequest

pytestmark = pytest.mark.client_auth

NOW = 1_800_000_000
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
OTHER_EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)  # same kid, other key
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # joserfc warns about the weak key we generate on purpose
    WEAK_RSA = RSAKey.generate_key(1024, private=True)
RSA_KEY = RSAKey.generate_key(2048, private=True)
ED_KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "ed"}, private=True)


@pytest.fixture
def core(base_core: Core) -> Core:
    """The shared core with a frozen clock, so the time rules are exact."""
    return dataclasses.replace(base_core, clock=lambda: NOW)


def make_client(key: Any = EC_KEY, client_id: str | None = None) -> Client:
    return Client(
        client_id=client_id or "c-" + secrets.token_hex(6),
        profile="confidential",
        client_name="Fintech",
        redirect_uris=["https://fintech.example.com/cb"],
        token_endpoint_auth_method="private_key_jwt",
        grant_types=["client_credentials"],
        scope="accounts",
        jwks={"keys": [key.as_dict(private=False)]},
    )


def claims_for(client: Client, **changes: Any) -> dict[str, Any]:
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": "https://as.example.com",
        "iat": NOW,
        "exp": NOW + 60,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: Any = EC_KEY, alg: str = "ES256", **header: Any) -> str:
    hdr = {"alg": alg, **({"kid": key.kid} if getattr(key, "kid", None) else {}), **header}
    hdr = {k: v for k, v in hdr.items() if v is not None}
    return jws.serialize_compact(hdr, orjson.dumps(claims), key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def refused(core: Core, token: str, client: Client) -> OAuthError:
    with pytest.raises(OAuthError) as info:
        verify_client_jwt(core, token, client)
    assert info.value.status == 401
    return info.value


# -- accepted ----------------------------------------------------------------------------------


def test_valid_assertion_rfc7523_3(core: Core) -> None:
    client = make_client()
    claims = claims_for(client)
    assert verify_client_jwt(core, sign(claims), client)["jti"] == claims["jti"]


@pytest.mark.parametrize(("key", "alg"), [(RSA_KEY, "PS256"), (ED_KEY, "EdDSA")])
def test_other_fapi_algorithms_fapi2_sp_5_4_1(core: Core, key: Any, alg: str) -> None:
    client = make_client(key)
    verify_client_jwt(core, sign(claims_for(client), key, alg), client)


@pytest.mark.parametrize("skew", [1, 8, 10])
def test_iat_and_nbf_up_to_10_s_ahead_accepted_fapi2_sp_5_3_2_1_13(core: Core, skew: int) -> None:
    client = make_client()
    verify_client_jwt(core, sign(claims_for(client, iat=NOW + skew, nbf=NOW + skew)), client)


def test_exp_within_leeway_accepted_rfc7523_3(core: Core) -> None:
    client = make_client()
    verify_client_jwt(core, sign(claims_for(client, exp=NOW - 2)), client)


# -- claim rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "someone-else"},
        {"sub": "someone-else"},
        {"iss": None},
        {"sub": None},
    ],
    ids=["iss", "sub", "no-iss", "no-sub"],
)
def test_iss_and_sub_must_be_the_client_id_rfc7523_3(core: Core, changes: dict[str, Any]) -> None:
    client = make_client()
    assert refused(core, sign(claims_for(client, **changes)), client).error == "invalid_client"


@pytest.mark.parametrize(
    "aud",
    [
        "https://as.example.com/token",  # the token endpoint URL (FAPI 2.0 SP Final: issuer only)
        ["https://as.example.com"],  # an array, even holding only the issuer (audience injection)
        ["https://as.example.com", "https://other.example.com"],
        "https://as.example.com/",
        "https://AS.example.com",
        "https://other.example.com",
        None,
    ],
    ids=["token-endpoint", "array", "array-2", "slash", "case", "other", "missing"],
)
def test_aud_must_be_the_issuer_as_a_string_fapi2_sp_5_3_2_1_8(core: Core, aud: Any) -> None:
    client = make_client()
    assert refused(core, sign(claims_for(client, aud=aud)), client).error == "invalid_client"


@pytest.mark.parametrize("exp", [None, "1800000060", 1800000060.5, True], ids=["missing", "string", "float", "bool"])
def test_exp_required_and_numeric_rfc7523_3(core: Core, exp: Any) -> None:
    client = make_client()
    claims = claims_for(client)
    claims.pop("exp")
    if exp is not None:
        claims["exp"] = exp
    refused(core, sign(claims), client)


def test_expired_refused_rfc7523_3(core: Core) -> None:
    client = make_client()
    refused(core, sign(claims_for(client, iat=NOW - 120, exp=NOW - 60)), client)


def test_exp_far_in_the_future_refused(core: Core) -> None:
    # A long-lived assertion is a long replay window for whoever copies it.
    client = make_client()
    refused(core, sign(claims_for(client, exp=NOW + 86400)), client)


@pytest.mark.parametrize("claim", ["iat", "nbf"])
@pytest.mark.parametrize("skew", [61, 3600])
def test_iat_or_nbf_more_than_60_s_ahead_refused_fapi2_sp_5_3_2_1_13(core: Core, claim: str, skew: int) -> None:
    client = make_client()
    refused(core, sign(claims_for(client, **{claim: NOW + skew})), client)


@pytest.mark.parametrize(
    "jti", [None, "", 42, "x" * 300, "a\x00b", "a\nb"], ids=["missing", "empty", "number", "huge", "nul", "newline"]
)
def test_jti_required_rfc7523_3(core: Core, jti: Any) -> None:
    client = make_client()
    claims = claims_for(client)
    claims.pop("jti")
    if jti is not None:
        claims["jti"] = jti
    refused(core, sign(claims), client)


# -- JOSE hygiene ------------------------------------------------------------------------------


def test_rs256_refused_fapi2_sp_5_4_1_1(core: Core) -> None:
    client = make_client(RSA_KEY)
    refused(core, sign(claims_for(client), RSA_KEY, "RS256"), client)


def test_alg_none_refused_rfc8725_3_1(core: Core) -> None:
    client = make_client()
    refused(core, unsigned(claims_for(client), {"alg": "none", "kid": "k1"}), client)


def test_hs256_keyed_with_the_public_key_refused_cve_2024_37568(core: Core) -> None:
    # Algorithm confusion: the attacker MACs with the client's *public* key as the HMAC secret.
    # (joserfc will not build such a key, so the MAC is computed by hand.)
    client = make_client()
    for secret in (EC_KEY.as_pem(private=False), json.dumps(EC_KEY.as_dict(private=False)).encode()):
        signing_input = (
            f"{b64(json.dumps({'alg': 'HS256', 'kid': 'k1'}).encode())}.{b64(orjson.dumps(claims_for(client)))}"
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        refused(core, f"{signing_input}.{b64(mac)}", client)


def test_signature_by_another_key_refused(core: Core) -> None:
    client = make_client()
    refused(core, sign(claims_for(client), OTHER_EC_KEY), client)


def test_embedded_jwk_header_not_trusted_cve_2026_27962(core: Core) -> None:
    # The attacker signs with its own key and ships that key in the header; only the registered
    # JWKS may verify.
    client = make_client()
    attacker = ECKey.generate_key("P-256", private=True)
    for kid in ("k1", None):
        forged = sign(claims_for(client), attacker, "ES256", kid=kid, jwk=attacker.as_dict(private=False))
        refused(core, forged, client)


def test_tampered_payload_refused(core: Core) -> None:
    client = make_client()
    header, _payload, signature = sign(claims_for(client)).split(".")
    other = b64(orjson.dumps(claims_for(client, sub=client.client_id, jti="other")))
    refused(core, f"{header}.{other}.{signature}", client)


def test_rsa_key_under_2048_bits_refused_fapi2_sp_5_4_1(core: Core) -> None:
    # The registration check refuses such keys; verification must not rely on it alone.
    client = make_client(WEAK_RSA)
    for kid in (WEAK_RSA.kid, None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc warns on importing the weak key; we refuse it
            refused(core, sign(claims_for(client), WEAK_RSA, "PS256", kid=kid), client)


# -- at the token endpoint: one method, and the jti replay cache -------------------------------


def _request(params: dict[str, str], **headers: str) -> HttpRequest:
    return HttpRequest("POST", "/token", {"content-type": "application/x-www-form-urlencoded", **headers})


def test_replayed_assertion_refused_rfc7523_3_ghsa_3p3g_vpw6_4w66(core: Core, run: Any) -> None:
    client = make_client()
    run(core.store.save_client(client))
    params = {
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": sign(claims_for(client)),
        "grant_type": "client_credentials",
    }
    authed, method = run(authenticate_client(core, _request(params), params))
    assert (authed.client_id, method) == (client.client_id, "private_key_jwt")
    with pytest.raises(OAuthError) as info:
        run(authenticate_client(core, _request(params), params))
    assert (info.value.error, info.value.status) == ("invalid_client", 401)


def test_jti_cache_is_per_client_oidc_core_9(core: Core, run: Any) -> None:
    # Two clients may pick the same jti; neither blocks the other.
    jti = secrets.token_urlsafe(8)
    for _ in range(2):
        client = make_client()
        run(core.store.save_client(client))
        params = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": sign(claims_for(client, jti=jti))}
        run(authenticate_client(core, _request(params), params))


def test_wrong_assertion_type_refused_rfc7523_2_2(core: Core, run: Any) -> None:
    client = make_client()
    run(core.store.save_client(client))
    params = {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
        "client_assertion": sign(claims_for(client)),
    }
    with pytest.raises(OAuthError) as info:
        run(authenticate_client(core, _request(params), params))
    assert info.value.error == "invalid_client"


def test_assertion_with_a_second_method_refused_rfc6749_2_3(core: Core, run: Any) -> None:
    client = make_client()
    run(core.store.save_client(client))
    params = {
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": sign(claims_for(client)),
        "client_secret": "x",
    }
    with pytest.raises(OAuthError) as info:
        run(authenticate_client(core, _request(params), params))
    assert info.value.error == "invalid_request"


def test_client_id_parameter_must_match_assertion_rfc7523_3(core: Core, run: Any) -> None:
    client = make_client()
    run(core.store.save_client(client))
    params = {
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": sign(claims_for(client)),
        "client_id": "demo-backend",
    }
    with pytest.raises(OAuthError) as info:
        run(authenticate_client(core, _request(params), params))
    assert info.value.error == "invalid_client"


def test_secret_client_cannot_switch_to_assertions(core: Core, run: Any) -> None:
    # A client registered for client_secret_basic has no keys; an assertion naming it is refused.
    client = dataclasses.replace(make_client(), token_endpoint_auth_method="client_secret_basic", jwks=None)
    run(core.store.save_client(client))
    params = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": sign(claims_for(client))}
    with pytest.raises(OAuthError) as info:
        run(authenticate_client(core, _request(params), params))
    assert info.value.error == "invalid_client"
