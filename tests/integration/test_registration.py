"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), protected by
initial access tokens (RFC 7591 §3: the server MAY require one; here it does unless configured open)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.backends import BACKENDS
from support.database import audit_events, db_rows
from support.demo import SPA_ORIGIN
from support.fapi import new_key
from support.flow import authorize_steps, authorize_url, pkce_pair, query_of, run_flow
from support.inprocess import InProcessServer
from support.operator import new_user
from support.refusals import www_authenticate
from support.server import Server, dedicated_server
from support.tokens import bearer, exchange, introspect

pytestmark = pytest.mark.registration

NATIVE_META = {
    "client_name": "Registered mobile app",
    "application_type": "native",
    "token_endpoint_auth_method": "none",
    "redirect_uris": ["http://127.0.0.1/cb", "com.example.app:/cb"],
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "openid profile offline_access",
}
SPA_META = {
    "client_name": "Registered web app",
    "token_endpoint_auth_method": "none",
    "redirect_uris": ["https://localhost:3000/registered-cb"],
    "scope": "openid profile",
}
CONFIDENTIAL_META = {
    "client_name": "Registered fintech",
    "token_endpoint_auth_method": "client_secret_basic",
    "redirect_uris": ["https://fintech.example/cb"],
    "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
    "scope": "openid profile offline_access accounts",
}


def initial_access_token(server: Server, *extra: str) -> tuple[str, str]:
    """`fingrade registration-token create`: prints the token on stdout; returns (token, label)."""
    label = "test-" + secrets.token_hex(4)
    out = server.cli("registration-token", "create", "--label", label, *extra)
    token = out.stdout.strip().splitlines()[0]
    assert len(token) >= 32 and label in out.stderr
    return token, label


@pytest.fixture(scope="module")
def iat(server: Server) -> str:
    return initial_access_token(server)[0]


def register(http: httpx.Client, meta: dict[str, Any], token: str | None) -> httpx.Response:
    return http.post("/register", json=meta, headers=bearer(token) if token else {})


# -- initial access tokens --------------------------------------------------------------------


def test_registration_needs_an_initial_access_token(http: httpx.Client) -> None:
    """RFC 7591 §3 with RFC 6750 §3.1: closed registration without a valid token → 401 invalid_token."""
    for headers in ({}, bearer("not-a-real-token")):
        resp = http.post("/register", json=CONFIDENTIAL_META, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"] == "invalid_token"
        challenge = www_authenticate(resp)
        assert challenge["scheme"] == "bearer"


def test_registration_token_create_list_revoke(server: Server, http: httpx.Client) -> None:
    """`fingrade registration-token create/list/revoke`; a revoked token no longer registers."""
    token, label = initial_access_token(server)
    listed = server.cli("registration-token", "list").stdout
    assert any(line.startswith(label + "\t") and "revoked None" in line for line in listed.splitlines())
    assert token not in listed  # only the hash is stored
    assert register(http, CONFIDENTIAL_META, token).status_code == 201
    assert register(http, CONFIDENTIAL_META, token).status_code == 201  # reusable until revoked
    revoked = server.cli("registration-token", "revoke", label)
    assert revoked.returncode == 0
    resp = register(http, CONFIDENTIAL_META, token)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
    listed = server.cli("registration-token", "list").stdout
    assert any(line.startswith(label + "\t") and "revoked None" not in line for line in listed.splitlines())
    assert server.cli("registration-token", "revoke", label, check=False).returncode == 1


def test_expired_initial_access_token_is_refused(clocked_server: InProcessServer) -> None:
    """An initial access token created with --expires-in works until it expires, then no more. The
    server runs in this process on a clock the test moves (to the second)."""
    token, label = initial_access_token(clocked_server, "--expires-in", "60")
    sql = "SELECT created_at, expires_at FROM registration_tokens WHERE label = ?"
    created_at, expires_at = db_rows(clocked_server, sql, label)[0]
    assert expires_at == created_at + 60
    clocked_server.clock.freeze()
    clocked_server.clock.advance(expires_at - 1 - clocked_server.clock())
    with clocked_server.client() as http:
        assert register(http, CONFIDENTIAL_META, token).status_code == 201
        clocked_server.clock.advance(1)
        resp = register(http, CONFIDENTIAL_META, token)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"


# -- registering and using clients ------------------------------------------------------------


def test_register_native_client_and_use_it(server: Server, http: httpx.Client, browser: httpx.Client, iat: str) -> None:
    """RFC 7591 §3.2.1: 201 with client_id and the registered metadata; a public native client gets no
    secret and completes the PKCE flow from any loopback port (RFC 8252 §7.3)."""
    resp = register(http, NATIVE_META, iat)
    assert resp.status_code == 201, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert "client_secret" not in body
    assert body["token_endpoint_auth_method"] == "none" and body["application_type"] == "native"
    assert body["redirect_uris"] == NATIVE_META["redirect_uris"]
    assert body["grant_types"] == NATIVE_META["grant_types"] and body["response_types"] == ["code"]
    assert isinstance(body["client_id_issued_at"], int)
    assert body["registration_client_uri"] == f"{server.issuer}/register/{body['client_id']}"
    got = run_flow(browser, body["client_id"], "http://127.0.0.1:40123/cb", scope="openid offline_access")
    tokens = exchange(browser, got, client_id=body["client_id"])
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["refresh_token"]


def test_rfc8252_8_6_a_native_app_cannot_verify_itself(
    server: Server, http: httpx.Client, browser: httpx.Client, iat: str
) -> None:
    """RFC 8252 §8.6: only an operator can say a native client's identity is assured; the member sent
    in dynamic registration is not taken, so its repeated requests still ask the user."""
    resp = register(http, {**NATIVE_META, "identity_verified": True}, iat)
    assert resp.status_code == 201, resp.text
    cid = resp.json()["client_id"]
    assert "identity_verified" not in resp.json()
    username, password = new_user(server)
    authorize_steps(browser, cid, "http://127.0.0.1:40124/cb", "openid", username, password)
    assert authorize_steps(browser, cid, "http://127.0.0.1:40124/cb", "openid", username, password).saw_consent


def test_register_spa_client_and_use_it_cross_origin(http: httpx.Client, browser: httpx.Client, iat: str) -> None:
    """A public web client (spa profile): its redirect URI's origin may call /token cross-origin."""
    resp = register(http, SPA_META, iat)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["security_profile"] == "spa" and "client_secret" not in body
    got = run_flow(browser, body["client_id"], SPA_META["redirect_uris"][0])
    tokens = exchange(browser, got, client_id=body["client_id"], headers={"Origin": SPA_ORIGIN})
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["access-control-allow-origin"] == SPA_ORIGIN


def test_register_confidential_client_and_use_it(
    server: Server, http: httpx.Client, browser: httpx.Client, iat: str
) -> None:
    """RFC 7591 §3.2.1: a confidential client gets a server-generated secret (client_secret_expires_at
    0 = never) and uses it at /token."""
    resp = register(http, CONFIDENTIAL_META, iat)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    cid, secret = body["client_id"], body["client_secret"]
    assert len(secret) >= 43 and body["client_secret_expires_at"] == 0
    got = run_flow(browser, cid, CONFIDENTIAL_META["redirect_uris"][0], scope="openid accounts")
    tokens = exchange(browser, got, auth=(cid, secret))
    assert tokens.status_code == 200, tokens.text
    cc = http.post("/token", auth=(cid, secret), data={"grant_type": "client_credentials", "scope": "accounts"})
    assert cc.status_code == 200, cc.text
    assert audit_events(server, "client_registered", client_id=cid)


def test_client_id_is_chosen_by_the_server(http: httpx.Client, iat: str) -> None:
    """RFC 9700 §4.15: clients must not pick identifiers that could collide with a user's `sub`."""
    resp = register(http, {**CONFIDENTIAL_META, "client_id": "alice"}, iat)
    assert resp.status_code == 201 and resp.json()["client_id"] != "alice"


def test_private_key_jwt_client_with_public_jwks(http: httpx.Client, iat: str) -> None:
    """RFC 7591 §2 `jwks` by value with public keys is accepted for private_key_jwt."""
    key = new_key("ES256")
    meta = {
        **CONFIDENTIAL_META,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.as_dict(private=False)]},
    }
    resp = register(http, meta, iat)
    assert resp.status_code == 201, resp.text
    assert "client_secret" not in resp.json()


# -- metadata errors (RFC 7591 §3.2.2) --------------------------------------------------------


@pytest.mark.parametrize(
    "uris,profile_meta",
    [
        (["javascript:alert(document.domain)"], {}),  # CVE-2026-22752: stored XSS through redirect_uris
        (["javascript:alert(1)//"], NATIVE_META),
        (["JavaScript:alert(1)"], NATIVE_META),
        (["data:text/html,<script>alert(1)</script>"], NATIVE_META),
        (["http://fintech.example/cb"], {}),  # web clients: https only (RFC 9700 §2.6; FAPI 2.0 SP 5.3.2.2-8)
        (["http://localhost/cb"], NATIVE_META),  # RFC 8252 §8.3: loopback IP literal, not localhost
        (["https://fintech.example/cb#frag"], {}),  # RFC 6749 §3.1.2: no fragment
        (["https://user@fintech.example/cb"], {}),
        (["https://fintech.example/a/../cb"], {}),
        (["https://fintech.example/c b"], {}),
        # RFC 3986 §3.2.2-§3.2.3: a host and a port that are not one (these reached the pages' CSP).
        (["https://a.com;x/cb"], {}),
        (["https://fintech.example:99999/cb"], {}),
        (["https://fintech.example,evil.example/cb"], {}),
        (["com.example.app://a;b/cb"], NATIVE_META),
        ([], {}),  # the code grant needs at least one redirect URI (RFC 7591 §2)
    ],
)
def test_invalid_redirect_uri(http: httpx.Client, iat: str, uris: list[str], profile_meta: dict) -> None:
    """RFC 7591 §3.2.2 invalid_redirect_uri (400)."""
    meta = {**(profile_meta or CONFIDENTIAL_META), "redirect_uris": uris}
    resp = register(http, meta, iat)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_redirect_uri"


def _rsa_private_jwk() -> dict:
    return new_key("PS256").as_dict(private=True)


@pytest.mark.parametrize(
    "change",
    [
        {"jwks_uri": "https://fintech.example/jwks.json", "token_endpoint_auth_method": "private_key_jwt"},
        {"jwks_uri": "http://169.254.169.254/latest/meta-data", "token_endpoint_auth_method": "private_key_jwt"},
        {"grant_types": ["password"]},
        {"grant_types": ["implicit"]},
        {"grant_types": ["urn:ietf:params:oauth:grant-type:device_code"]},
        {"grant_types": "authorization_code"},
        {"response_types": ["token"]},
        {"response_types": ["code id_token"]},
        {"token_endpoint_auth_method": "client_secret_jwt"},
        {"token_endpoint_auth_method": "private_key_jwt"},  # without keys
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [_rsa_private_jwk()]}},
        {"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
        {"scope": "openid admin"},
        {"client_name": ""},
        {"client_uri": "javascript:alert(1)"},
        {"logo_uri": "http://fintech.example/logo.png"},
        {"security_profile": "superuser"},
    ],
)
def test_invalid_client_metadata(http: httpx.Client, iat: str, change: dict) -> None:
    """RFC 7591 §3.2.2 invalid_client_metadata (400); jwks_uri is refused (no server-side fetches,
    CVE-2026-22752 SSRF); private key material in jwks is refused."""
    resp = register(http, {**CONFIDENTIAL_META, **change}, iat)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_client_metadata"


@pytest.mark.parametrize(
    "change",
    [
        {"grant_types": ["client_credentials"]},  # a public client has nothing to authenticate with
        {"token_endpoint_auth_method": "client_secret_basic", "security_profile": "native"},
    ],
)
def test_public_clients_cannot_have_confidential_features(http: httpx.Client, iat: str, change: dict) -> None:
    resp = register(http, {**NATIVE_META, **change}, iat)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_client_metadata", resp.text


@pytest.mark.parametrize(
    "body,ctype",
    [
        (b"{not json", "application/json"),
        (b"[]", "application/json"),
        (b"client_name=x", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_registration_body(http: httpx.Client, iat: str, body: bytes, ctype: str) -> None:
    """RFC 7591 §3.1: the body is a JSON object."""
    resp = http.post("/register", content=body, headers={**bearer(iat), "Content-Type": ctype})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_client_metadata"


def _json_text(meta: dict, extra: str) -> bytes:
    """`meta` as JSON text with `extra` (raw members) spliced in before the closing brace."""
    return (json.dumps(meta)[:-1] + ", " + extra + "}").encode()


# Valid JSON that two parsers could read differently, or that cannot be stored: refused outright.
AMBIGUOUS_BODIES = {
    "repeated-member": _json_text(CONFIDENTIAL_META, '"client_name": "Second name"'),
    "repeated-nested-member": _json_text(CONFIDENTIAL_META, '"jwks": {"keys": [], "keys": []}'),
    "repeated-auth-method": _json_text(
        {**CONFIDENTIAL_META, "token_endpoint_auth_method": "none"},
        '"token_endpoint_auth_method": "client_secret_basic"',
    ),
    "nan": _json_text(CONFIDENTIAL_META, '"default_max_age": NaN'),
    "huge-number": _json_text(CONFIDENTIAL_META, '"default_max_age": 1e999'),
    "huge-integer": _json_text(CONFIDENTIAL_META, '"default_max_age": ' + "9" * 400),
    "lone-surrogate": _json_text(
        {k: v for k, v in CONFIDENTIAL_META.items() if k != "client_name"}, '"client_name": "\\ud800"'
    ),
    "nul": _json_text({k: v for k, v in CONFIDENTIAL_META.items() if k != "client_name"}, '"client_name": "a\\u0000b"'),
    "deep": _json_text(CONFIDENTIAL_META, '"x": ' + "[" * 200 + "]" * 200),
    "bad-utf8": _json_text(
        {k: v for k, v in CONFIDENTIAL_META.items() if k != "client_name"}, '"client_name": "X"'
    ).replace(b'"X"', b'"\xff"'),
    "bom": b"\xef\xbb\xbf" + json.dumps(CONFIDENTIAL_META).encode(),
}


@pytest.mark.parametrize("name", sorted(AMBIGUOUS_BODIES))
def test_ambiguous_json_is_refused_and_nothing_registered_rfc8259_4(
    server: Server, http: httpx.Client, iat: str, name: str
) -> None:
    """RFC 7591 §3.2.2 invalid_client_metadata for JSON whose members are repeated (RFC 8259 §4: the
    last one is not necessarily what another reader sees), NaN, numbers beyond any float, lone
    surrogates (§8.2), U+0000, deep nesting, invalid UTF-8 or a BOM (§8.1): 400, no client written."""
    before = db_rows(server, "SELECT COUNT(*) FROM clients")[0][0]
    resp = http.post(
        "/register", content=AMBIGUOUS_BODIES[name], headers={**bearer(iat), "Content-Type": "application/json"}
    )
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.json()["error"] == "invalid_client_metadata"
    assert db_rows(server, "SELECT COUNT(*) FROM clients")[0][0] == before


# -- management (RFC 7592) --------------------------------------------------------------------


@pytest.fixture
def registered(http: httpx.Client, iat: str) -> dict:
    resp = register(http, CONFIDENTIAL_META, iat)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_read_with_registration_access_token(http: httpx.Client, registered: dict) -> None:
    """RFC 7592 §2.1 read → 200 with the client information response of §3 (which REQUIRES
    registration_client_uri and registration_access_token)."""
    resp = http.get(registered["registration_client_uri"], headers=bearer(registered["registration_access_token"]))
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["client_id"] == registered["client_id"]
    assert body["redirect_uris"] == CONFIDENTIAL_META["redirect_uris"]
    assert body["registration_client_uri"] == registered["registration_client_uri"]
    assert body["registration_access_token"]
    assert "client_secret" not in body or body["client_secret"] == registered["client_secret"]


def test_wrong_registration_access_token_is_401(server: Server, http: httpx.Client, registered: dict, iat: str) -> None:
    """RFC 7592 §2: an invalid registration access token → 401 invalid_token, the same for a client
    that does not exist (no enumeration); the initial access token is not a registration token."""
    uri = registered["registration_client_uri"]
    for headers in ({}, bearer("wrong"), bearer(iat), bearer(registered["client_secret"])):
        for method in ("GET", "PUT", "DELETE"):
            resp = http.request(method, uri, headers=headers, json={"client_id": registered["client_id"]})
            assert resp.status_code == 401, (method, resp.text)
            assert resp.json()["error"] == "invalid_token"
    # Another client's registration access token does not open this one.
    other = register(http, CONFIDENTIAL_META, iat).json()
    resp = http.get(uri, headers=bearer(other["registration_access_token"]))
    assert resp.status_code == 401
    resp = http.get(f"{server.issuer}/register/c_doesnotexist", headers=bearer(registered["registration_access_token"]))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"


def test_update_replaces_metadata(http: httpx.Client, browser: httpx.Client, registered: dict) -> None:
    """RFC 7592 §2.2: PUT with the full metadata (client_id included) replaces the registration."""
    uri, rat = registered["registration_client_uri"], registered["registration_access_token"]
    new_uris = ["https://fintech.example/cb", "https://fintech.example/cb2"]
    meta = {
        **CONFIDENTIAL_META,
        "client_id": registered["client_id"],
        "redirect_uris": new_uris,
        "client_name": "Renamed fintech",
    }
    resp = http.put(uri, headers=bearer(rat), json=meta)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["redirect_uris"] == new_uris and body["client_name"] == "Renamed fintech"
    assert body["registration_client_uri"] == uri and body["registration_access_token"]
    rat = body["registration_access_token"]
    assert http.get(uri, headers=bearer(rat)).json()["client_name"] == "Renamed fintech"
    # The secret is unchanged and the new redirect URI works at once.
    got = run_flow(browser, registered["client_id"], new_uris[1], scope="openid")
    assert exchange(browser, got, auth=(registered["client_id"], registered["client_secret"])).status_code == 200
    # RFC 7592 §2.2: the client_id in the body must match; invalid metadata is refused as at registration.
    resp = http.put(uri, headers=bearer(rat), json={**meta, "client_id": "someone-else"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_client_metadata"
    resp = http.put(uri, headers=bearer(rat), json={**meta, "redirect_uris": ["javascript:alert(1)"]})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_redirect_uri"


def test_update_with_a_repeated_member_changes_nothing_rfc7592_2_2(http: httpx.Client, registered: dict) -> None:
    """RFC 7592 §2.2 update: a body with a repeated member is invalid_client_metadata, and the
    registration keeps its metadata."""
    headers = {**bearer(registered["registration_access_token"]), "Content-Type": "application/json"}
    meta = {k: v for k, v in registered.items() if k in CONFIDENTIAL_META or k == "client_id"}
    body = _json_text({**meta, "client_name": "First"}, '"client_name": "Changed"')
    resp = http.put(f"/register/{registered['client_id']}", content=body, headers=headers)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_client_metadata", resp.text
    read = http.get(f"/register/{registered['client_id']}", headers=headers)
    assert read.json()["client_name"] == registered["client_name"]


def test_oidc_core_11_remembered_consent_covers_only_what_the_page_showed(
    server: Server, http: httpx.Client, iat: str
) -> None:
    """OIDC Core §11: consent to a refresh token must be obtained. A client not registered for the
    refresh_token grant asks offline_access: the page does not show "Stay connected", so the remembered
    consent does not include it; after the client adds the grant (RFC 7592 update) the customer is
    asked again (prompt=none: consent_required) instead of a refresh token arriving unapproved."""
    meta = {**CONFIDENTIAL_META, "grant_types": ["authorization_code"]}
    reg = register(http, meta, iat).json()
    cid, secret, redirect = reg["client_id"], reg["client_secret"], meta["redirect_uris"][0]
    username, password = new_user(server)
    with server.client(follow_redirects=False) as browser:
        first = authorize_steps(browser, cid, redirect, "openid offline_access", username, password)
        assert first.saw_consent
        assert "refresh_token" not in exchange(browser, first.result, auth=(cid, secret)).json()
        assert not authorize_steps(browser, cid, redirect, "openid offline_access", username, password).saw_consent
        resp = http.put(
            reg["registration_client_uri"],
            headers=bearer(reg["registration_access_token"]),
            json={
                **meta,
                "client_id": cid,
                "client_secret": secret,
                "grant_types": ["authorization_code", "refresh_token"],
            },
        )
        assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 15  # the server's client cache (client_cache_seconds)
        while True:
            _, challenge = pkce_pair()
            silent = browser.get(authorize_url(cid, redirect, challenge, "openid offline_access", prompt="none"))
            got = query_of(silent.headers["location"])
            if "error" in got or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert got.get("error") == "consent_required", got
        again = authorize_steps(browser, cid, redirect, "openid offline_access", username, password)
        assert again.saw_consent
        assert exchange(browser, again.result, auth=(cid, secret)).json()["refresh_token"]


def test_update_cannot_change_the_security_profile(http: httpx.Client, registered: dict) -> None:
    """A confidential client must not turn itself into a public one (or back) through RFC 7592 PUT:
    it would drop client authentication for every grant it already holds."""
    uri, rat = registered["registration_client_uri"], registered["registration_access_token"]
    for change in (
        {"token_endpoint_auth_method": "none"},
        {"token_endpoint_auth_method": "none", "application_type": "native", "redirect_uris": ["http://127.0.0.1/cb"]},
    ):
        resp = http.put(
            uri, headers=bearer(rat), json={**CONFIDENTIAL_META, **change, "client_id": registered["client_id"]}
        )
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_client_metadata", resp.text
    assert http.get(uri, headers=bearer(rat)).json()["token_endpoint_auth_method"] == "client_secret_basic"


def test_delete_removes_the_client_and_its_tokens_stop_working(
    server: Server, http: httpx.Client, browser: httpx.Client, registered: dict
) -> None:
    """RFC 7592 §2.3: DELETE → 204; afterwards the client is unknown and every token it held is
    invalid (the grant is gone)."""
    cid, secret = registered["client_id"], registered["client_secret"]
    uri, rat = registered["registration_client_uri"], registered["registration_access_token"]
    got = run_flow(browser, cid, CONFIDENTIAL_META["redirect_uris"][0], scope="openid profile offline_access")
    user = exchange(browser, got, auth=(cid, secret)).json()
    cc = http.post("/token", auth=(cid, secret), data={"grant_type": "client_credentials", "scope": "accounts"}).json()
    rs = server.add_client(
        "--name", "RS", "--profile", "confidential", "--grant-type", "client_credentials", "--resource-server"
    )
    rs_auth = (rs["client_id"], rs["client_secret"])
    for token in (user["access_token"], user["refresh_token"], cc["access_token"]):
        assert introspect(http, token, auth=rs_auth).json()["active"] is True

    resp = http.delete(uri, headers=bearer(rat))
    assert resp.status_code == 204 and resp.content == b""

    assert http.get(uri, headers=bearer(rat)).status_code == 401
    for name, token in (
        ("user access", user["access_token"]),
        ("user refresh", user["refresh_token"]),
        ("client_credentials", cc["access_token"]),
    ):
        assert introspect(http, token, auth=rs_auth).json() == {"active": False}, name
    assert http.get("/userinfo", headers=bearer(user["access_token"])).status_code == 401
    resp = http.post("/token", auth=(cid, secret), data={"grant_type": "client_credentials"})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    resp = browser.get(f"/authorize?client_id={cid}&response_type=code&redirect_uri=https://fintech.example/cb")
    assert resp.status_code == 400 and "location" not in resp.headers
    assert audit_events(server, "client_deleted", client_id=cid)


# -- open registration ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def open_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with dedicated_server(
        tmp_path_factory.mktemp("open-" + request.param), request.param, {"FINGRADE_REGISTRATION_OPEN": "true"}
    ) as srv:
        yield srv


def test_open_registration_needs_no_initial_access_token(open_server: Server) -> None:
    """RFC 7591 §3: registration_open = true lets anyone register; the metadata rules still apply and
    the management token still protects the registration."""
    with open_server.client() as http:
        resp = http.post("/register", json=CONFIDENTIAL_META)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        cc = http.post(
            "/token",
            auth=(body["client_id"], body["client_secret"]),
            data={"grant_type": "client_credentials", "scope": "accounts"},
        )
        assert cc.status_code == 200
        bad = http.post("/register", json={**CONFIDENTIAL_META, "redirect_uris": ["javascript:alert(1)"]})
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_redirect_uri"
        assert http.get(body["registration_client_uri"]).status_code == 401
