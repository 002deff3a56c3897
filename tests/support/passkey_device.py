"""A passkey in software, for tests of the WebAuthn ceremonies (W3C WebAuthn Level 3 §7.1, §7.2):
one key pair, one credential id, a signature counter and the flags to set, answering options as
`navigator.credentials.create()` / `.get()` and `PublicKeyCredential.toJSON()` would, built from
python-fido2's own data types and `cryptography` keys (attestation `none`)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fido2.cose import ES256, ES384, CoseKey, EdDSA
from fido2.utils import websafe_decode
from fido2.webauthn import (
    Aaguid,
    AttestationObject,
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorAssertionResponse,
    AuthenticatorAttestationResponse,
    AuthenticatorData,
    CollectedClientData,
    RegistrationResponse,
)

DEFAULT_ORIGIN = "https://localhost:8443"
Flag = AuthenticatorData.FLAG
UP_UV = Flag.UP | Flag.UV
OWN = b"(the authenticator's own user handle)"


@dataclass
class SoftAuthenticator:
    """A passkey in software: one key pair, one credential id, a counter, and flags to set. `origin`
    is the page's origin its client data names (a method's `origin` argument overrides it)."""

    key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    counter: int = 0
    user_handle: bytes | None = None
    origin: str = DEFAULT_ORIGIN

    def cose(self) -> CoseKey:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return EdDSA.from_cryptography_key(self.key.public_key())
        if isinstance(self.key.curve, ec.SECP384R1):
            return ES384.from_cryptography_key(self.key.public_key())
        return ES256.from_cryptography_key(self.key.public_key())

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        digest = hashes.SHA384() if isinstance(self.key.curve, ec.SECP384R1) else hashes.SHA256()
        return self.key.sign(data, ec.ECDSA(digest))

    def create(
        self,
        options: dict[str, Any],
        *,
        flags: Flag = UP_UV,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        **client: Any,
    ) -> dict[str, Any]:
        """navigator.credentials.create() and PublicKeyCredential.toJSON(), attestation `none`."""
        self.user_handle = websafe_decode(options["user"]["id"])
        client_data = CollectedClientData.create(
            type="webauthn.create",
            challenge=challenge if challenge is not None else websafe_decode(options["challenge"]),
            origin=origin or self.origin,
            **client,
        )
        credential = AttestedCredentialData.create(Aaguid.NONE, self.credential_id, self.cose())
        auth_data = AuthenticatorData.create(
            rp_hash(rp_id or options["rp"]["id"]), flags | Flag.AT, self.counter, credential
        )
        attestation = AttestationObject.create("none", auth_data, {})
        response = RegistrationResponse(
            raw_id=self.credential_id,
            response=AuthenticatorAttestationResponse(client_data=client_data, attestation_object=attestation),
        )
        return json.loads(json.dumps(dict(response)))

    def get(
        self,
        options: dict[str, Any],
        *,
        flags: Flag = UP_UV,
        origin: str | None = None,
        rp_id: str | None = None,
        user_handle: bytes | None = OWN,
        counter_step: int = 1,
    ) -> dict[str, Any]:
        """navigator.credentials.get() and PublicKeyCredential.toJSON(); the counter goes up by
        `counter_step` (0: an authenticator that keeps no counter)."""
        self.counter += counter_step
        client_data = CollectedClientData.create(
            type="webauthn.get", challenge=websafe_decode(options["challenge"]), origin=origin or self.origin
        )
        auth_data = AuthenticatorData.create(rp_hash(rp_id or options["rpId"]), flags, self.counter)
        response = AuthenticationResponse(
            raw_id=self.credential_id,
            response=AuthenticatorAssertionResponse(
                client_data=client_data,
                authenticator_data=auth_data,
                signature=self.sign(auth_data + client_data.hash),
                user_handle=self.user_handle if user_handle == OWN else user_handle,
            ),
        )
        return json.loads(json.dumps(dict(response)))


def rp_hash(rp_id: str) -> bytes:
    return hashlib.sha256(rp_id.encode()).digest()
