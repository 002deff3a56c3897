"""A token request whose answer was lost can be retried (docs/security.md, "Tokens"): within
`token_retry_grace_seconds`, the same client with the same proof of possession (DPoP key,
certificate, PKCE verifier) presenting a used code or a rotated-away refresh token gets the same
answer, and the grant lives on. Theft detection stays (RFC 6749 §4.1.2, RFC 9700 §4.5, §4.14.2):
another client, key or verifier, or a retry after the grace period, revokes the grant and is
audited as `code_reuse` / `refresh_reuse`. Real server, both backends; "lost" = the client simply
sends the request again."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.database import audit_events, db_rows
from support.demo import BACKEND, BACKEND_REDIRECT, NATIVE, NATIVE_REDIRECT, SPA
from support.dpop import DPoPKey
from support.flow import pkce_pair, run_flow
from support.inprocess import InProcessServer
from support.refusals import assert_bearer_refused, assert_oauth_error
from support.server import DEMO_SECRET, REDIS_URL, Server
from support.tokens import Kit, race

pytestmark = pytest.mark.refresh


@pytest.fixture(scope="module")
def resource_server(server: Server) -> tuple[str, str]:
    """A client allowed to introspect other clients' tokens (RFC 7662 §4)."""
    out = server.add_client(
        "--name",
        "Retry RS",
        "--profile",
        "confidential",
        "--grant-type",
        "client_credentials",
        "--scope",
        "accounts",
        "--resource-server",
    )
    return out["client_id"], out["client_secret"]


@pytest.fixture
def kit(server: Server, browser: httpx.Client, resource_server: tuple[str, str]) -> Kit:
    return Kit(server, browser, resource_server)


def grant_of(tokens: dict[str, Any]) -> str:
    part = tokens["access_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["grant_id"]


def reuse_audited(server: Server, event: str, grant_id: str) -> bool:
    return any(json.loads(row[4]).get("grant_id") == grant_id for row in audit_events(server, event))


def same_answer(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.json() == b.json()
    assert b.headers["cache-control"] == "no-store"


def dpop_headers(server: Server, key: DPoPKey) -> dict[str, str]:
    return {"DPoP": key.proof("POST", server.issuer + "/token")}  # a fresh proof (new jti) every time


def redeem(kit: Kit, code: str, verifier: str, client_id: str = NATIVE, key: DPoPKey | None = None) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": NATIVE_REDIRECT,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    return kit.browser.post("/token", data=data, headers=dpop_headers(kit.server, key) if key else None)


def refresh(kit: Kit, rt: str, key: DPoPKey | None, client_id: str = NATIVE) -> httpx.Response:
    return kit.browser.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": client_id},
        headers=dpop_headers(kit.server, key) if key else None,
    )


def assert_revoked(kit: Kit, tokens: dict[str, Any]) -> None:
    assert kit.introspect(tokens["access_token"]) == {"active": False}
    if "refresh_token" in tokens:
        assert kit.introspect(tokens["refresh_token"]) == {"active": False}


# -- codes ------------------------------------------------------------------------------------------


def test_lost_code_answer_retried_gets_the_same_tokens(kit: Kit) -> None:
    """The public client redeems its code, the answer is lost, it sends the same request again:
    the same tokens, which stay active; nothing revoked, no code_reuse audited."""
    got = kit.native_code()
    first = redeem(kit, got.code, got.verifier)
    again = redeem(kit, got.code, got.verifier)
    same_answer(first, again)
    tokens = first.json()
    assert kit.active(tokens["access_token"]) and kit.active(tokens["refresh_token"])
    assert kit.refresh(NATIVE, tokens["refresh_token"]).status_code == 200
    assert not reuse_audited(kit.server, "code_reuse", grant_of(tokens))


def test_lost_code_answer_retried_by_confidential_client(kit: Kit) -> None:
    """The same for a confidential client: same client authentication, same verifier."""
    got = kit.backend_code()
    first, again = kit.redeem_backend(got.code, got.verifier), kit.redeem_backend(got.code, got.verifier)
    same_answer(first, again)
    assert kit.active(first.json()["access_token"])
    assert not reuse_audited(kit.server, "code_reuse", grant_of(first.json()))


def test_lost_dpop_code_answer_retried_with_the_same_key_rfc9449_5(kit: Kit) -> None:
    """With DPoP: a new proof by the same key gets the same DPoP-bound tokens."""
    key = DPoPKey()
    got = kit.native_code()
    first = redeem(kit, got.code, got.verifier, key=key)
    assert first.json()["token_type"] == "DPoP"
    same_answer(first, redeem(kit, got.code, got.verifier, key=key))
    assert kit.active(first.json()["access_token"])
    assert not reuse_audited(kit.server, "code_reuse", grant_of(first.json()))


def test_code_retry_with_another_verifier_is_reuse_rfc6749_4_1_2(kit: Kit) -> None:
    got = kit.native_code()
    tokens = redeem(kit, got.code, got.verifier).json()
    assert_oauth_error(redeem(kit, got.code, pkce_pair()[0]), "invalid_grant")
    assert_revoked(kit, tokens)
    assert reuse_audited(kit.server, "code_reuse", grant_of(tokens))
    # The legitimate client's own retry gets nothing from a revoked grant.
    assert_oauth_error(redeem(kit, got.code, got.verifier), "invalid_grant")


def test_code_retry_with_another_dpop_key_is_reuse_rfc6749_4_1_2(kit: Kit) -> None:
    got = kit.native_code()
    key = DPoPKey()
    tokens = redeem(kit, got.code, got.verifier, key=key).json()
    assert_oauth_error(redeem(kit, got.code, got.verifier, key=DPoPKey()), "invalid_grant")
    assert_revoked(kit, tokens)
    assert reuse_audited(kit.server, "code_reuse", grant_of(tokens))


def test_code_retry_without_the_dpop_proof_is_reuse_rfc6749_4_1_2(kit: Kit) -> None:
    got = kit.native_code()
    tokens = redeem(kit, got.code, got.verifier, key=DPoPKey()).json()
    assert_oauth_error(redeem(kit, got.code, got.verifier), "invalid_grant")
    assert_revoked(kit, tokens)


def test_code_retry_by_another_client_is_reuse_rfc6749_4_1_2(kit: Kit) -> None:
    """Another client with the right verifier and redirect URI (it intercepted both): theft."""
    got = kit.native_code()
    tokens = redeem(kit, got.code, got.verifier).json()
    assert_oauth_error(redeem(kit, got.code, got.verifier, client_id=SPA), "invalid_grant")
    assert_revoked(kit, tokens)
    assert reuse_audited(kit.server, "code_reuse", grant_of(tokens))


def test_concurrent_retries_with_one_proof_mint_one_set_of_tokens(server: Server, kit: Kit) -> None:
    """Eight simultaneous redemptions of one code with the same verifier (a client retrying on a
    timeout): the code is consumed once, so one set of tokens is minted; every answer is that set
    (or invalid_grant when the first had not answered yet), and the grant lives."""
    got = kit.native_code()
    results = race(server, 8, lambda c: kit.redeem_native(got.code, got.verifier, client=c))
    ok = [r.json() for r in results if r.status_code == 200]
    assert ok and all(body == ok[0] for body in ok), [r.text[:100] for r in results]
    for r in results:
        if r.status_code != 200:
            assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    assert kit.active(ok[0]["access_token"])


def test_kept_answer_is_sealed_in_the_one_time_store(kit: Kit) -> None:
    """The kept answer is AES-GCM sealed: no token is readable in the store (SQL table or Redis)."""
    got = kit.native_code()
    tokens = redeem(kit, got.code, got.verifier).json()
    if kit.server.backend == "sqlite":
        stored = " ".join(row[0] for row in db_rows(kit.server, "SELECT value FROM onetime WHERE kind = 'token_retry'"))
    else:
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        prefix = kit.server.env["FINGRADE_REDIS_PREFIX"] + "token_retry:"
        stored = " ".join(str(r.hgetall(k)) for k in r.scan_iter(prefix + "*"))
        r.close()
    assert "sealed" in stored
    for name in ("access_token", "refresh_token", "id_token"):
        assert tokens[name] not in stored and tokens[name].split(".")[-1] not in stored


# -- refresh tokens ------------------------------------------------------------------------------------


def dpop_native_tokens(kit: Kit, key: DPoPKey) -> dict[str, Any]:
    got = kit.native_code()
    resp = redeem(kit, got.code, got.verifier, key=key)
    assert resp.status_code == 200 and resp.json()["token_type"] == "DPoP", resp.text
    return resp.json()


def test_lost_rotation_answer_retried_with_the_same_key_rfc9700_4_14_2(kit: Kit) -> None:
    """A public client's DPoP-bound refresh token rotated, the answer lost: the retry with a new
    proof by the same key gets the same new refresh and access tokens; no refresh_reuse."""
    key = DPoPKey()
    tokens = dpop_native_tokens(kit, key)
    first = refresh(kit, tokens["refresh_token"], key)
    assert first.status_code == 200 and first.json()["refresh_token"] != tokens["refresh_token"], first.text
    same_answer(first, refresh(kit, tokens["refresh_token"], key))
    rotated = first.json()
    assert kit.active(rotated["access_token"]) and kit.active(rotated["refresh_token"])
    assert refresh(kit, rotated["refresh_token"], key).status_code == 200  # the family goes on
    assert not reuse_audited(kit.server, "refresh_reuse", grant_of(tokens))


@pytest.mark.parametrize("thief", ["another key", "no proof", "another client"])
def test_rotated_refresh_token_from_anyone_else_is_reuse_rfc9700_4_14_2(kit: Kit, thief: str) -> None:
    key = DPoPKey()
    tokens = dpop_native_tokens(kit, key)
    rotated = refresh(kit, tokens["refresh_token"], key).json()
    attempt = {
        "another key": lambda: refresh(kit, tokens["refresh_token"], DPoPKey()),
        "no proof": lambda: refresh(kit, tokens["refresh_token"], None),
        "another client": lambda: refresh(kit, tokens["refresh_token"], key, client_id=SPA),
    }[thief]
    assert_oauth_error(attempt(), "invalid_grant")
    assert_revoked(kit, rotated)
    assert reuse_audited(kit.server, "refresh_reuse", grant_of(tokens))
    assert_oauth_error(refresh(kit, tokens["refresh_token"], key), "invalid_grant")


def test_unbound_public_refresh_token_has_no_retry_rfc9700_4_14_2(kit: Kit) -> None:
    """Without DPoP the refresh token is a public client's only proof, so a thief's copy would look
    like a retry: no grace, a rotated-away token presented again revokes the grant at once."""
    got = kit.native_code()
    tokens = kit.redeem_native(got.code, got.verifier).json()
    rotated = kit.refresh(NATIVE, tokens["refresh_token"]).json()
    assert_oauth_error(kit.refresh(NATIVE, tokens["refresh_token"]), "invalid_grant")
    assert_revoked(kit, rotated)
    assert reuse_audited(kit.server, "refresh_reuse", grant_of(tokens))


def test_confidential_refresh_retried_keeps_the_grant_fapi2_sp_5_3_2_1_9(kit: Kit) -> None:
    """A confidential client's refresh token is not rotated (FAPI 2.0 SP 5.3.2.1-9), so a lost
    answer is simply asked for again: the same refresh token, a new access token, the grant lives."""
    got = kit.backend_code()
    tokens = kit.redeem_backend(got.code, got.verifier).json()
    first, again = kit.refresh(BACKEND, tokens["refresh_token"]), kit.refresh(BACKEND, tokens["refresh_token"])
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json()["refresh_token"] == again.json()["refresh_token"] == tokens["refresh_token"]
    assert kit.active(first.json()["access_token"]) and kit.active(again.json()["access_token"])
    assert not reuse_audited(kit.server, "refresh_reuse", grant_of(tokens))


# -- after the grace period --------------------------------------------------------------------------
# The server runs in this process on a clock the test moves, with the default grace of 10 s; the
# kept answer is an entry of the one-time store, which expires on that clock too.

GRACE = 10


@pytest.fixture
def clocked_kit(clocked_server: InProcessServer) -> Iterator[Kit]:
    rs = clocked_server.add_client(
        "--name",
        "RS",
        "--profile",
        "confidential",
        "--grant-type",
        "client_credentials",
        "--scope",
        "accounts",
        "--resource-server",
    )
    clocked_server.clock.freeze()
    with clocked_server.client(follow_redirects=False) as browser:
        yield Kit(clocked_server, browser, (rs["client_id"], rs["client_secret"]))


def test_code_retry_after_the_grace_period_is_reuse_rfc6749_4_1_2(clocked_kit: Kit) -> None:
    kit, clock = clocked_kit, clocked_kit.server.clock
    got, control = kit.native_code(), kit.native_code()
    tokens = redeem(kit, got.code, got.verifier).json()
    kept = redeem(kit, control.code, control.verifier).json()
    clock.advance(GRACE - 1)
    assert redeem(kit, control.code, control.verifier).json() == kept  # within the grace period: a retry
    clock.advance(1)
    assert_oauth_error(redeem(kit, got.code, got.verifier), "invalid_grant")
    assert_revoked(kit, tokens)
    assert reuse_audited(kit.server, "code_reuse", grant_of(tokens))
    assert_bearer_refused(kit.userinfo(tokens["access_token"]))


def test_refresh_retry_after_the_grace_period_is_reuse_rfc9700_4_14_2(clocked_kit: Kit) -> None:
    kit, clock = clocked_kit, clocked_kit.server.clock
    key = DPoPKey()
    tokens, control = dpop_native_tokens(kit, key), dpop_native_tokens(kit, key)
    rotated = refresh(kit, tokens["refresh_token"], key).json()
    kept = refresh(kit, control["refresh_token"], key).json()
    clock.advance(GRACE - 1)
    assert refresh(kit, control["refresh_token"], key).json() == kept  # within the grace period: a retry
    clock.advance(1)
    assert_oauth_error(refresh(kit, tokens["refresh_token"], key), "invalid_grant")
    assert_revoked(kit, rotated)
    assert reuse_audited(kit.server, "refresh_reuse", grant_of(tokens))


def test_confidential_code_retry_with_the_wrong_secret_is_not_a_retry(kit: Kit) -> None:
    """Client authentication comes first: a retry without the client's credentials is invalid_client
    and changes nothing (the grant lives, the legitimate retry still works)."""
    got = kit.backend_code()
    first = kit.redeem_backend(got.code, got.verifier)
    data = {
        "grant_type": "authorization_code",
        "code": got.code,
        "redirect_uri": BACKEND_REDIRECT,
        "code_verifier": got.verifier,
    }
    assert_oauth_error(kit.browser.post("/token", data=data, auth=(BACKEND, DEMO_SECRET + "x")), "invalid_client", 401)
    same_answer(first, kit.redeem_backend(got.code, got.verifier))


def test_spa_code_retry_is_answered_too(kit: Kit) -> None:
    got = run_flow(kit.browser, SPA, "https://localhost:3000/callback")
    data = {
        "grant_type": "authorization_code",
        "code": got.code,
        "redirect_uri": "https://localhost:3000/callback",
        "client_id": SPA,
        "code_verifier": got.verifier,
    }
    same_answer(kit.browser.post("/token", data=data), kit.browser.post("/token", data=data))
