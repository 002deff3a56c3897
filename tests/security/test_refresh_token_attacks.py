"""Refresh tokens: public clients rotate on every use, and a rotated-away token presented again
revokes the whole grant (RFC 9700 §4.14.2); confidential clients keep their token (it is bound to
their authentication, RFC 9700 §4.14.2, FAPI 2.0 SP 5.3.2.1-9)."""

from __future__ import annotations

import pytest
from support.demo import BACKEND, NATIVE, SPA, SPA_REDIRECT
from support.flow import run_flow
from support.refusals import assert_bearer_refused, assert_oauth_error
from support.server import DEMO_SECRET, Server
from support.tokens import Kit, race

pytestmark = pytest.mark.refresh


def _native_tokens(kit: Kit) -> dict:
    got = kit.native_code()
    resp = kit.redeem_native(got.code, got.verifier)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_public_client_refresh_token_rotates_rfc9700_4_14_2(kit: Kit) -> None:
    first = _native_tokens(kit)
    resp = kit.refresh(NATIVE, first["refresh_token"])
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"  # RFC 6749 §5.1
    second = resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert kit.introspect(first["refresh_token"]) == {"active": False}
    assert kit.active(second["refresh_token"]) and kit.active(second["access_token"])
    third = kit.refresh(NATIVE, second["refresh_token"])
    assert third.status_code == 200 and third.json()["refresh_token"] not in (
        first["refresh_token"],
        second["refresh_token"],
    )


def test_replayed_old_refresh_token_revokes_the_grant_rfc9700_4_14_2(kit: Kit) -> None:
    """An attacker with a copy of an old refresh token uses it (or the victim does, after the
    attacker rotated it): the server cannot tell who is legitimate, so the whole family dies:
    the newest refresh token and every access token of the grant."""
    first = _native_tokens(kit)
    second = kit.refresh(NATIVE, first["refresh_token"]).json()
    third = kit.refresh(NATIVE, second["refresh_token"]).json()
    assert kit.active(third["refresh_token"])

    assert_oauth_error(kit.refresh(NATIVE, first["refresh_token"]), "invalid_grant")

    assert_oauth_error(kit.refresh(NATIVE, third["refresh_token"]), "invalid_grant")
    for tokens in (first, second, third):
        assert kit.introspect(tokens["access_token"]) == {"active": False}
        assert kit.introspect(tokens["refresh_token"]) == {"active": False}
    assert_bearer_refused(kit.userinfo(third["access_token"]))


def test_spa_refresh_token_rotates_and_replay_revokes_rfc9700_4_14_2(kit: Kit) -> None:
    got = run_flow(kit.browser, SPA, SPA_REDIRECT, scope="openid profile offline_access")
    first = kit.browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got.code,
            "redirect_uri": SPA_REDIRECT,
            "client_id": SPA,
            "code_verifier": got.verifier,
        },
    ).json()
    second = kit.refresh(SPA, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert_oauth_error(kit.refresh(SPA, first["refresh_token"]), "invalid_grant")
    assert_oauth_error(kit.refresh(SPA, second["refresh_token"]), "invalid_grant")


def test_concurrent_refreshes_with_one_token_at_most_one_wins_rfc9700_4_14_2(server: Server, kit: Kit) -> None:
    """Two clients racing with one refresh token (a copy was stolen): the rotation is a
    compare-and-set, so at most one gets new tokens, and the race itself is a replay that
    revokes the grant, the winner's new tokens included."""
    first = _native_tokens(kit)
    results = race(server, 6, lambda c: kit.refresh(NATIVE, first["refresh_token"], client=c))
    winners = [r for r in results if r.status_code == 200]
    assert len(winners) <= 1, [r.text[:100] for r in results]
    for r in results:
        if r.status_code != 200:
            assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    for w in winners:
        assert kit.introspect(w.json()["refresh_token"]) == {"active": False}
        assert kit.introspect(w.json()["access_token"]) == {"active": False}


def test_confidential_refresh_token_is_not_rotated_fapi2_sp_5_3_2_1_9(kit: Kit) -> None:
    got = kit.backend_code()
    tokens = kit.redeem_backend(got.code, got.verifier).json()
    for _ in range(3):
        resp = kit.refresh(BACKEND, tokens["refresh_token"])
        assert resp.status_code == 200, resp.text
        assert resp.json()["refresh_token"] == tokens["refresh_token"]
        assert kit.active(resp.json()["access_token"])


def test_confidential_refresh_token_needs_the_client_secret_rfc6749_6(kit: Kit) -> None:
    """A stolen confidential refresh token is useless without the client's credentials."""
    got = kit.backend_code()
    tokens = kit.redeem_backend(got.code, got.verifier).json()
    resp = kit.browser.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": BACKEND}
    )
    assert_oauth_error(resp, "invalid_client", 401)
    resp = kit.browser.post(
        "/token",
        auth=(BACKEND, DEMO_SECRET + "x"),
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert_oauth_error(resp, "invalid_client", 401)
    assert kit.refresh(BACKEND, tokens["refresh_token"]).status_code == 200


def test_refresh_token_bound_to_its_client_rfc6749_6(kit: Kit) -> None:
    """RFC 6749 §6: the refresh token was issued to the authenticated client, or it is refused."""
    tokens = _native_tokens(kit)
    assert_oauth_error(kit.refresh(SPA, tokens["refresh_token"]), "invalid_grant")
    resp = kit.browser.post(
        "/token",
        auth=(BACKEND, DEMO_SECRET),
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert_oauth_error(resp, "invalid_grant")


def test_refresh_cannot_widen_the_scope_rfc6749_6(kit: Kit) -> None:
    tokens = _native_tokens(kit)  # scope "openid profile offline_access"
    resp = kit.browser.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": NATIVE,
            "scope": "openid profile payments",
        },
    )
    assert_oauth_error(resp, "invalid_scope")


def test_unknown_refresh_token_refused_rfc6749_5_2(kit: Kit) -> None:
    for token in ("x", "A" * 43, "' OR 1=1 --"):
        assert_oauth_error(kit.refresh(NATIVE, token), "invalid_grant")
