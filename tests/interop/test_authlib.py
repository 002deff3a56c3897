"""Authlib (PyPI), an OAuth client nobody here wrote, configured only from our discovery document
(OIDC Discovery §4 / RFC 8414 §3), runs the authorization code + PKCE flow (RFC 6749 §4.1, RFC 7636),
refresh (RFC 6749 §6), userinfo (OIDC Core §5.3), revocation (RFC 7009), introspection (RFC 7662)
and private_key_jwt (RFC 7523 §2.2, OIDC Core §9). The user's login and consent use our flow helpers."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from joserfc import jwt
from joserfc.errors import InvalidClaimError
from joserfc.jwk import ECKey, KeySet

with warnings.catch_warnings():  # Authlib 1.9 warns at import that plain httpx (not httpx2) is deprecated
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from authlib.oidc.core import CodeIDToken

from interop.helpers import user_part
from support.flow import query_of
from support.server import DEMO_SECRET, Server

pytestmark = pytest.mark.interop

NATIVE_REDIRECT = "http://127.0.0.1:50719/callback"  # RFC 8252 §7.3: loopback IP, port chosen at run time
BACKEND_REDIRECT = "https://localhost:9443/callback"


@pytest.fixture
def discovery(http: httpx.Client) -> dict[str, Any]:
    resp = http.get("/.well-known/openid-configuration")
    assert resp.status_code == 200
    return resp.json()


def authlib_client(server: Server, meta: dict[str, Any], client_id: str, redirect_uri: str, **kw: Any) -> OAuth2Client:
    return OAuth2Client(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=kw.pop("scope", "openid profile email"),
        code_challenge_method="S256",
        token_endpoint=meta["token_endpoint"],
        verify=server.ssl_context(),
        timeout=20,
        **kw,
    )


def authorize(client: OAuth2Client, meta: dict[str, Any], browser: httpx.Client) -> tuple[dict, str, str]:
    """Authlib builds the request and redeems the code; our helpers play the user in between."""
    verifier, nonce = generate_token(64), generate_token(24)
    url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    sent = query_of(url)
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"] != verifier
    callback = user_part(browser, url, client.redirect_uri)
    # Authlib checks state but does not know RFC 9207; the mix-up defence is checked here instead.
    assert query_of(callback)["iss"] == meta["issuer"]
    token = client.fetch_token(authorization_response=callback, state=state, code_verifier=verifier)
    return dict(token), nonce, callback


def verify_id_token(
    meta: dict[str, Any], jwks: dict[str, Any], token: dict[str, Any], client_id: str, nonce: str
) -> CodeIDToken:
    """OIDC Core §3.1.3.7 with Authlib's claim classes on joserfc: signature against our JWKS with an
    advertised algorithm, then iss, aud, exp/iat, nonce and at_hash (§3.1.3.8)."""
    decoded = jwt.decode(
        token["id_token"], KeySet.import_key_set(jwks), algorithms=meta["id_token_signing_alg_values_supported"]
    )
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {
            "iss": {"essential": True, "value": meta["issuer"]},
            "aud": {"essential": True, "value": client_id},
            "nonce": {"essential": True},
            "at_hash": {"essential": True},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=5)
    return claims


def test_authlib_native_public_client_pkce_refresh_userinfo_revoke(
    server: Server, browser: httpx.Client, http: httpx.Client, discovery: dict[str, Any]
) -> None:
    """Public native client (token_endpoint_auth_method none, RFC 8252 §8.4) with a loopback redirect."""
    with authlib_client(
        server, discovery, "demo-native", NATIVE_REDIRECT, scope="openid profile email offline_access"
    ) as client:
        assert client.token_endpoint_auth_method == "none"
        token, nonce, _ = authorize(client, discovery, browser)
        assert token["token_type"] == "Bearer" and token["refresh_token"]
        jwks = http.get(discovery["jwks_uri"]).json()
        claims = verify_id_token(discovery, jwks, token, "demo-native", nonce)
        # The checks bite: another nonce or another access token fails the same validation.
        with pytest.raises(InvalidClaimError):
            verify_id_token(discovery, jwks, token, "demo-native", nonce + "x")
        with pytest.raises(InvalidClaimError):
            verify_id_token(
                discovery, jwks, {**token, "access_token": token["access_token"] + "x"}, "demo-native", nonce
            )

        info = client.get(discovery["userinfo_endpoint"])
        assert info.status_code == 200 and info.json()["sub"] == claims["sub"]  # OIDC Core §5.3.2
        assert info.json()["email"] == "alice@demo.fingrade.test"

        first_refresh = token["refresh_token"]
        refreshed = dict(client.refresh_token(discovery["token_endpoint"]))
        assert refreshed["access_token"] != token["access_token"]
        # RFC 9700 §4.14.2: a public client's refresh token rotates.
        assert refreshed["refresh_token"] != first_refresh
        assert client.get(discovery["userinfo_endpoint"]).status_code == 200  # Authlib now uses the new token

        # RFC 7009 §2.1: a public client revokes its own refresh token, identified by client_id alone.
        resp = client.revoke_token(
            discovery["revocation_endpoint"], token=refreshed["refresh_token"], token_type_hint="refresh_token"
        )
        assert resp.status_code == 200
        with pytest.raises(OAuthError) as exc:
            client.refresh_token(discovery["token_endpoint"], refresh_token=refreshed["refresh_token"])
        assert exc.value.error == "invalid_grant"  # RFC 6749 §5.2

        # RFC 7662 §2.1: the introspection endpoint needs an authorised caller, which a public client is not.
        resp = client.introspect_token(discovery["introspection_endpoint"], token=refreshed["access_token"])
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


def test_authlib_confidential_client_secret_basic(
    server: Server, browser: httpx.Client, http: httpx.Client, discovery: dict[str, Any]
) -> None:
    """Confidential client with client_secret_basic (RFC 6749 §2.3.1) and PKCE all the same."""
    assert "client_secret_basic" in discovery["token_endpoint_auth_methods_supported"]
    with authlib_client(
        server,
        discovery,
        "demo-backend",
        BACKEND_REDIRECT,
        client_secret=DEMO_SECRET,
        scope="openid profile offline_access accounts",
    ) as client:
        assert client.token_endpoint_auth_method == "client_secret_basic"
        token, nonce, _ = authorize(client, discovery, browser)
        claims = verify_id_token(discovery, http.get(discovery["jwks_uri"]).json(), token, "demo-backend", nonce)
        assert token["scope"] == "openid profile offline_access accounts"

        info = client.get(discovery["userinfo_endpoint"])
        assert info.status_code == 200 and info.json()["sub"] == claims["sub"]

        refreshed = dict(client.refresh_token(discovery["token_endpoint"]))
        assert refreshed["access_token"] != token["access_token"]
        assert refreshed["refresh_token"] == token["refresh_token"]  # confidential: no rotation

        # RFC 7662 §2.2: the client introspects its own access and refresh tokens.
        body = client.introspect_token(
            discovery["introspection_endpoint"], token=refreshed["access_token"], token_type_hint="access_token"
        ).json()
        assert body["active"] is True and body["client_id"] == "demo-backend" and body["sub"] == claims["sub"]
        assert body["scope"] == "openid profile offline_access accounts" and body["iss"] == discovery["issuer"]
        body = client.introspect_token(
            discovery["introspection_endpoint"], token=refreshed["refresh_token"], token_type_hint="refresh_token"
        ).json()
        assert body["active"] is True and body["client_id"] == "demo-backend"

        # RFC 7009 §2.1: revoking the access token makes it inactive (RFC 7662 §2.2) and useless at userinfo.
        resp = client.revoke_token(
            discovery["revocation_endpoint"], token=refreshed["access_token"], token_type_hint="access_token"
        )
        assert resp.status_code == 200
        body = client.introspect_token(discovery["introspection_endpoint"], token=refreshed["access_token"]).json()
        assert body == {"active": False}
        resp = client.get(discovery["userinfo_endpoint"])
        assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["www-authenticate"]

        # Revoking the refresh token ends the grant: no more refreshes.
        assert (
            client.revoke_token(
                discovery["revocation_endpoint"], token=refreshed["refresh_token"], token_type_hint="refresh_token"
            ).status_code
            == 200
        )
        with pytest.raises(OAuthError) as exc:
            client.refresh_token(discovery["token_endpoint"], refresh_token=refreshed["refresh_token"])
        assert exc.value.error == "invalid_grant"


# -- private_key_jwt ---------------------------------------------------------------------------


@pytest.fixture
def pkjwt_client(server: Server, tmp_path: Path) -> Iterator[tuple[str, ECKey]]:
    """A confidential client registered with a public ES256 JWKS (RFC 7591 §2 `jwks`)."""
    key = ECKey.generate_key("P-256", parameters={"kid": generate_token(8), "alg": "ES256", "use": "sig"}, private=True)
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    info = server.add_client(
        "--name",
        "Authlib private_key_jwt",
        "--profile",
        "confidential",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(jwks_file),
        "--redirect-uri",
        BACKEND_REDIRECT,
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "client_credentials",
        "--scope",
        "openid profile offline_access accounts",
    )
    yield info["client_id"], key
    server.cli("clients", "remove", info["client_id"], check=False)


def pkjwt_authlib(
    server: Server, meta: dict[str, Any], client_id: str, key: ECKey, auth: PrivateKeyJWT, **kw: Any
) -> OAuth2Client:
    # Authlib defaults the revocation endpoint to client_secret_basic whenever a "secret" (here the
    # private key) is set, so both methods are named.
    client = authlib_client(
        server,
        meta,
        client_id,
        BACKEND_REDIRECT,
        client_secret=key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
        **kw,
    )
    client.register_client_auth_method(auth)
    return client


def issuer_audience(meta: dict[str, Any]) -> PrivateKeyJWT:
    """Authlib's PrivateKeyJWT puts its `token_endpoint` argument in `aud`; FAPI 2.0 SP 5.3.2.1-8 and
    draft-ietf-oauth-rfc7523bis want the issuer there. (Passing claims={"aud": ...} instead would make
    Authlib reuse one jti forever: see test_authlib_claims_option_replays_jti.)"""
    assert meta["token_endpoint_auth_signing_alg_values_supported"].count("ES256") == 1
    return PrivateKeyJWT(token_endpoint=meta["issuer"], alg="ES256")


def test_authlib_private_key_jwt_with_issuer_audience(
    server: Server,
    browser: httpx.Client,
    http: httpx.Client,
    discovery: dict[str, Any],
    pkjwt_client: tuple[str, ECKey],
) -> None:
    """RFC 7523 §2.2/§3 and OIDC Core §9 private_key_jwt at the token, introspection and revocation
    endpoints, with aud = issuer (FAPI 2.0 SP 5.3.2.1-8), for the code flow and client_credentials."""
    assert "private_key_jwt" in discovery["token_endpoint_auth_methods_supported"]
    client_id, key = pkjwt_client
    with pkjwt_authlib(
        server, discovery, client_id, key, issuer_audience(discovery), scope="openid profile offline_access accounts"
    ) as client:
        token, nonce, _ = authorize(client, discovery, browser)
        verify_id_token(discovery, http.get(discovery["jwks_uri"]).json(), token, client_id, nonce)
        refreshed = dict(client.refresh_token(discovery["token_endpoint"]))  # a second assertion, fresh jti
        assert refreshed["access_token"] != token["access_token"]
        body = client.introspect_token(discovery["introspection_endpoint"], token=refreshed["access_token"]).json()
        assert body["active"] is True and body["client_id"] == client_id
        assert (
            client.revoke_token(
                discovery["revocation_endpoint"], token=refreshed["refresh_token"], token_type_hint="refresh_token"
            ).status_code
            == 200
        )

    with pkjwt_authlib(server, discovery, client_id, key, issuer_audience(discovery), scope="accounts") as client:
        cc = client.fetch_token(grant_type="client_credentials")
        assert cc["token_type"] == "Bearer" and "refresh_token" not in cc
        claims = jwt.decode(cc["access_token"], KeySet.import_key_set(http.get("/jwks").json())).claims
        assert claims["sub"] == client_id and claims["scope"] == "accounts"


def _capture(client: OAuth2Client) -> list[httpx.Response]:
    seen: list[httpx.Response] = []

    def hook(resp: httpx.Response) -> httpx.Response:
        seen.append(resp)
        return resp

    client.register_compliance_hook("access_token_response", hook)
    return seen


def test_authlib_default_token_endpoint_audience_is_refused(
    server: Server, discovery: dict[str, Any], pkjwt_client: tuple[str, ECKey]
) -> None:
    """FAPI 2.0 SP 5.3.2.1-8 / draft-ietf-oauth-rfc7523bis: the assertion's aud must be the issuer
    identifier alone. Authlib's default, the token endpoint URL (what RFC 7523 §3 suggested), is refused
    with 401 invalid_client (RFC 6749 §5.2)."""
    client_id, key = pkjwt_client
    with pkjwt_authlib(server, discovery, client_id, key, PrivateKeyJWT(alg="ES256"), scope="accounts") as client:
        seen = _capture(client)
        with pytest.raises(OAuthError) as exc:
            client.fetch_token(grant_type="client_credentials")
        assert exc.value.error == "invalid_client"
        resp = seen[-1]
        assert resp.status_code == 401 and resp.headers["cache-control"] == "no-store"
        assert "www-authenticate" in resp.headers
        assert discovery["token_endpoint"] != discovery["issuer"]  # the two really differ
        sent = jwt.decode(dict(httpx.QueryParams(resp.request.content.decode()))["client_assertion"], key).claims
        assert sent["aud"] == discovery["token_endpoint"]


def test_authlib_claims_option_replays_jti(
    server: Server, discovery: dict[str, Any], pkjwt_client: tuple[str, ECKey]
) -> None:
    """RFC 7523 §3 item 7 / FAPI 2.0 SP 5.3.2.1: a client assertion's jti is single-use. Authlib 1.9.6's
    PrivateKeyJWT(claims={...}) stores the first jti it generates in that dict and sends it again on
    every later request; the server must refuse the replay with 401 invalid_client."""
    client_id, key = pkjwt_client
    auth = PrivateKeyJWT(claims={"aud": discovery["issuer"]}, alg="ES256")
    with pkjwt_authlib(server, discovery, client_id, key, auth, scope="accounts") as client:
        seen = _capture(client)
        assert client.fetch_token(grant_type="client_credentials")["access_token"]
        with pytest.raises(OAuthError) as exc:
            client.fetch_token(grant_type="client_credentials")
        assert exc.value.error == "invalid_client" and seen[-1].status_code == 401
        jtis = [
            jwt.decode(dict(httpx.QueryParams(r.request.content.decode()))["client_assertion"], key).claims["jti"]
            for r in seen
        ]
        assert jtis[0] == jtis[1], "Authlib no longer reuses jti: this quirk is gone, drop this test"
