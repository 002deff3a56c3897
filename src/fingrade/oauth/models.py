"""Domain values shared by the core and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fingrade.finance.consent_ids import ConsentStatus


@dataclass(slots=True)
class Client:
    client_id: str
    profile: str  # a key of fingrade.oauth.profiles.PROFILES
    client_name: str
    redirect_uris: list[str]
    token_endpoint_auth_method: str
    grant_types: list[str]
    scope: str  # space-separated scopes the client may ask for
    secret_hash: str | None = None  # HMAC-SHA-256 of the secret under the server key, hex
    jwks: dict[str, Any] | None = None
    allowed_origins: list[str] = field(default_factory=list)  # CORS at the token endpoint (spa)
    metadata: dict[str, Any] = field(default_factory=dict)  # client_uri, logo_uri, contacts, ...
    resource_server: bool = False  # may introspect tokens issued to other clients
    registration_token_hash: str | None = None  # RFC 7592 registration access token, hashed
    created_at: int = 0
    updated_at: int = 0

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


@dataclass(slots=True)
class User:
    id: str  # the OIDC `sub`: random, never reassigned
    username: str
    password_hash: str
    name: str = ""
    email: str = ""
    email_verified: bool = False
    disabled: bool = False
    created_at: int = 0


@dataclass(slots=True)
class Session:
    id_hash: str
    user_id: str
    auth_time: int
    expires_at: int
    amr: list[str] = field(default_factory=lambda: ["pwd"])


class FactorKind(StrEnum):
    """A second factor of strong customer authentication (docs/sca.md)."""

    TOTP = "totp"  # RFC 6238 one-time codes from an authenticator app: possession
    PASSKEY = "passkey"  # a WebAuthn credential: possession, and inherence or knowledge with user verification


@dataclass(slots=True)
class Factor:
    """A customer's enrolled second factor."""

    id: str
    user_id: str
    kind: FactorKind
    name: str  # the customer's name for it ("Work phone")
    created_at: int
    secret: bytes | None = None  # TOTP: the shared secret; sealed at rest, in clear only in memory
    credential_id: bytes | None = None  # passkey: the WebAuthn credential id (looked up at sign-in)
    credential: bytes | None = None  # passkey: the attested credential data (AAGUID, id, COSE key) as given
    sign_count: int = 0  # passkey: the authenticator's signature counter (clone detection)
    backup_eligible: bool = False  # passkey: may be synced to other devices (amr swk, else hwk)
    last_used_at: int | None = None


@dataclass(slots=True)
class Grant:
    """A token family: everything issued from one authorization code (or one client_credentials call)."""

    id: str
    client_id: str
    user_id: str | None
    scope: str
    auth_time: int | None
    created_at: int
    revoked_at: int | None = None
    # RFC 9396: the authorization details the user approved (normalised JSON objects), or None
    authorization_details: list[dict[str, Any]] | None = None
    # How the customer authenticated for this grant (OIDC Core §2, RFC 8176): carried by every token
    # the grant issues, refreshed ones included.
    acr: str | None = None
    amr: list[str] | None = None
    # Dynamic linking (PSD2 RTS Art. 5): the hash of the payment details a fresh strong authentication
    # approved, and the factors that did (oauth/dynamic_linking.py). None for grants without a payment.
    linked_details_hash: str | None = None
    linked_factors: list[str] | None = None


@dataclass(slots=True)
class ConsentResource:
    """A consent lodged by a resource server for a client before the customer sees it (UK Open
    Banking's account-access-consents, the FAPI "lodging intent" pattern); oauth/consent_resources.py."""

    id: str
    client_id: str
    status: ConsentStatus  # as stored (a derived one: consent_resources.status)
    authorization_details: list[dict[str, Any]]  # RFC 9396; once authorised, what the customer approved
    data: dict[str, Any]  # the resource server's own fields, returned unchanged
    created_at: int
    status_updated_at: int
    user_id: str | None = None  # the customer who authorised or rejected it
    grant_id: str | None = None  # the grant it was authorised into


@dataclass(slots=True)
class RefreshToken:
    token_hash: str
    grant_id: str
    client_id: str
    user_id: str | None
    scope: str
    created_at: int
    expires_at: int
    used_at: int | None = None  # set when rotated away; presenting it again is a replay
    dpop_jkt: str | None = None  # RFC 9449 §5: public clients' refresh tokens are bound to a DPoP key
    # How the grant's access tokens are sender-constrained (`dpop` or `mtls`, None: unbound); every
    # refresh must bind its access token the same way (RFC 9449 §5, RFC 8705 §3, FAPI 2.0 SP 5.3.2.1).
    binding: str | None = None


@dataclass(slots=True)
class SigningKey:
    kid: str
    alg: str
    status: str  # next | active | retired
    private_jwk: dict[str, Any]  # decrypted in memory only
    public_jwk: dict[str, Any]
    created_at: int
    activated_at: int | None = None
    retired_at: int | None = None
