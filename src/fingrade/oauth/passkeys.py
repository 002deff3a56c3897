"""Passkeys (W3C WebAuthn Level 3) as a second factor: what the browser is asked for, and what its
answer must prove, for enrolment (§7.1 "Registering a New Credential") and for sign-in or payment
approval (§7.2 "Verifying an Authentication Assertion").

The ceremonies are python-fido2's (`Fido2Server`: client data, CBOR, COSE keys, signatures); this
module holds Fingrade's policy around them:

- user verification is always required, and a passkey is a discoverable credential, so that one
  gesture is two SCA elements (possession, and inherence or knowledge; oauth/authn_level.py) and a
  customer can sign in without typing a username;
- attestation is not asked for (`none`): a bank does not decide which authenticator makers to trust;
- only the page at the issuer's own origin may run a ceremony (not a subdomain, not an iframe);
- dynamic linking (PSD2 RTS Art. 5): a challenge that approves a payment commits to the hash of its
  details (fingrade.finance.dynamic_linking), so it cannot approve another payment;
- the signature counter detects a cloned authenticator (§6.1.1), with the compare-and-set left to
  the caller's store (FactorStore.factor_used), as is everything else that reads or writes state.

Nothing here does I/O. The caller keeps the `state` of a ceremony (plain JSON, one-time) between the
options and the completion, looks the factor up by `credential_id_of(response)`, and stores what a
completion returns. Every failure is a `PasskeyError` whose message can be shown to the customer;
its `reason` says what went wrong for the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from fido2.cose import ES256, RS256, EdDSA
from fido2.server import Fido2Server
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import (
    AttestationConveyancePreference,
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorData,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialType,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from fingrade.oauth.authn_level import HWK, SWK, USER
from fingrade.oauth.models import Factor, FactorKind

# §15.1: with user verification required, a ceremony timeout of 300 to 600 seconds is advised.
TIMEOUT = 300  # seconds; also how long a ceremony's state is kept
# §5.4 pubKeyCredParams, in order of preference: ES256 is what every platform authenticator makes.
ALGORITHMS = (ES256.ALGORITHM, EdDSA.ALGORITHM, RS256.ALGORITHM)  # -7, -8, -257
CHALLENGE_BYTES = 32  # §13.4.3: at least 16 random bytes
MAX_CREDENTIAL_ID = 1023  # §7.1 step 25
MAX_USER_HANDLE = 64  # §5.4.3: user.id is at most 64 bytes
DEFAULT_NAME = "Passkey"
MAX_NAME = 100
LINK_PREFIX = b"fingrade-payment|"  # domain separation of a payment-linked challenge

_REGISTRATION = "webauthn.create"
_AUTHENTICATION = "webauthn.get"
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# fido2 reads the user verification requirement from its state: always required here.
_UV_REQUIRED = UserVerificationRequirement.REQUIRED

_MALFORMED = "The passkey's answer could not be read. Please try again."
_FAILED = "The passkey could not be verified. Please try again."
_EXPIRED = "This passkey request has expired or is no longer valid. Please start again."
_WRONG_PASSKEY = "This passkey is not the one that was asked for."


class PasskeyError(Exception):
    """A ceremony was refused. `message` can be shown to the customer; `reason` is for the audit log
    (which check failed), never for the customer."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or message


class PasskeyCloned(PasskeyError):
    """The signature counter did not go up (§6.1.1, §7.2 step 22): two authenticators may hold the
    same private key. The caller audits it and refuses the sign-in."""


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """The WebAuthn Relying Party: the RP ID (the issuer's host, §4 "RP ID"), the name an
    authenticator shows, and the one origin whose pages may run the ceremonies (§13.4.9)."""

    id: str
    name: str
    origin: str

    @classmethod
    def for_issuer(cls, issuer: str, name: str = "Fingrade") -> RelyingParty:
        """The RP of an issuer URL: its host as RP ID, its scheme, host and port as the origin
        (serialised as a browser does: lower case, no default port)."""
        parts = urlsplit(issuer)
        host = parts.hostname
        if parts.scheme not in ("https", "http") or not host:
            raise ValueError(f"issuer {issuer!r}: not an http(s) URL with a host")
        port = parts.port
        default = 443 if parts.scheme == "https" else 80
        netloc = f"[{host}]" if ":" in host else host
        if port is not None and port != default:
            netloc += f":{port}"
        return cls(id=host, name=name, origin=f"{parts.scheme}://{netloc}")


@dataclass(frozen=True, slots=True)
class Verified:
    """A passkey sign-in that passed: which factor, the counter to compare-and-set (None when the
    authenticator keeps no counter), and the amr values it earns (RFC 8176)."""

    factor_id: str
    sign_count: int | None
    amr: list[str]


# --- registration (§7.1) -------------------------------------------------------------------------


def registration_options(
    rp: RelyingParty, user_id: str, username: str, display_name: str, existing: list[Factor], now: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PublicKeyCredentialCreationOptions (JSON form, for `parseCreationOptionsFromJSON`) to enrol
    a passkey for `user_id`, and the state to keep for `complete_registration`.

    The user handle is the user id, never the username (§14.6.1: it must not identify the customer to
    anyone who reads the authenticator). The customer's existing passkeys are excluded, so that one
    authenticator is not enrolled twice (§5.4 excludeCredentials)."""
    handle = user_id.encode("utf-8")
    if not handle or len(handle) > MAX_USER_HANDLE:
        raise ValueError("user_id: 1 to 64 bytes as a WebAuthn user handle")
    nonce = secrets.token_bytes(CHALLENGE_BYTES)
    options, _ = _server(rp).register_begin(
        PublicKeyCredentialUserEntity(id=handle, name=username, display_name=display_name),
        credentials=_descriptors(existing),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        user_verification=_UV_REQUIRED,
        challenge=nonce,
    )
    state = {
        "ceremony": _REGISTRATION,
        "nonce": websafe_encode(nonce),
        "linked_hash": None,
        "user_id": user_id,
        "expires_at": now + TIMEOUT,
    }
    return _json(options.public_key), state


def passkey_name(name: str) -> str:
    """The customer's name for a passkey: trimmed, "Passkey" if empty, else 1 to 100 printable
    characters (a name is shown back in lists and e-mails, so control characters are refused)."""
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        return DEFAULT_NAME
    if len(text) > MAX_NAME or not text.isprintable():
        raise PasskeyError(f"Choose a name of at most {MAX_NAME} characters, without special characters.", "name")
    return text


def complete_registration(
    rp: RelyingParty, state: dict[str, Any], response: dict[str, Any], name: str, factor_id: str, user_id: str, now: int
) -> Factor:
    """Check the browser's answer to `registration_options` (its `PublicKeyCredential.toJSON()`) and
    return the passkey to store. The caller stores it through FactorStore.add_factor, which refuses a
    credential id already registered to anyone (§7.1 step 26)."""
    label = passkey_name(name)
    nonce, _ = _open_state(state, _REGISTRATION, None, now)
    if state.get("user_id") != user_id:
        raise PasskeyError(_EXPIRED, "state issued for another user")
    registration = _parse(RegistrationResponse, response)
    client_data = registration.response.client_data
    auth_data = registration.response.attestation_object.auth_data
    # §7.1 steps 10-11: the ceremony is never run inside a frame of another origin.
    if client_data.cross_origin:
        raise PasskeyError(_FAILED, "cross-origin client data")
    credential = auth_data.credential_data
    if credential is None:
        raise PasskeyError(_MALFORMED, "no attested credential data")
    # §7.1 steps 7-9 and 13-16: type, challenge, origin, RP ID hash, UP, UV; attestation `none`.
    _verify(lambda: _server(rp).register_complete(_fido2_state(nonce), registration))
    _check_backup_flags(auth_data)  # §7.1 step 17
    if credential.public_key.ALGORITHM not in ALGORITHMS:  # §7.1 step 20
        raise PasskeyError("This kind of passkey is not supported.", "algorithm not offered")
    if not credential.credential_id or len(credential.credential_id) > MAX_CREDENTIAL_ID:  # §7.1 step 25
        raise PasskeyError(_FAILED, "credential id length")
    return Factor(
        id=factor_id,
        user_id=user_id,
        kind=FactorKind.PASSKEY,
        name=label,
        created_at=now,
        credential_id=bytes(credential.credential_id),
        credential=bytes(credential),
        sign_count=auth_data.counter,
        backup_eligible=auth_data.is_backup_eligible(),
    )


# --- authentication (§7.2) -----------------------------------------------------------------------


def authentication_options(
    rp: RelyingParty, allow: list[Factor] | None, linked_hash: str | None, now: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PublicKeyCredentialRequestOptions (JSON form, for `parseRequestOptionsFromJSON`) and the
    state to keep for `complete_authentication`.

    `allow` None asks for any of this site's passkeys (discoverable credentials: sign-in without a
    username); otherwise only those listed. With `linked_hash` (the details_hash of a payment), the
    challenge commits to that payment: SHA-256 over a fresh nonce and the hash."""
    if linked_hash is not None and _link_bytes(linked_hash) is None:
        raise ValueError("linked_hash: the hex SHA-256 of fingrade.finance.dynamic_linking.details_hash")
    nonce = secrets.token_bytes(CHALLENGE_BYTES)
    descriptors = _descriptors(allow or [])
    options, _ = _server(rp).authenticate_begin(
        credentials=descriptors, user_verification=_UV_REQUIRED, challenge=_challenge(nonce, linked_hash)
    )
    state = {
        "ceremony": _AUTHENTICATION,
        "nonce": websafe_encode(nonce),
        "linked_hash": linked_hash,
        "allow": None if allow is None else [websafe_encode(d.id) for d in descriptors],
        "expires_at": now + TIMEOUT,
    }
    return _json(options.public_key), state


def credential_id_of(response: object) -> bytes:
    """The credential id an authentication answer names (`rawId`, and `id` if given, which must
    agree), to look the factor up with FactorStore.factor_by_credential."""
    if not isinstance(response, Mapping):
        raise PasskeyError(_MALFORMED, "response is not an object")
    raw = response.get("rawId", response.get("id"))
    if not isinstance(raw, str) or ("id" in response and response.get("id") != raw):
        raise PasskeyError(_MALFORMED, "rawId and id missing or different")
    # 1364 = ceil(1023 * 4 / 3): the base64url of the longest credential id (§7.1 step 25)
    decoded = _b64url(raw) if len(raw) <= 1364 else None
    if not decoded:
        raise PasskeyError(_MALFORMED, "rawId is not base64url")
    return decoded


def complete_authentication(
    rp: RelyingParty,
    state: dict[str, Any],
    response: dict[str, Any],
    factor: Factor,
    linked_hash: str | None,
    now: int,
) -> Verified:
    """Check the browser's answer to `authentication_options` (its `PublicKeyCredential.toJSON()`),
    made with `factor` (looked up by `credential_id_of(response)`). `linked_hash` is the details_hash
    of the payment being approved, computed again by the caller; the challenge must have been made
    for exactly that payment. The caller compare-and-sets `sign_count` (FactorStore.factor_used)."""
    nonce, allow = _open_state(state, _AUTHENTICATION, linked_hash, now)
    assertion = _parse(AuthenticationResponse, response)
    stored = _stored_credential(factor)
    raw_id = bytes(assertion.raw_id)
    if not hmac.compare_digest(raw_id, stored.credential_id):
        raise PasskeyError(_WRONG_PASSKEY, "credential id is not the factor's")
    # §7.2 step 5: a credential of those that were asked for.
    if allow is not None and websafe_encode(raw_id) not in allow:
        raise PasskeyError(_WRONG_PASSKEY, "credential not in allowCredentials")
    # §7.2 step 6: the user handle names the factor's owner; with no allow list (a discoverable
    # credential, the customer not yet identified) it must be there.
    handle = assertion.response.user_handle
    if handle is None and allow is None:
        raise PasskeyError(_FAILED, "user handle missing")
    if handle is not None and not hmac.compare_digest(bytes(handle), factor.user_id.encode("utf-8")):
        raise PasskeyError(_WRONG_PASSKEY, "user handle is not the factor's owner")
    client_data = assertion.response.client_data
    auth_data = assertion.response.authenticator_data
    if client_data.cross_origin:  # §7.2 steps 13-14
        raise PasskeyError(_FAILED, "cross-origin client data")
    # §7.2 steps 10-12, 15-17 and 21: type, challenge, origin, RP ID hash, UP, UV, signature.
    challenge = _challenge(nonce, linked_hash)
    _verify(lambda: _server(rp).authenticate_complete(_fido2_state(challenge), [stored], assertion))
    _check_backup_flags(auth_data)  # §7.2 step 18
    # §7.2 step 19: backup eligibility is fixed when the credential is made.
    if auth_data.is_backup_eligible() != factor.backup_eligible:
        raise PasskeyError(_FAILED, "backup eligibility changed")
    return Verified(
        factor_id=factor.id,
        sign_count=_next_count(factor.sign_count, auth_data.counter),
        amr=[SWK if factor.backup_eligible else HWK, USER],
    )


def _next_count(stored: int, new: int) -> int | None:
    """§6.1.1 and §7.2 step 22: a counter of 0 on both sides is an authenticator that keeps none (most
    synced passkeys); otherwise it must have gone up since the last use."""
    if stored == 0 and new == 0:
        return None
    if new <= stored:
        raise PasskeyCloned(
            "This passkey cannot be used: it may have been copied. Please contact us.",
            f"signature counter {new} not above stored {stored}",
        )
    return new


# --- shared --------------------------------------------------------------------------------------


def _server(rp: RelyingParty) -> Fido2Server:
    # The exact origin only: fido2's default would also accept any subdomain of the RP ID.
    server = Fido2Server(
        PublicKeyCredentialRpEntity(name=rp.name, id=rp.id),
        attestation=AttestationConveyancePreference.NONE,
        verify_origin=lambda origin: origin == rp.origin,
    )
    # milliseconds (§5.4 timeout); fido2 infers the attribute's type from its default, None
    server.timeout = TIMEOUT * 1000  # type: ignore[assignment]
    server.allowed_algorithms = [
        PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=alg) for alg in ALGORITHMS
    ]
    return server


def _descriptors(factors: Sequence[Factor]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(type=PublicKeyCredentialType.PUBLIC_KEY, id=f.credential_id)
        for f in factors
        if f.kind == FactorKind.PASSKEY and f.credential_id
    ]


def _json(options: Mapping[str, Any]) -> dict[str, Any]:
    # fido2's options are Mappings whose bytes read as base64url (the WebAuthn Level 3 JSON forms);
    # the round trip makes them plain dicts, lists and strings (its enums are str subclasses).
    return cast(dict[str, Any], json.loads(json.dumps(dict(options))))


def _link_bytes(linked_hash: str) -> bytes | None:
    if not isinstance(linked_hash, str) or not _HEX_SHA256.fullmatch(linked_hash):
        return None
    return bytes.fromhex(linked_hash)


def _challenge(nonce: bytes, linked_hash: str | None) -> bytes:
    """A plain challenge is the nonce; a payment's commits to its details hash (dynamic linking)."""
    if linked_hash is None:
        return nonce
    link = _link_bytes(linked_hash)
    if link is None:
        raise PasskeyError(_EXPIRED, "linked hash is not a hex SHA-256")
    return hashlib.sha256(LINK_PREFIX + nonce + link).digest()


def _open_state(state: object, ceremony: str, linked_hash: str | None, now: int) -> tuple[bytes, list[str] | None]:
    """The nonce and allowed credential ids of a kept state, if it is this ceremony's, not expired,
    and made for the same payment (or none) as the one being approved."""
    if not isinstance(state, Mapping) or state.get("ceremony") != ceremony:
        raise PasskeyError(_EXPIRED, "state of another ceremony")
    expires_at = state.get("expires_at")
    if not isinstance(expires_at, int) or isinstance(expires_at, bool) or expires_at < now:
        raise PasskeyError(_EXPIRED, "state expired")
    # A challenge made for one payment approves only that one (and a plain one, none).
    if state.get("linked_hash") != linked_hash:
        raise PasskeyError(_EXPIRED, "challenge made for other payment details")
    nonce = _b64url(state.get("nonce"))
    allow = state.get("allow")
    if not nonce or len(nonce) < CHALLENGE_BYTES:
        raise PasskeyError(_EXPIRED, "state without a nonce")
    if allow is not None and not (isinstance(allow, list) and all(isinstance(a, str) for a in allow)):
        raise PasskeyError(_EXPIRED, "state with a malformed allow list")
    return nonce, allow


def _b64url(text: object) -> bytes | None:
    """Base64url without padding (RFC 4648 §5), strictly: None for anything else."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    return websafe_decode(text)


def _fido2_state(challenge: bytes) -> dict[str, Any]:
    return {"challenge": websafe_encode(challenge), "user_verification": _UV_REQUIRED}


_Response = TypeVar("_Response", RegistrationResponse, AuthenticationResponse)


def _parse(kind: type[_Response], response: object) -> _Response:
    """fido2's parse of the JSON answer (base64url, client data JSON, CBOR, authenticator data)."""
    if not isinstance(response, Mapping):
        raise PasskeyError(_MALFORMED, "response is not an object")
    try:
        return kind.from_dict(response)
    # Any exception from parsing untrusted bytes means a malformed answer: fido2 raises ValueError,
    # KeyError, TypeError, IndexError, struct.error, RecursionError... depending on where it stops.
    except Exception as exc:  # noqa: BLE001
        raise PasskeyError(_MALFORMED, f"malformed {kind.__name__}: {type(exc).__name__}") from None


def _verify(check: Callable[[], object]) -> None:
    """Run a fido2 ceremony check; any failure is a refusal (fail closed)."""
    try:
        check()
    except ValueError as exc:  # fido2's refusals: "Wrong challenge in response." and the like
        raise PasskeyError(_FAILED, str(exc)[:200]) from None
    except Exception as exc:  # noqa: BLE001 - a key or signature fido2 cannot even check
        raise PasskeyError(_FAILED, f"verification error: {type(exc).__name__}") from None


def _stored_credential(factor: Factor) -> AttestedCredentialData:
    if factor.kind != FactorKind.PASSKEY or not factor.credential:
        raise PasskeyError(_WRONG_PASSKEY, "factor is not a passkey")
    try:
        return AttestedCredentialData(factor.credential)
    except Exception as exc:  # noqa: BLE001 - stored bytes fido2 cannot read: refuse, do not crash
        raise PasskeyError(_FAILED, f"stored credential unreadable: {type(exc).__name__}") from None


def _check_backup_flags(auth_data: AuthenticatorData) -> None:
    """§7.1 step 17, §7.2 step 18: a credential cannot be backed up (BS) if it may not be (BE)."""
    if auth_data.is_backed_up() and not auth_data.is_backup_eligible():
        raise PasskeyError(_FAILED, "backup state without backup eligibility")
