"""PKCE rules (RFC 7636) and the downgrade defence (RFC 9700 §4.8.2), without I/O."""

from __future__ import annotations

import base64
import hashlib

import pytest

from fingrade.oauth import pkce
from fingrade.oauth.models import Client
from fingrade.oauth.profiles import PROFILES, pkce_required
from fingrade.protocol.errors import OAuthError

pytestmark = pytest.mark.pkce

# RFC 7636 Appendix B test vector.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def refused(fn, *args, **kw) -> OAuthError:
    with pytest.raises(OAuthError) as info:
        fn(*args, **kw)
    return info.value


# -- authorization request (RFC 7636 §4.3, §4.4.1) ---------------------------------------------


def test_s256_challenge_accepted_rfc7636_4_3() -> None:
    assert pkce.check_challenge(RFC_CHALLENGE, "S256", required=True) == (RFC_CHALLENGE, "S256")


def test_missing_challenge_refused_when_required_rfc7636_4_4_1() -> None:
    err = refused(pkce.check_challenge, None, None, required=True)
    assert (err.error, err.status) == ("invalid_request", 400)


def test_absent_method_means_plain_and_is_refused_rfc7636_4_3() -> None:
    # §4.3: code_challenge_method defaults to "plain"; plain is not supported (FAPI 2.0 SP 5.3.2.2-5).
    assert refused(pkce.check_challenge, RFC_CHALLENGE, None, required=True).error == "invalid_request"


@pytest.mark.parametrize("method", ["plain", "s256", "S512", "", "S256 "])
def test_methods_other_than_s256_refused_rfc7636_4_4_1(method: str) -> None:
    # Method names are case-sensitive; "transform algorithm not supported" is invalid_request.
    assert refused(pkce.check_challenge, RFC_CHALLENGE, method, required=True).error == "invalid_request"


def test_method_without_challenge_refused_rfc7636_4_3() -> None:
    assert refused(pkce.check_challenge, None, "S256", required=True).error == "invalid_request"


@pytest.mark.parametrize(
    "challenge",
    [
        RFC_CHALLENGE[:-1],  # 42 characters: not a SHA-256 output
        RFC_CHALLENGE + "A",  # 44 characters
        RFC_CHALLENGE[:-1] + "=",  # padding is not base64url-without-padding
        RFC_CHALLENGE[:-1] + "+",  # base64 (not url) alphabet
        RFC_CHALLENGE[:-1] + "~",  # unreserved, but not in the base64url alphabet
        "a" * 128,  # plain-shaped
    ],
)
def test_malformed_s256_challenge_refused_rfc7636_4_2(challenge: str) -> None:
    # §4.2: an S256 challenge is BASE64URL(SHA256(verifier)): exactly 43 base64url characters.
    assert refused(pkce.check_challenge, challenge, "S256", required=True).error == "invalid_request"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_pkce_required_by_default_for_every_profile_rfc9700_2_1_1(profile: str) -> None:
    assert pkce_required(_client(profile, {}))


@pytest.mark.parametrize("profile", [name for name, p in sorted(PROFILES.items()) if p.public])
def test_public_clients_cannot_opt_out_of_pkce_rfc8252_8_1(profile: str) -> None:
    assert pkce_required(_client(profile, {"require_pkce": False}))


def test_confidential_opt_out_is_explicit_rfc9700_2_1_1() -> None:
    assert not pkce_required(_client("confidential", {"require_pkce": False}))
    assert pkce_required(_client("confidential", {"require_pkce": "false"}))  # only the boolean counts


def _client(profile: str, metadata: dict) -> Client:
    return Client(
        client_id="c",
        profile=profile,
        client_name="c",
        redirect_uris=[],
        token_endpoint_auth_method="none",
        grant_types=["authorization_code"],
        scope="openid",
        metadata=metadata,
    )


# -- token request (RFC 7636 §4.5, §4.6) --------------------------------------------------------


def test_rfc_appendix_b_vector_verifies_rfc7636_4_6() -> None:
    assert s256(RFC_VERIFIER) == RFC_CHALLENGE
    pkce.verify(RFC_VERIFIER, RFC_CHALLENGE, "S256")  # does not raise


@pytest.mark.parametrize("length", [43, 128])
def test_verifier_length_bounds_accepted_rfc7636_4_1(length: int) -> None:
    verifier = ("A-._~z9" * 20)[:length]
    pkce.verify(verifier, s256(verifier), "S256")


@pytest.mark.parametrize(
    "verifier",
    [
        "a" * 42,  # too short: 43*128unreserved
        "a" * 129,  # too long
        "a" * 42 + "+",  # '+' is not unreserved
        "a" * 42 + "/",
        "a" * 42 + "=",
        "a" * 42 + " ",
        "a" * 42 + "%",
        "a" * 42 + "é",  # non-ASCII
        "a" * 42 + "\x00",
    ],
)
def test_verifier_outside_the_grammar_refused_rfc7636_4_1(verifier: str) -> None:
    # Refused by the grammar even when the challenge was computed from it (no hashing first).
    challenge = s256(verifier) if verifier.isascii() else RFC_CHALLENGE
    err = refused(pkce.verify, verifier, challenge, "S256")
    assert (err.error, err.status) == ("invalid_grant", 400)


def test_wrong_verifier_is_invalid_grant_rfc7636_4_6() -> None:
    err = refused(pkce.verify, "x" * 43, RFC_CHALLENGE, "S256")
    assert (err.error, err.status) == ("invalid_grant", 400)


def test_challenge_itself_as_verifier_refused_rfc7636_4_6() -> None:
    # What an attacker who saw the front-channel request (and hoped for `plain`) would send.
    assert refused(pkce.verify, RFC_CHALLENGE, RFC_CHALLENGE, "S256").error == "invalid_grant"


def test_missing_verifier_is_invalid_grant_rfc7636_4_6() -> None:
    assert refused(pkce.verify, None, RFC_CHALLENGE, "S256").error == "invalid_grant"


def test_stored_plain_method_never_verifies_rfc7636_4_2() -> None:
    # Even a code bound with `plain` (which check_challenge never stores) must not verify.
    assert refused(pkce.verify, "a" * 43, "a" * 43, "plain").error == "invalid_grant"


def test_verifier_for_code_without_challenge_refused_rfc9700_4_8_2() -> None:
    # PKCE downgrade: a code_verifier for a code issued without code_challenge is refused.
    err = refused(pkce.verify, RFC_VERIFIER, None, None)
    assert (err.error, err.status) == ("invalid_grant", 400)
