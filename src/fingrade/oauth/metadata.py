"""RFC 8414 / OpenID Connect Discovery metadata: one document served at both well-known URLs.
It advertises exactly what the endpoints enforce."""

from __future__ import annotations

from typing import Any

from fingrade.oauth import pkce, response_mode, sca_policy
from fingrade.oauth.authorization_details import SUPPORTED_TYPES
from fingrade.oauth.context import Core
from fingrade.oauth.profiles import CONFIDENTIAL_AUTH
from fingrade.protocol.jose import ALLOWED_ALGS

PATHS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "userinfo_endpoint": "/userinfo",
    "jwks_uri": "/jwks",
    "introspection_endpoint": "/introspect",
    "revocation_endpoint": "/revoke",
    "registration_endpoint": "/register",
    "pushed_authorization_request_endpoint": "/par",
}


# RFC 8705 §5: the endpoints a client uses over mutual TLS (the back channel).
MTLS_ALIASES = (
    "token_endpoint",
    "pushed_authorization_request_endpoint",
    "userinfo_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
)


def tls_auth_methods(core: Core) -> list[str]:
    """RFC 8705 §2 methods, only when a client certificate can reach us (own mTLS listener or a
    proxy's mTLS host); tls_client_auth also needs the trusted CAs."""
    settings = core.settings
    if not settings.mtls_enabled:
        return []
    return ["self_signed_tls_client_auth"] + (["tls_client_auth"] if settings.mtls_ca_file else [])


def server_metadata(core: Core) -> dict[str, Any]:
    tls_methods = tls_auth_methods(core)
    confidential = sorted(CONFIDENTIAL_AUTH | set(tls_methods))
    auth_methods = confidential + ["none"]
    doc: dict[str, Any] = {"issuer": core.issuer}
    doc.update({name: core.url(path) for name, path in PATHS.items()})
    doc.update(
        {
            "scopes_supported": list(core.settings.scopes),
            "response_types_supported": ["code"],
            "response_modes_supported": response_mode.SUPPORTED,
            # JARM §4.1: authorization responses are signed with the ID token key; no encryption.
            "authorization_signing_alg_values_supported": [core.settings.signing_alg],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": list(pkce.SUPPORTED_METHODS),
            "token_endpoint_auth_methods_supported": auth_methods,
            "token_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ALGS),
            "introspection_endpoint_auth_methods_supported": confidential,
            "introspection_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ALGS),
            "introspection_signing_alg_values_supported": [core.settings.signing_alg],  # RFC 9701 §7
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ALGS),
            "dpop_signing_alg_values_supported": list(ALLOWED_ALGS),  # RFC 9449 §5.1
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [core.settings.signing_alg],
            "userinfo_signing_alg_values_supported": [],
            "authorization_response_iss_parameter_supported": True,
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "amr",
                "azp",
                "at_hash",
                "name",
                "preferred_username",
                "email",
                "email_verified",
                "openbanking_intent_id",
            ],
            # OIDC Core §5.5, for openbanking_intent_id (claims_request.py); other requested claims are ignored.
            "claims_parameter_supported": True,
            # Request objects (RFC 9101) are accepted at the PAR endpoint only (FAPI 2.0 Message Signing
            # 5.3.1, RFC 9126 §3); `request` on the authorization endpoint itself gets request_not_supported,
            # so request_parameter_supported (which describes that endpoint, OIDC Discovery §3) is false.
            "request_parameter_supported": False,
            "request_object_signing_alg_values_supported": list(ALLOWED_ALGS),
            # Only request_uri values issued by our PAR endpoint (RFC 9126 §4); URLs are never fetched.
            "request_uri_parameter_supported": True,
            "require_pushed_authorization_requests": core.settings.require_pushed_authorization_requests,
            "acr_values_supported": sca_policy.supported(core.settings),
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "ui_locales_supported": ["en"],
            "authorization_details_types_supported": list(SUPPORTED_TYPES),  # RFC 9396 §10.1
        }
    )
    if core.settings.mtls_enabled:
        base = core.settings.mtls_base_url
        doc["tls_client_certificate_bound_access_tokens"] = True  # RFC 8705 §3.3
        doc["mtls_endpoint_aliases"] = {name: base + PATHS[name] for name in MTLS_ALIASES}  # RFC 8705 §5
    return doc
