"""Client security profiles: every per-kind-of-client rule, in one place.

Endpoints ask the client's profile; they never test the kind of client themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from fingrade.config import Settings
from fingrade.oauth.models import Client
from fingrade.oauth.mtls import BOUND_TOKENS, TLS_AUTH_METHODS


@dataclass(frozen=True)
class Profile:
    name: str
    public: bool  # no credentials: authenticates with client_id alone
    auth_methods: frozenset[str]  # token_endpoint_auth_method values allowed
    redirect_kind: str  # `native` or `web`: see redirect_uri.validate_registered
    grant_types: frozenset[str]  # grants the profile may be registered for
    pkce_opt_out: bool  # may a client of this profile be registered with require_pkce = false?
    rotate_refresh_tokens: bool  # RFC 9700 §4.14: public clients rotate, with replay detection
    cors_at_token_endpoint: bool  # browser apps call the token endpoint cross-origin
    application_type: str  # OIDC Dynamic Registration `application_type`
    # FAPI 2.0 SP 5.3.2.2-3: authorization requests only through PAR.
    par_required: bool = False
    # FAPI 2.0 SP 5.3.2.1-4: every access token bound to a DPoP key or a client certificate.
    sender_constrained: bool = False
    # FAPI 2.0 Message Signing 5.3.1: pushed requests must be signed request objects (RFC 9101).
    signed_requests: bool = False
    # FAPI 2.0 Message Signing 5.3.2 (Final: required for clients configured for it): every redirected
    # authorization response, success or error, is a signed JWT (JARM); response_mode must ask for it.
    signed_responses: bool = False
    # RFC 8252 §8.6: the client_id alone does not prove which app is asking (any app can claim a
    # loopback port or a private-use scheme), so a repeated request is never processed automatically
    # unless identity_assured says otherwise.
    identity_needs_proof: bool = False
    # Strong customer authentication for every authorization, even where the deployment's `sca` is
    # `optional` (docs/sca.md): a FAPI 2.0 client is a regulated fintech reaching bank accounts.
    sca_by_default: bool = False

    def allows_auth_method(self, method: str) -> bool:
        return method in self.auth_methods


CONFIDENTIAL_AUTH = frozenset({"client_secret_basic", "client_secret_post", "private_key_jwt"})

NATIVE = Profile(
    name="native",
    public=True,
    auth_methods=frozenset({"none"}),
    redirect_kind="native",
    grant_types=frozenset({"authorization_code", "refresh_token"}),
    pkce_opt_out=False,
    rotate_refresh_tokens=True,
    cors_at_token_endpoint=False,
    application_type="native",
    identity_needs_proof=True,
)
SPA = Profile(
    name="spa",
    public=True,
    auth_methods=frozenset({"none"}),
    redirect_kind="web",
    grant_types=frozenset({"authorization_code", "refresh_token"}),
    pkce_opt_out=False,
    rotate_refresh_tokens=True,
    cors_at_token_endpoint=True,
    application_type="web",
)
CONFIDENTIAL = Profile(
    # RFC 8705 §2: mutual TLS authenticates any confidential client, as an RFC 7591 client registering
    # with standard metadata expects (registration checks that the server offers mutual TLS). Nothing
    # infers a FAPI profile from it: FAPI 2.0 adds rules (PAR only, ...) the client did not ask for.
    name="confidential",
    public=False,
    auth_methods=CONFIDENTIAL_AUTH | TLS_AUTH_METHODS,
    redirect_kind="web",
    # RFC 9700 §2.1.1 lets a confidential client rely on the OIDC nonce instead of PKCE; we allow
    # it only when the client is registered so explicitly (PKCE stays the default).
    grant_types=frozenset({"authorization_code", "refresh_token", "client_credentials"}),
    pkce_opt_out=True,
    # RFC 9700 §4.14.2: a confidential client's refresh token is bound to its authentication.
    rotate_refresh_tokens=False,
    cors_at_token_endpoint=False,
    application_type="web",
)

# FAPI 2.0 SP 5.3.2.1-6: private_key_jwt or mutual TLS (RFC 8705 §2), nothing else.
FAPI2_AUTH = frozenset({"private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"})
FAPI2 = Profile(
    name="fapi2",
    public=False,
    auth_methods=FAPI2_AUTH,
    redirect_kind="web",
    grant_types=frozenset({"authorization_code", "refresh_token", "client_credentials"}),
    pkce_opt_out=False,
    # FAPI 2.0 SP 5.3.2.1-9: no refresh token rotation.
    rotate_refresh_tokens=False,
    cors_at_token_endpoint=False,
    application_type="web",
    par_required=True,
    sender_constrained=True,
    sca_by_default=True,
)
FAPI2_MESSAGE_SIGNING = Profile(
    name="fapi2-message-signing",
    public=False,
    auth_methods=FAPI2_AUTH,
    redirect_kind="web",
    grant_types=frozenset({"authorization_code", "refresh_token", "client_credentials"}),
    pkce_opt_out=False,
    rotate_refresh_tokens=False,
    cors_at_token_endpoint=False,
    application_type="web",
    par_required=True,
    sender_constrained=True,
    signed_requests=True,
    signed_responses=True,
    sca_by_default=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (NATIVE, SPA, CONFIDENTIAL, FAPI2, FAPI2_MESSAGE_SIGNING)}


def pkce_required(client: Client) -> bool:
    """PKCE is required unless the profile allows an opt-out and the client took it
    (RFC 7636; RFC 9700 §2.1.1; public clients never may)."""
    return not (get_profile(client.profile).pkce_opt_out and client.metadata.get("require_pkce") is False)


def par_required(settings: Settings, client: Client) -> bool:
    """Authorization requests only through PAR: server-wide, for this client (RFC 9126 §5, §6) or for
    its profile (FAPI 2.0 SP 5.3.2.2-3)."""
    return (
        settings.require_pushed_authorization_requests
        or get_profile(client.profile).par_required
        or client.metadata.get("require_pushed_authorization_requests") is True
    )


def dpop_required(client: Client) -> bool:
    """RFC 9449 §5.2: a client registered with dpop_bound_access_tokens always sends a DPoP proof."""
    return client.metadata.get("dpop_bound_access_tokens") is True


def authorization_details_types(client: Client) -> frozenset[str]:
    """RFC 9396 §10.2: the authorization details types this client may use. A client that
    registered none may use none (fail closed: a payment or account access must be something the
    operator enabled for this client, not something any client can ask a customer for)."""
    return frozenset(client.metadata.get("authorization_details_types", ()))


def tokens_must_be_bound(client: Client) -> bool:
    """No bearer tokens: the profile says so (FAPI 2.0 SP 5.3.2.1-4), or the client registered for
    certificate-bound tokens (RFC 8705 §3.4) and must not silently get unbound ones."""
    return get_profile(client.profile).sender_constrained or client.metadata.get(BOUND_TOKENS) is True


def binds_certificate(client: Client, method: str) -> bool:
    """Does a client certificate presented at the token endpoint bind the access token (RFC 8705 §3)?
    Yes when it authenticated the client (§2), when the client registered
    tls_client_certificate_bound_access_tokens (§3.4), or when its profile requires sender-constrained
    tokens (FAPI 2.0 SP 5.3.2.1-5: mutual TLS is one of the two ways)."""
    return method in TLS_AUTH_METHODS or tokens_must_be_bound(client)


# Client metadata set only by an operator (`fingrade clients add --verified`, `clients verify`): the
# app's identity was checked out of band (e.g. its store listing or platform attestation). Never
# taken from registration metadata; an RFC 7592 update of the registration clears it.
IDENTITY_VERIFIED = "identity_verified"


def identity_assured(client: Client, redirect_uri: str) -> bool:
    """RFC 8252 §8.6: may a request of this client be completed without asking the user, on the
    strength of an earlier consent? Confidential clients prove who they are at the token endpoint and
    browser apps are bound to their https origin. A native app's identity is assured only when an
    operator verified the client, or when the request's redirect URI is a claimed https URI (§7.2:
    the operating system hands it only to the app that proved it owns the domain; §8.6 accepts it)."""
    if not get_profile(client.profile).identity_needs_proof:
        return True
    return client.metadata.get(IDENTITY_VERIFIED) is True or redirect_uri.startswith("https://")


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown client profile {name!r}") from None
