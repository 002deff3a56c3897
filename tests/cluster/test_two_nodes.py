"""Stateless nodes: two server processes sharing one PostgreSQL and one Redis behave as one
authorization server (DESIGN.md: no in-process state another node would need)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from joserfc import jws
from support.flow import pkce_pair, run_flow
from support.server import DEMO_SECRET, Server, drop_pg_database, start_server

REDIRECT = "http://127.0.0.1:40111/callback"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    tmp: Path = tmp_path_factory.mktemp("cluster")
    fast_reload = {"FINGRADE_KEY_RELOAD_SECONDS": "1"}
    a = start_server(tmp, backend="postgres", extra_env=fast_reload)
    # Behind one load balancer every node has the same issuer.
    b = start_server(
        tmp,
        backend="postgres",
        database_url=a.env["FINGRADE_DATABASE_URL"],
        secrets_from=a,
        extra_env={**fast_reload, "FINGRADE_ISSUER": a.issuer},
    )
    yield a, b
    a.stop()
    b.stop()
    drop_pg_database(a.env["FINGRADE_DATABASE_URL"])


def _token(node: Server, code: str, verifier: str) -> httpx.Response:
    with node.client() as c:
        return c.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": "demo-native",
                "code_verifier": verifier,
            },
        )


def test_code_from_one_node_redeems_on_the_other(nodes: tuple[Server, Server]) -> None:
    a, b = nodes
    with a.client(follow_redirects=False) as browser:
        got = run_flow(browser, "demo-native", REDIRECT)
    resp = _token(b, got.code, got.verifier)
    assert resp.status_code == 200, resp.text
    # The access token minted by node B is accepted by node A (shared keys, shared revocation state).
    with a.client() as c:
        info = c.get("/userinfo", headers={"Authorization": "Bearer " + resp.json()["access_token"]})
    assert info.status_code == 200
    # The client's retry (its answer was lost) on the other node gets the same answer: the kept
    # answer is in the shared one-time store, sealed under the shared key-encryption key.
    again = _token(a, got.code, got.verifier)
    assert again.status_code == 200 and again.json() == resp.json(), again.text
    # A redemption by anyone else (another verifier), on either node, fails (RFC 6749 §4.1.2).
    assert _token(a, got.code, pkce_pair()[0]).json()["error"] == "invalid_grant"


def test_concurrent_redemption_on_two_nodes_has_one_winner(nodes: tuple[Server, Server]) -> None:
    """RFC 6749 §4.1.2 / RFC 9700 §4.5: of simultaneous redemptions by different parties (different
    verifiers), at most one gets tokens (and the others' reuse revokes them)."""
    a, b = nodes
    for _ in range(5):
        with a.client(follow_redirects=False) as browser:
            got = run_flow(browser, "demo-native", REDIRECT)
        results: list[int] = []
        barrier = threading.Barrier(4)

        def redeem(node: Server, verifier: str) -> None:
            with node.client() as c:
                barrier.wait()
                results.append(
                    c.post(
                        "/token",
                        data={
                            "grant_type": "authorization_code",
                            "code": got.code,
                            "redirect_uri": REDIRECT,
                            "client_id": "demo-native",
                            "code_verifier": verifier,
                        },
                    ).status_code
                )

        verifiers = [got.verifier] + [pkce_pair()[0] for _ in range(3)]
        threads = [threading.Thread(target=redeem, args=(n, v)) for n, v in zip((a, b, a, b), verifiers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(200) <= 1 and sorted(results)[-3:] == [400, 400, 400], results


def _signing_kid(node: Server) -> str:
    with node.client() as c:
        resp = c.post(
            "/token", auth=("demo-backend", DEMO_SECRET), data={"grant_type": "client_credentials", "scope": "accounts"}
        )
        assert resp.status_code == 200
        return jws.extract_compact(resp.json()["access_token"].encode()).protected["kid"]


@pytest.mark.keys
def test_key_rotation_reaches_both_nodes_without_restart(nodes: tuple[Server, Server]) -> None:
    a, b = nodes
    with a.client() as c:
        before = {k["kid"] for k in c.get("/jwks").json()["keys"]}
    old_kid = _signing_kid(a)
    a.cli("keys", "rotate")
    time.sleep(1.5)  # key_reload_seconds = 1 on these nodes
    new_kids = {_signing_kid(a), _signing_kid(b)}
    assert len(new_kids) == 1 and old_kid not in new_kids
    # Every key published before the rotation is still published (tokens they signed still verify).
    with b.client() as c:
        after = {k["kid"] for k in c.get("/jwks").json()["keys"]}
    assert before <= after and len(after) == len(before) + 1


@pytest.mark.dpop
@pytest.mark.client_auth
def test_replays_are_refused_on_the_other_node(nodes: tuple[Server, Server], tmp_path: Path) -> None:
    """The replay caches are shared by all nodes (one-time store on Redis): a client assertion
    (RFC 7523 §3, OIDC Core §9) or a DPoP proof (RFC 9449 §11.1) used on node A is refused on node B."""
    import json
    import secrets

    from joserfc import jwt
    from joserfc.jwk import ECKey
    from support.dpop import DPoPKey

    a, b = nodes
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    client_id = a.add_client(
        "--name",
        "two-node jwt",
        "--profile",
        "confidential",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(tmp_path / "jwks.json"),
        "--grant-type",
        "client_credentials",
        "--scope",
        "accounts",
    )["client_id"]
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES256", "kid": "k1"},
        {
            "iss": client_id,
            "sub": client_id,
            "aud": a.issuer,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 60,
        },
        key,
        algorithms=["ES256"],
    )
    form = {
        "grant_type": "client_credentials",
        "scope": "accounts",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    with a.client() as ca, b.client() as cb:
        assert ca.post("/token", data=form).status_code == 200
        replay = cb.post("/token", data=form)
        assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"

        proof = DPoPKey().proof("POST", a.issuer + "/token")
        cc = {"grant_type": "client_credentials", "scope": "accounts"}
        first = ca.post("/token", auth=("demo-backend", DEMO_SECRET), data=cc, headers={"DPoP": proof})
        assert first.status_code == 200 and first.json()["token_type"] == "DPoP"
        replay = cb.post("/token", auth=("demo-backend", DEMO_SECRET), data=cc, headers={"DPoP": proof})
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof"


@pytest.mark.dpop
@pytest.mark.par
@pytest.mark.client_auth
def test_fapi2_replays_at_par_and_token_are_refused_on_the_other_node(
    nodes: tuple[Server, Server], tmp_path: Path
) -> None:
    """FAPI 2.0 client (profile fapi2, private_key_jwt + DPoP): a client assertion (RFC 7523 §3) or a
    DPoP proof (RFC 9449 §11.1) accepted by node A at the PAR endpoint or the token endpoint is
    refused when replayed on node B, and the other way round. Every request here is otherwise valid
    (the other credential fresh), so the replay is the only reason for the refusal."""
    from support.fapi import FapiClient
    from support.refusals import assert_oauth_error

    a, b = nodes
    fapi = FapiClient.register(a, tmp_path)  # aud and htu are the shared issuer (node A's URL)
    with a.client() as ca, b.client() as cb:
        # PAR on A, then the same assertion, and the same proof, each at B's PAR endpoint.
        params, verifier = fapi.request_params()
        auth, proof = fapi.auth_params(), fapi.dpop_header("/par")
        pushed = ca.post("/par", data={**params, **auth}, headers=proof)
        assert pushed.status_code == 201, pushed.text
        assert_oauth_error(
            cb.post("/par", data={**params, **auth}, headers=fapi.dpop_header("/par")), "invalid_client", 401
        )
        assert_oauth_error(
            cb.post("/par", data={**params, **fapi.auth_params()}, headers=proof), "invalid_dpop_proof", 400
        )

        # The pushed request is completed on A's front channel; the code is redeemed on B.
        with a.client(follow_redirects=False) as browser:
            got = fapi.authorize(browser, pushed.json()["request_uri"], verifier)
        assert got.code, got.params
        token_auth, token_proof = fapi.auth_params(), fapi.dpop_header("/token")
        redeemed = cb.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": got.code,
                "redirect_uri": got.redirect_uri,
                "code_verifier": got.verifier,
                **token_auth,
            },
            headers=token_proof,
        )
        assert redeemed.status_code == 200, redeemed.text
        assert redeemed.json()["token_type"] == "DPoP"
        # B's token-endpoint assertion and proof, replayed at A (client_credentials, otherwise valid).
        cc = {"grant_type": "client_credentials", "scope": "accounts"}
        assert_oauth_error(
            ca.post("/token", data={**cc, **token_auth}, headers=fapi.dpop_header("/token")), "invalid_client", 401
        )
        assert_oauth_error(
            ca.post("/token", data={**cc, **fapi.auth_params()}, headers=token_proof), "invalid_dpop_proof", 400
        )
        # Fresh credentials on A still work: the refusals above were for the replays only.
        fresh = ca.post("/token", data={**cc, **fapi.auth_params()}, headers=fapi.dpop_header("/token"))
        assert fresh.status_code == 200 and fresh.json()["token_type"] == "DPoP", fresh.text
