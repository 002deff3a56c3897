"""Signing keys: the JWKS (RFC 7517 §5, OIDC Core §10.1.1), the next → active → retired lifecycle,
rotation without restart, and private keys encrypted at rest."""

from __future__ import annotations

import json

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet
from support.database import db_rows
from support.demo import BASIC, NATIVE_REDIRECT
from support.flow import run_flow
from support.inprocess import InProcessServer
from support.server import Server
from support.tokens import client_credentials, exchange, introspect

pytestmark = pytest.mark.keys

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _keys_list(server: Server) -> dict[str, str]:
    """`fingrade keys list` as {kid: status}."""
    out = server.cli("keys", "list").stdout
    return {line.split("\t")[0]: line.split("\t")[2] for line in out.splitlines() if line.strip()}


def _kid(token: str) -> str:
    return jws.extract_compact(token.encode()).protected["kid"]


def test_jwks_publishes_next_and_active_public_keys_only(server: Server, http: httpx.Client) -> None:
    """RFC 7517 §5 key set; OIDC Core §10.1.1 the next key is published before use; no private member
    (RFC 7518 §6.2.2, §6.3.2) ever leaves the server."""
    resp = http.get("/jwks")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/jwk-set+json")
    published = resp.json()["keys"]
    kids = [k["kid"] for k in published]
    assert len(kids) == len(set(kids))
    for jwk in published:
        assert not PRIVATE_MEMBERS & jwk.keys(), jwk
        assert jwk["use"] == "sig" and jwk["alg"] in ("ES256", "PS256", "EdDSA")
    lifecycle = _keys_list(server)
    assert sorted(lifecycle.values()).count("active") == 1 and "next" in lifecycle.values()
    assert set(lifecycle) <= set(kids)  # every key the store holds is published, next included
    KeySet.import_key_set(resp.json())  # and the set is usable as published


def test_tokens_carry_the_active_kid(server: Server, browser: httpx.Client) -> None:
    """RFC 9068 §2.1 / OIDC Core §10.1: the JWS header names the signing key, the active one."""
    lifecycle = _keys_list(server)
    active = next(kid for kid, status in lifecycle.items() if status == "active")
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT)
    body = exchange(browser, got, client_id="demo-native").json()
    assert _kid(body["access_token"]) == active
    assert _kid(body["id_token"]) == active
    assert _kid(client_credentials(browser, "accounts")["access_token"]) == active


def test_rotation_switches_the_running_server_and_old_tokens_still_verify(clocked_server: InProcessServer) -> None:
    """`fingrade keys rotate`: next becomes active, active becomes retired, a fresh next appears; the
    running server signs with the new key once key_reload_seconds (10 s) have passed; tokens signed
    by the retired key still verify because it stays published (OIDC Core §10.1.1). The server runs
    in this process on a clock the test moves; the command line is another process."""
    srv = clocked_server
    srv.clock.freeze()
    with srv.client() as http:
        before = _keys_list(srv)
        old_active = next(k for k, s in before.items() if s == "active")
        old_next = next(k for k, s in before.items() if s == "next")
        old_token = client_credentials(http, "accounts")["access_token"]
        assert _kid(old_token) == old_active

        rotated = srv.cli("keys", "rotate")
        assert old_next in rotated.stdout

        after = _keys_list(srv)
        assert after[old_active] == "retired" and after[old_next] == "active"
        fresh_next = [k for k, s in after.items() if s == "next"]
        assert len(fresh_next) == 1 and fresh_next[0] not in before

        # The server follows without a restart, once its loaded keys are key_reload_seconds old.
        srv.clock.advance(11)
        new_token = client_credentials(http, "accounts")["access_token"]
        assert _kid(new_token) == old_next
        published = {k["kid"] for k in http.get("/jwks").json()["keys"]}
        assert {old_active, old_next, fresh_next[0]} <= published
        keys = KeySet.import_key_set(http.get("/jwks").json())
        jwt.decode(old_token, keys)  # a relying party can still check the old signature
        jwt.decode(new_token, keys)
        for token in (old_token, new_token):
            resp = introspect(http, token, auth=BASIC)
            assert resp.json()["active"] is True, resp.text


def test_private_keys_are_encrypted_at_rest(server: Server) -> None:
    """Private keys at rest are encrypted with a key from configuration. The stored blob holds
    neither a private member name nor the public coordinates that a plaintext JWK would carry."""
    rows = db_rows(server, "SELECT kid, private_jwk_encrypted, public_jwk FROM signing_keys")
    assert len(rows) >= 2
    for kid, sealed, public in rows:
        sealed = bytes(sealed)
        assert b'"d"' not in sealed and b'"kty"' not in sealed
        pub = json.loads(public)
        assert not PRIVATE_MEMBERS & pub.keys()
        for member in ("x", "y", "n"):
            if member in pub:
                assert pub[member].encode() not in sealed
        assert kid.encode() not in sealed
