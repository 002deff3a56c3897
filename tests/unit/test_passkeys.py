"""The passkey ceremony rules (oauth/passkeys.py) against a software authenticator built here from
fido2's own data types and `cryptography` keys: what enrolment and sign-in accept, what they refuse
(W3C WebAuthn Level 3 §7.1 and §7.2), dynamic linking of a payment approval, and clone detection."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import (
    AttestedCredentialData,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from support.passkey_device import UP_UV, Flag, SoftAuthenticator

from fingrade.finance.dynamic_linking import details_hash
from fingrade.oauth import passkeys
from fingrade.oauth.models import Factor, FactorKind
from fingrade.oauth.passkeys import PasskeyCloned, PasskeyError, RelyingParty

RP = RelyingParty.for_issuer("https://localhost:8443")
NOW = 1_700_000_000
USER = "user-7f3a"

pytestmark = [pytest.mark.sca]


def _enrol(auth: SoftAuthenticator, flags: Flag = UP_UV, existing: list[Factor] | None = None) -> Factor:
    options, state = passkeys.registration_options(RP, USER, "alice", "Alice", existing or [], NOW)
    return passkeys.complete_registration(RP, state, auth.create(options, flags=flags), " Phone ", "f1", USER, NOW)


def _sign_in(
    auth: SoftAuthenticator, factor: Factor, linked: str | None = None, completed_with: str | None = "same", **get: Any
) -> passkeys.Verified:
    options, state = passkeys.authentication_options(RP, None, linked, NOW)
    response = auth.get(options, **get)
    assert passkeys.credential_id_of(response) == factor.credential_id
    hash_ = linked if completed_with == "same" else completed_with
    return passkeys.complete_authentication(RP, state, response, factor, hash_, NOW + 10)


# --- the relying party -----------------------------------------------------------------------------


def test_relying_party_of_an_issuer() -> None:
    """The RP ID is the issuer's host (§5.1.2); the origin is serialised as a browser does."""
    assert (RP.id, RP.name, RP.origin) == ("localhost", "Fingrade", "https://localhost:8443")
    assert RelyingParty.for_issuer("https://AS.Example.com:443/tenant").origin == "https://as.example.com"
    with pytest.raises(ValueError):
        RelyingParty.for_issuer("urn:not-a-url")


# --- registration (§7.1) -------------------------------------------------------------------------


def test_registration_options_ask_for_a_discoverable_verified_credential() -> None:
    """§5.4: resident key and user verification required, no attestation, ES256 preferred, the user
    handle is the user id (not the username, §14.6.1), existing passkeys excluded; plain JSON."""
    old = Factor(id="p0", user_id=USER, kind=FactorKind.PASSKEY, name="Old", created_at=1, credential_id=b"\x01\x02")
    totp = Factor(id="t0", user_id=USER, kind=FactorKind.TOTP, name="App", created_at=1, secret=b"s")
    options, state = passkeys.registration_options(RP, USER, "alice", "Alice", [old, totp], NOW)
    assert json.loads(json.dumps(options)) == options and json.loads(json.dumps(state)) == state
    assert options["rp"] == {"name": "Fingrade", "id": "localhost"}
    assert options["user"] == {"name": "alice", "id": websafe_encode(USER.encode()), "displayName": "Alice"}
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -8, -257]
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert options["excludeCredentials"] == [{"type": "public-key", "id": websafe_encode(b"\x01\x02")}]
    assert options["timeout"] == passkeys.TIMEOUT * 1000
    assert len(websafe_decode(options["challenge"])) == 32
    assert state["expires_at"] == NOW + passkeys.TIMEOUT


def test_registration_returns_the_passkey_to_store() -> None:
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    assert factor.kind == FactorKind.PASSKEY and factor.user_id == USER and factor.id == "f1"
    assert factor.name == "Phone" and factor.created_at == NOW
    assert factor.credential_id == auth.credential_id
    parsed = AttestedCredentialData(factor.credential or b"")
    assert parsed.credential_id == auth.credential_id and parsed.public_key == auth.cose()
    assert factor.sign_count == 0 and factor.backup_eligible is False


def test_registration_then_sign_in_round_trip() -> None:
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    verified = _sign_in(auth, factor)
    assert verified == passkeys.Verified(factor_id="f1", sign_count=1, amr=["hwk", "user"])


def test_eddsa_passkey_round_trip() -> None:
    auth = SoftAuthenticator(key=ed25519.Ed25519PrivateKey.generate())
    factor = _enrol(auth)
    assert _sign_in(auth, factor).sign_count == 1


def test_registration_refuses_an_algorithm_not_offered() -> None:
    """§7.1 step 20: the key's alg must be one of pubKeyCredParams (ES384 was not offered)."""
    with pytest.raises(PasskeyError) as err:
        _enrol(SoftAuthenticator(key=ec.generate_private_key(ec.SECP384R1())))
    assert err.value.reason == "algorithm not offered"


def test_registration_refuses_without_user_verification() -> None:
    """§7.1 step 16: user verification required, so the UV flag must be set."""
    with pytest.raises(PasskeyError) as err:
        _enrol(SoftAuthenticator(), flags=Flag.UP)
    assert "User verification" in err.value.reason


def test_registration_refuses_without_user_presence() -> None:
    """§7.1 step 15: the UP flag must be set."""
    with pytest.raises(PasskeyError):
        _enrol(SoftAuthenticator(), flags=Flag.UV)


def test_registration_refuses_backup_state_without_eligibility() -> None:
    """§7.1 step 17: BS without BE is impossible."""
    with pytest.raises(PasskeyError) as err:
        _enrol(SoftAuthenticator(), flags=UP_UV | Flag.BS)
    assert "backup" in err.value.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"origin": "https://evil.example"}, "origin"),  # §7.1 step 9
        ({"origin": "https://sub.localhost:8443"}, "origin"),  # a subdomain is another origin
        ({"origin": "http://localhost:8443"}, "origin"),
        ({"rp_id": "evil.example"}, "RP ID"),  # §7.1 step 13
        ({"challenge": b"\x00" * 32}, "challenge"),  # §7.1 step 8
        ({"crossOrigin": True}, "cross-origin"),  # §7.1 step 10
    ],
)
def test_registration_refuses_another_origin_rp_or_challenge(change: dict[str, Any], reason: str) -> None:
    """§7.1 steps 8-10 and 13: the answer is to this challenge, from this origin, for this RP ID."""
    options, state = passkeys.registration_options(RP, USER, "alice", "Alice", [], NOW)
    response = SoftAuthenticator().create(options, **change)
    with pytest.raises(PasskeyError) as err:
        passkeys.complete_registration(RP, state, response, "", "f1", USER, NOW)
    assert reason.lower() in err.value.reason.lower()
    assert err.value.message == str(err.value) and "CollectedClientData" not in err.value.message


def test_registration_refuses_an_expired_state() -> None:
    options, state = passkeys.registration_options(RP, USER, "alice", "Alice", [], NOW)
    response = SoftAuthenticator().create(options)
    with pytest.raises(PasskeyError) as err:
        passkeys.complete_registration(RP, state, response, "", "f1", USER, NOW + passkeys.TIMEOUT + 1)
    assert err.value.reason == "state expired"
    assert passkeys.complete_registration(RP, state, response, "", "f1", USER, NOW + passkeys.TIMEOUT).name == "Passkey"


def test_registration_state_belongs_to_one_user_and_one_ceremony() -> None:
    options, state = passkeys.registration_options(RP, USER, "alice", "Alice", [], NOW)
    response = SoftAuthenticator().create(options)
    with pytest.raises(PasskeyError):
        passkeys.complete_registration(RP, state, response, "", "f1", "someone-else", NOW)
    _, sign_in_state = passkeys.authentication_options(RP, None, None, NOW)
    with pytest.raises(PasskeyError):
        passkeys.complete_registration(RP, sign_in_state, response, "", "f1", USER, NOW)


@pytest.mark.parametrize(("typed", "stored"), [("", "Passkey"), ("  ", "Passkey"), (" Work laptop ", "Work laptop")])
def test_passkey_names(typed: str, stored: str) -> None:
    assert passkeys.passkey_name(typed) == stored


@pytest.mark.parametrize("typed", ["x" * 101, "line\nbreak", "bell\x07"])
def test_passkey_names_refused(typed: str) -> None:
    with pytest.raises(PasskeyError):
        passkeys.passkey_name(typed)


# --- authentication (§7.2) -----------------------------------------------------------------------


def test_authentication_options_without_and_with_an_allow_list() -> None:
    """No allow list: any discoverable credential of this RP (sign-in without a username)."""
    options, state = passkeys.authentication_options(RP, None, None, NOW)
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    assert options["rpId"] == "localhost" and options["timeout"] == passkeys.TIMEOUT * 1000
    assert len(websafe_decode(options["challenge"])) == 32 and state["expires_at"] == NOW + passkeys.TIMEOUT
    factor = _enrol(SoftAuthenticator())
    options, state = passkeys.authentication_options(RP, [factor], None, NOW)
    assert options["allowCredentials"] == [{"type": "public-key", "id": websafe_encode(factor.credential_id or b"")}]
    assert json.loads(json.dumps(state)) == state


def test_sign_in_with_an_allow_list() -> None:
    """§7.2 step 5: the credential used is one of those asked for."""
    auth, other = SoftAuthenticator(), SoftAuthenticator()
    factor = _enrol(auth)
    other_factor = replace(_enrol(other), id="f2")
    options, state = passkeys.authentication_options(RP, [factor], None, NOW)
    assert passkeys.complete_authentication(RP, state, auth.get(options), factor, None, NOW).factor_id == "f1"
    options, state = passkeys.authentication_options(RP, [factor], None, NOW)
    with pytest.raises(PasskeyError) as err:
        passkeys.complete_authentication(RP, state, other.get(options), other_factor, None, NOW)
    assert err.value.reason == "credential not in allowCredentials"


def test_sign_in_refuses_without_user_verification() -> None:
    """§7.2 step 17: user verification required, so the UV flag must be set."""
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    with pytest.raises(PasskeyError) as err:
        _sign_in(auth, factor, flags=Flag.UP)
    assert "User verification" in err.value.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"origin": "https://evil.example"}, "origin"),  # §7.2 step 12
        ({"origin": "https://localhost"}, "origin"),  # another port is another origin
        ({"rp_id": "evil.example"}, "RP ID"),  # §7.2 step 15
    ],
)
def test_sign_in_refuses_another_origin_or_rp(change: dict[str, Any], reason: str) -> None:
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    with pytest.raises(PasskeyError) as err:
        _sign_in(auth, factor, **change)
    assert reason in err.value.reason


def test_sign_in_refuses_another_challenge() -> None:
    """§7.2 step 11: an answer to one challenge does not complete another ceremony."""
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    options, _ = passkeys.authentication_options(RP, None, None, NOW)
    _, other_state = passkeys.authentication_options(RP, None, None, NOW)
    with pytest.raises(PasskeyError) as err:
        passkeys.complete_authentication(RP, other_state, auth.get(options), factor, None, NOW)
    assert "challenge" in err.value.reason


def test_sign_in_refuses_a_bad_signature() -> None:
    """§7.2 step 21: the signature is by the stored credential's key."""
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    impostor = SoftAuthenticator(credential_id=auth.credential_id, user_handle=auth.user_handle)
    with pytest.raises(PasskeyError) as err:
        _sign_in(impostor, factor)
    assert "signature" in err.value.reason.lower()


def test_sign_in_refuses_another_users_handle() -> None:
    """§7.2 step 6: a user handle, when present, is the factor owner's."""
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    with pytest.raises(PasskeyError) as err:
        _sign_in(auth, factor, user_handle=b"user-other")
    assert err.value.reason == "user handle is not the factor's owner"


def test_discoverable_sign_in_needs_the_user_handle() -> None:
    """§7.2 step 6: without an allow list the customer was not identified before, so the user handle
    must be there; with one, it may be left out."""
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    with pytest.raises(PasskeyError) as err:
        _sign_in(auth, factor, user_handle=None)
    assert err.value.reason == "user handle missing"
    options, state = passkeys.authentication_options(RP, [factor], None, NOW)
    assert passkeys.complete_authentication(RP, state, auth.get(options, user_handle=None), factor, None, NOW)


def test_sign_in_refuses_a_response_for_another_factor() -> None:
    """The factor the caller looked up is the one the answer names (its credential id)."""
    auth, other = SoftAuthenticator(), SoftAuthenticator()
    factor = _enrol(auth)
    options, state = passkeys.authentication_options(RP, None, None, NOW)
    other.user_handle = USER.encode()
    with pytest.raises(PasskeyError) as err:
        passkeys.complete_authentication(RP, state, other.get(options), factor, None, NOW)
    assert err.value.reason == "credential id is not the factor's"
    totp = Factor(id="t1", user_id=USER, kind=FactorKind.TOTP, name="App", created_at=1, secret=b"s")
    with pytest.raises(PasskeyError):
        passkeys.complete_authentication(RP, state, auth.get(options), totp, None, NOW)


def test_sign_in_refuses_an_expired_state() -> None:
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    options, state = passkeys.authentication_options(RP, None, None, NOW)
    response = auth.get(options)
    with pytest.raises(PasskeyError) as err:
        passkeys.complete_authentication(RP, state, response, factor, None, NOW + passkeys.TIMEOUT + 1)
    assert err.value.reason == "state expired"


def test_backup_eligible_passkey_is_swk_else_hwk() -> None:
    """A passkey that may be synced (BE) is a software key (RFC 8176 swk); one bound to its device is
    a hardware key (hwk). Both are used with user verification (user)."""
    synced = SoftAuthenticator()
    factor = _enrol(synced, flags=UP_UV | Flag.BE | Flag.BS)
    assert factor.backup_eligible is True
    assert _sign_in(synced, factor, flags=UP_UV | Flag.BE | Flag.BS).amr == ["swk", "user"]
    bound = SoftAuthenticator()
    assert _sign_in(bound, _enrol(bound)).amr == ["hwk", "user"]


def test_backup_eligibility_cannot_change() -> None:
    """§7.2 step 19: BE is fixed when the credential is made."""
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    with pytest.raises(PasskeyError) as err:
        _sign_in(auth, factor, flags=UP_UV | Flag.BE)
    assert err.value.reason == "backup eligibility changed"


# --- dynamic linking (PSD2 RTS Art. 5) -----------------------------------------------------------

PAYMENT_A = [{"type": "payment_initiation", "instructedAmount": {"currency": "EUR", "amount": "10.00"}}]
PAYMENT_B = [{"type": "payment_initiation", "instructedAmount": {"currency": "EUR", "amount": "9999.00"}}]


def test_linked_challenge_commits_to_the_payment() -> None:
    """The challenge is SHA-256("fingrade-payment|" + nonce + hash) and the state keeps the nonce and
    the hash, so what the authenticator signs names the payment."""
    hash_a = details_hash(PAYMENT_A)
    options, state = passkeys.authentication_options(RP, None, hash_a, NOW)
    nonce = websafe_decode(state["nonce"])
    expected = hashlib.sha256(b"fingrade-payment|" + nonce + bytes.fromhex(hash_a)).digest()
    assert websafe_decode(options["challenge"]) == expected and state["linked_hash"] == hash_a
    with pytest.raises(ValueError):
        passkeys.authentication_options(RP, None, "not-a-hash", NOW)


def test_linked_approval_for_payment_a_approves_a_only() -> None:
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    hash_a, hash_b = details_hash(PAYMENT_A), details_hash(PAYMENT_B)
    assert _sign_in(auth, factor, linked=hash_a).factor_id == "f1"
    with pytest.raises(PasskeyError):
        _sign_in(auth, factor, linked=hash_a, completed_with=hash_b)
    with pytest.raises(PasskeyError):  # an approval of A is no plain sign-in either
        _sign_in(auth, factor, linked=hash_a, completed_with=None)
    with pytest.raises(PasskeyError):  # nor a plain sign-in an approval
        _sign_in(auth, factor, linked=None, completed_with=hash_a)


def test_linked_state_altered_to_payment_b_still_fails() -> None:
    """The hash is bound by the challenge itself, not only by the state: a state rewritten to name
    payment B does not let the signature over A's challenge approve B."""
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    hash_a, hash_b = details_hash(PAYMENT_A), details_hash(PAYMENT_B)
    options, state = passkeys.authentication_options(RP, None, hash_a, NOW)
    response = auth.get(options)
    forged = {**state, "linked_hash": hash_b}
    with pytest.raises(PasskeyError) as err:
        passkeys.complete_authentication(RP, forged, response, factor, hash_b, NOW)
    assert "challenge" in err.value.reason


# --- the signature counter (§6.1.1) ----------------------------------------------------------------


def test_counter_that_goes_up_is_returned_for_compare_and_set() -> None:
    """§7.2 step 22: the new counter is greater than the stored one."""
    auth = SoftAuthenticator(counter=41)
    factor = _enrol(auth)
    assert factor.sign_count == 41
    assert _sign_in(auth, factor, counter_step=3).sign_count == 44


@pytest.mark.parametrize(("stored", "new"), [(5, 5), (5, 4), (5, 0), (0, 0)])
def test_counter_not_going_up_is_a_clone(stored: int, new: int) -> None:
    """§6.1.1 and §7.2 step 22: with either counter non-zero, a new counter not above the stored one
    signals a cloned authenticator; both zero is an authenticator without a counter."""
    auth = SoftAuthenticator()
    factor = replace(_enrol(auth), sign_count=stored)
    auth.counter = new
    if stored == 0 and new == 0:
        assert _sign_in(auth, factor, counter_step=0).sign_count is None
        return
    with pytest.raises(PasskeyCloned) as err:
        _sign_in(auth, factor, counter_step=0)
    assert isinstance(err.value, PasskeyError) and "copied" in err.value.message


def test_counter_from_zero_to_non_zero_is_fine() -> None:
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    assert factor.sign_count == 0
    assert _sign_in(auth, factor, counter_step=1).sign_count == 1


# --- malformed input -------------------------------------------------------------------------------


def test_credential_id_of() -> None:
    auth = SoftAuthenticator()
    options, _ = passkeys.authentication_options(RP, None, None, NOW)
    response = auth.get(options)
    assert passkeys.credential_id_of(response) == auth.credential_id
    for bad in (None, [], {}, {"rawId": 5}, {"rawId": "a"}, {"rawId": "ab+/"}, {"rawId": "abcd", "id": "abce"}):
        with pytest.raises(PasskeyError):
            passkeys.credential_id_of(bad)
    with pytest.raises(PasskeyError):
        passkeys.credential_id_of({"rawId": "A" * 1368})


def test_malformed_state_is_refused() -> None:
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    options, state = passkeys.authentication_options(RP, None, None, NOW)
    response = auth.get(options)
    for bad in (
        None,
        {},
        {**state, "nonce": 3},
        {**state, "nonce": "a"},
        {**state, "expires_at": "x"},
        {**state, "allow": "x"},
    ):
        with pytest.raises(PasskeyError):
            passkeys.complete_authentication(RP, bad, response, factor, None, NOW)


_json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_b64 = st.binary(max_size=300).map(websafe_encode)
_keys = st.sampled_from(
    [
        "id",
        "rawId",
        "type",
        "response",
        "clientDataJSON",
        "attestationObject",
        "authenticatorData",
        "signature",
        "userHandle",
    ]
)


def _valid_pair() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], Factor]:
    auth = SoftAuthenticator()
    factor = _enrol(auth)
    reg_options, reg_state = passkeys.registration_options(RP, USER, "alice", "Alice", [], NOW)
    registration = SoftAuthenticator().create(reg_options)
    options, state = passkeys.authentication_options(RP, None, None, NOW)
    return reg_state, registration, state, auth.get(options), factor


_REG_STATE, _REGISTRATION, _STATE, _ASSERTION, _FACTOR = _valid_pair()


def _mutate(base: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    node = out
    for key in path[:-1]:
        nxt = node.get(key) if isinstance(node, dict) else None
        if not isinstance(nxt, dict):
            return out
        node = nxt
    node[path[-1]] = value
    return out


_garbage = (
    _json
    | st.dictionaries(_keys, _json | _b64, max_size=6)
    | st.builds(
        lambda path, value, which: _mutate(_REGISTRATION if which else _ASSERTION, path, value),
        st.lists(_keys, min_size=1, max_size=2).map(lambda p: ["response", *p] if len(p) == 1 else p),
        _json | _b64 | st.binary(max_size=200).map(lambda b: websafe_encode(bytes(b))),
        st.booleans(),
    )
)


def _only_passkey_errors(call: Any) -> None:
    with contextlib.suppress(PasskeyError):
        call()


@settings(max_examples=300, deadline=None)
@given(response=_garbage)
def test_any_malformed_response_is_only_ever_a_passkey_error(response: Any) -> None:
    """Whatever arrives as the browser's answer (wrong types, missing members, bad base64url, bytes
    that are not CBOR or authenticator data), the ceremonies answer with PasskeyError or succeed."""
    _only_passkey_errors(lambda: passkeys.credential_id_of(response))
    _only_passkey_errors(lambda: passkeys.complete_registration(RP, _REG_STATE, response, "", "f9", USER, NOW))
    _only_passkey_errors(lambda: passkeys.complete_authentication(RP, _STATE, response, _FACTOR, None, NOW))


def _flip(data: st.DataObject, base: dict[str, Any], members: list[str]) -> dict[str, Any]:
    member = data.draw(st.sampled_from(members))
    raw = bytearray(websafe_decode(base["response"][member]))
    raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    return _mutate(base, ["response", member], websafe_encode(bytes(raw)))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_byte_flip_in_a_valid_assertion_is_refused(data: st.DataObject) -> None:
    """§7.2 step 21: the signature covers the authenticator data and the client data hash, so one
    byte changed in either, or in the signature, is refused (with PasskeyError, nothing else)."""
    response = _flip(data, _ASSERTION, ["clientDataJSON", "authenticatorData", "signature"])
    with pytest.raises(PasskeyError):
        passkeys.complete_authentication(RP, _STATE, response, _FACTOR, None, NOW)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_byte_flip_in_a_registration_is_only_ever_a_passkey_error(data: st.DataObject) -> None:
    """With attestation `none` nothing signs a registration (§8.7), so some flips still register (a
    renamed unknown client-data member, another AAGUID); none raises anything but PasskeyError."""
    response = _flip(data, _REGISTRATION, ["clientDataJSON", "attestationObject"])
    _only_passkey_errors(lambda: passkeys.complete_registration(RP, _REG_STATE, response, "", "f9", USER, NOW))
