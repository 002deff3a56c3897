"""The retry rule for lost token answers (oauth/token_retry.py) on a real core (SQLite one-time
store, the deployment's sealer): what makes two requests "the same", and what a retry gets."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingrade.oauth import token_retry
from fingrade.oauth.context import Core
from fingrade.protocol.errors import OAuthError

pytestmark = pytest.mark.refresh

BODY = {"access_token": "at.secret.value", "token_type": "DPoP", "expires_in": 300, "refresh_token": "rt-secret"}
BASE: dict[str, Any] = {
    "client_id": "c1",
    "jkt": "k" * 43,
    "x5t": None,
    "params": {
        "grant_type": "authorization_code",
        "code": "abc",
        "code_verifier": "v" * 43,
        "redirect_uri": "https://app.example/cb",
    },
}


def _attempt(core: Core, secret_hash: str = "h1", **over: Any) -> token_retry.Attempt:
    args = {**BASE, **over}
    return token_retry.attempt(
        core, "code", secret_hash, client_id=args["client_id"], jkt=args["jkt"], x5t=args["x5t"], params=args["params"]
    )


_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(["client_id", "jkt", "x5t", "code_verifier", "redirect_uri", "scope"]), value=_text)
def test_any_other_proof_or_parameter_is_another_request(base_core: Core, field: str, value: str) -> None:
    """Another client, DPoP key, certificate, verifier or parameter gives another fingerprint, so the
    request is no retry (RFC 6749 §4.1.2 reuse); the same ones give the same fingerprint."""
    same = _attempt(base_core)
    assert _attempt(base_core) == same
    if field in ("client_id", "jkt", "x5t"):
        other = _attempt(base_core, **{field: value})
        changed = value != BASE[field]
    else:
        params = {**BASE["params"], field: value}
        other = _attempt(base_core, params=params)
        changed = params != BASE["params"]
    assert (other.fingerprint != same.fingerprint) == changed
    assert other.key == same.key  # the record is the credential's; the fingerprint decides


@settings(max_examples=20, deadline=None)
@given(assertion=_text)
def test_client_assertion_is_not_part_of_the_request(base_core: Core, assertion: str) -> None:
    """A retry carries a new client assertion (its jti is single use): authentication is checked
    before and counts as the client_id."""
    params = {
        **BASE["params"],
        "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    assert _attempt(base_core, params=params) == _attempt(base_core)


def test_kept_answer_is_sealed_and_replayed_to_the_same_request_only(run, base_core: Core) -> None:
    a = _attempt(base_core, "kept")
    run(token_retry.begin(base_core, a))
    run(token_retry.keep(base_core, a, BODY))
    stored = run(base_core.onetime.get(token_retry.KIND, a.key))
    assert set(stored) == {"fp", "sealed"}
    assert "secret" not in stored["sealed"] and "at.secret" not in str(stored)
    assert run(token_retry.replay(base_core, a, wait=False)) == BODY
    assert run(token_retry.replay(base_core, _attempt(base_core, "kept", jkt=None), wait=False)) is None
    assert run(token_retry.replay(base_core, _attempt(base_core, "never"), wait=False)) is None


def test_tampered_record_is_not_answered(run, base_core: Core) -> None:
    """The sealed answer is bound to its record (AES-GCM associated data): moved to another code's
    record it does not open, and the retry gets invalid_grant (never a 500, never the answer)."""
    a, b = _attempt(base_core, "one"), _attempt(base_core, "two")
    run(token_retry.keep(base_core, a, BODY))
    moved = run(base_core.onetime.get(token_retry.KIND, a.key))
    run(base_core.onetime.put(token_retry.KIND, b.key, {"fp": b.fingerprint, "sealed": moved["sealed"]}, 10))
    with pytest.raises(OAuthError) as info:
        run(token_retry.replay(base_core, b, wait=False))
    assert info.value.error == "invalid_grant"


def test_first_request_that_never_answered_is_refused_without_an_answer(run, base_core: Core) -> None:
    """The same request while the first one has not kept an answer (it failed or died): invalid_grant
    after a short wait, and nothing to send."""
    a = _attempt(base_core, "pending")
    run(token_retry.begin(base_core, a))
    with pytest.raises(OAuthError) as info:
        run(token_retry.replay(base_core, a, wait=False))
    assert info.value.error == "invalid_grant"


def test_grace_zero_disables_retries(run, base_core: Core) -> None:
    off = dataclasses.replace(base_core, settings=dataclasses.replace(base_core.settings, token_retry_grace_seconds=0))
    a = _attempt(off, "off")
    run(token_retry.begin(off, a))
    run(token_retry.keep(off, a, BODY))
    assert run(off.onetime.get(token_retry.KIND, a.key)) is None
    assert run(token_retry.replay(off, a, wait=True)) is None
