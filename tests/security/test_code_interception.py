"""The authorization code interception attack (RFC 7636 §1) and what a stolen code is worth:
nothing without the verifier, once at most, and only to the client it was issued to."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest
from support.demo import BACKEND, NATIVE, NATIVE_REDIRECT, SPA, SPA_REDIRECT
from support.flow import pkce_pair, run_flow
from support.refusals import assert_bearer_refused, assert_oauth_error
from support.server import DEMO_SECRET, Server
from support.tokens import Kit, race

pytestmark = pytest.mark.pkce


def test_intercepted_native_code_without_verifier_is_useless_rfc7636_4_6(kit: Kit) -> None:
    """A malicious app registered for the same custom scheme receives the code, and knows the public
    client_id, but not the verifier. Its attempt fails and burns the code, so the real app's late
    redemption fails too (no second chance for a brute force, RFC 9700 §4.8.1)."""
    got = kit.native_code()
    assert_oauth_error(kit.redeem_native(got.code, None), "invalid_grant")
    assert_oauth_error(kit.redeem_native(got.code, got.verifier), "invalid_grant")


def test_intercepted_native_code_with_a_guessed_verifier_fails_rfc7636_4_6(kit: Kit) -> None:
    got = kit.native_code()
    wrong, _ = pkce_pair()
    assert_oauth_error(kit.redeem_native(got.code, wrong), "invalid_grant")
    assert_oauth_error(kit.redeem_native(got.code, got.verifier), "invalid_grant")


def test_intercepted_code_with_the_challenge_as_verifier_fails_rfc7636_4_2(kit: Kit) -> None:
    """The attacker saw the front-channel request; with S256 the challenge is no verifier."""
    got = kit.native_code()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(got.verifier.encode()).digest()).rstrip(b"=").decode()
    assert_oauth_error(kit.redeem_native(got.code, challenge), "invalid_grant")


def test_short_verifier_refused_rfc7636_4_1(kit: Kit) -> None:
    got = kit.native_code()
    assert_oauth_error(kit.redeem_native(got.code, got.verifier[:42]), "invalid_grant")


def test_intercepted_spa_code_without_verifier_is_useless_rfc7636_4_6(kit: Kit) -> None:
    got = run_flow(kit.browser, SPA, SPA_REDIRECT)
    resp = kit.browser.post(
        "/token",
        data={"grant_type": "authorization_code", "code": got.code, "redirect_uri": SPA_REDIRECT, "client_id": SPA},
    )
    assert_oauth_error(resp, "invalid_grant")


def test_stolen_secret_does_not_replace_the_verifier_rfc9700_2_1_1(kit: Kit) -> None:
    """A confidential client's code, stolen together with the client secret (a leaked config),
    still needs the verifier that only the legitimate back end holds (CVE-2024-22258: PKCE skipped
    for confidential clients)."""
    got = kit.backend_code()
    assert_oauth_error(kit.redeem_backend(got.code, None), "invalid_grant")
    assert_oauth_error(kit.redeem_backend(got.code, got.verifier), "invalid_grant")  # burned
    got = kit.backend_code()
    assert_oauth_error(kit.redeem_backend(got.code, pkce_pair()[0]), "invalid_grant")


def test_legitimate_redemption_still_works(kit: Kit) -> None:
    """The control for the tests above: the same steps with the right verifier succeed."""
    got = kit.native_code()
    resp = kit.redeem_native(got.code, got.verifier)
    assert resp.status_code == 200, resp.text


def test_code_reuse_revokes_the_tokens_it_produced_rfc6749_4_1_2(kit: Kit) -> None:
    """RFC 6749 §4.1.2 / RFC 9700 §4.5: a second redemption is refused, and the access and refresh
    tokens of the first become inactive (introspection) and unusable (userinfo). (Only the first
    redeemer's own retry, with its verifier, within seconds, gets its answer again:
    tests/integration/test_token_retry.py.)"""
    got = kit.native_code()
    first = kit.redeem_native(got.code, got.verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert kit.active(tokens["access_token"]) and kit.active(tokens["refresh_token"])
    assert kit.userinfo(tokens["access_token"]).status_code == 200
    assert_oauth_error(kit.redeem_native(got.code, pkce_pair()[0]), "invalid_grant")
    assert kit.introspect(tokens["access_token"]) == {"active": False}
    assert kit.introspect(tokens["refresh_token"]) == {"active": False}
    assert_bearer_refused(kit.userinfo(tokens["access_token"]))
    assert_oauth_error(kit.refresh(NATIVE, tokens["refresh_token"]), "invalid_grant")


def test_code_reuse_by_confidential_client_revokes_its_tokens_rfc6749_4_1_2(kit: Kit) -> None:
    """The same with the confidential client introspecting its own tokens (RFC 7662 §2.1)."""
    got = kit.backend_code()
    first = kit.redeem_backend(got.code, got.verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()

    def introspect(token: str) -> dict:
        return kit.browser.post("/introspect", data={"token": token}, auth=(BACKEND, DEMO_SECRET)).json()

    assert introspect(tokens["access_token"])["active"] is True
    assert introspect(tokens["refresh_token"])["active"] is True
    assert_oauth_error(kit.redeem_backend(got.code, pkce_pair()[0]), "invalid_grant")
    assert introspect(tokens["access_token"]) == {"active": False}
    assert introspect(tokens["refresh_token"]) == {"active": False}
    assert_bearer_refused(kit.userinfo(tokens["access_token"]))


def test_concurrent_redemptions_have_one_winner_rfc6749_4_1_2(server: Server, kit: Kit) -> None:
    """Two (here eight) simultaneous redemptions of one code, each with its own verifier (one is
    right): the code is taken atomically, so at most one gets tokens, and as the others are reuse
    by someone else, the grant is revoked."""
    got = kit.native_code()
    verifiers = iter([got.verifier] + [pkce_pair()[0] for _ in range(7)])
    results = race(server, 8, lambda c: kit.redeem_native(got.code, next(verifiers), client=c))
    winners = [r for r in results if r.status_code == 200]
    assert len(winners) <= 1, [r.text[:100] for r in results]
    for r in results:
        if r.status_code != 200:
            assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    for w in winners:
        assert kit.introspect(w.json()["access_token"]) == {"active": False}


def test_cross_client_redemption_refused_rfc6749_4_1_3(kit: Kit) -> None:
    """RFC 6749 §4.1.3: the code must have been issued to the authenticated client. The confidential
    client (with its own valid secret) cannot redeem a code issued to demo-native, even with the
    right verifier and redirect URI; and the stolen code is burned."""
    got = kit.native_code()
    resp = kit.browser.post(
        "/token",
        auth=(BACKEND, DEMO_SECRET),
        data={
            "grant_type": "authorization_code",
            "code": got.code,
            "redirect_uri": NATIVE_REDIRECT,
            "code_verifier": got.verifier,
        },
    )
    assert_oauth_error(resp, "invalid_grant")
    assert_oauth_error(kit.redeem_native(got.code, got.verifier), "invalid_grant")


def test_cross_client_redemption_by_another_public_client_refused_rfc6749_4_1_3(kit: Kit) -> None:
    got = kit.native_code()
    resp = kit.browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got.code,
            "redirect_uri": NATIVE_REDIRECT,
            "client_id": SPA,
            "code_verifier": got.verifier,
        },
    )
    assert_oauth_error(resp, "invalid_grant")


def test_code_bound_to_its_redirect_uri_rfc6749_4_1_3(kit: Kit) -> None:
    """The redirect_uri of the token request must be identical to the authorization request's;
    another port of the same loopback registration is another URI."""
    got = kit.native_code()
    assert_oauth_error(
        kit.redeem_native(got.code, got.verifier, redirect_uri="http://127.0.0.1:51235/callback"), "invalid_grant"
    )
    got = kit.native_code()
    resp = kit.browser.post(
        "/token",
        data={"grant_type": "authorization_code", "code": got.code, "client_id": NATIVE, "code_verifier": got.verifier},
    )
    assert_oauth_error(resp, "invalid_grant")


def test_unknown_and_malformed_codes_refused_rfc6749_5_2(kit: Kit) -> None:
    for code in ("x", "A" * 43, "../../etc/passwd", "' OR 1=1 --", "\u00e9" * 20):
        assert_oauth_error(kit.redeem_native(code, pkce_pair()[0]), "invalid_grant")


def test_authorization_code_has_128_bits_fapi2_sp_5_4_1_4(kit: Kit) -> None:
    codes = {kit.native_code().code for _ in range(3)}
    assert len(codes) == 3 and all(len(c) >= 22 for c in codes)  # 22 base64url chars = 132 bits


def test_public_client_cannot_pass_a_secret_it_does_not_have(kit: Kit, browser: httpx.Client) -> None:
    """A public client's client_id alone is no credential; adding a made-up secret is refused
    (RFC 6749 §2.3: the client must use its registered method)."""
    got = kit.native_code()
    resp = browser.post(
        "/token",
        auth=(NATIVE, "guess"),
        data={
            "grant_type": "authorization_code",
            "code": got.code,
            "redirect_uri": NATIVE_REDIRECT,
            "code_verifier": got.verifier,
        },
    )
    assert_oauth_error(resp, "invalid_client", 401)
    assert resp.headers["www-authenticate"]
