"""Client registration: one validator used by dynamic registration (RFC 7591), its management
protocol (RFC 7592) and the `fingrade clients add` command."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fingrade.oauth import mtls
from fingrade.oauth.authorization_details import SUPPORTED_TYPES
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client
from fingrade.oauth.profiles import PROFILES, get_profile
from fingrade.oauth.redirect_uri import RedirectUriError, validate_registered
from fingrade.oauth.scope import parse_scope
from fingrade.protocol import strict_json
from fingrade.protocol.crypto import equal, keyed_hash, new_token, token_hash
from fingrade.protocol.errors import OAuthError, invalid_token, method_not_allowed
from fingrade.protocol.http import NO_STORE, HttpRequest, HttpResponse
from fingrade.protocol.jose import validate_client_jwks

MAX_BODY = 64 * 1024
_URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_TEXT_FIELDS = ("software_id", "software_version")
_SIGNED_RESPONSE_FIELDS = ("authorization_signed_response_alg", "introspection_signed_response_alg")


def metadata_error(desc: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", desc, 400)


def _redirect_error(desc: str) -> OAuthError:
    return OAuthError("invalid_redirect_uri", desc, 400)


def _profile_for(meta: dict[str, Any]) -> str:
    requested = meta.get("security_profile")
    method = meta.get("token_endpoint_auth_method", "client_secret_basic")
    if requested is not None:
        if not isinstance(requested, str) or requested not in PROFILES:  # a list or object is no key
            raise metadata_error("security_profile must be one of " + ", ".join(PROFILES))
        return str(requested)
    if method == "none":
        return "native" if meta.get("application_type") == "native" else "spa"
    return "confidential"


def _string_list(meta: dict[str, Any], name: str, default: list[str]) -> list[str]:
    value = meta.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 20:
        raise metadata_error(f"{name} must be a list of at most 20 strings")
    return list(dict.fromkeys(value))


def build_client(core: Core, meta: dict[str, Any], existing: Client | None = None) -> tuple[Client, str | None]:
    """Validate client metadata and return the client and, when one was generated, its new secret."""
    if not isinstance(meta, dict):
        raise metadata_error("client metadata must be a JSON object")
    profile_name = _profile_for(meta)
    if existing is not None and profile_name != existing.profile:
        # A client's security profile is part of its identity: a confidential client must not
        # become a public one by an update (register a new client instead).
        raise metadata_error(f"the security profile cannot change from {existing.profile} to {profile_name}")
    profile = get_profile(profile_name)
    method = meta.get("token_endpoint_auth_method", "none" if profile.public else "client_secret_basic")
    if not isinstance(method, str) or not profile.allows_auth_method(method):
        raise metadata_error(
            f"token_endpoint_auth_method {str(method)[:40]!r} is not allowed for {profile_name} clients"
        )
    app_type = meta.get("application_type", profile.application_type)
    if app_type != profile.application_type:
        raise metadata_error(f"application_type must be {profile.application_type} for {profile_name} clients")

    grant_types = _string_list(
        meta,
        "grant_types",
        ["authorization_code", "refresh_token"] if "refresh_token" in profile.grant_types else ["authorization_code"],
    )
    bad = [g for g in grant_types if g not in profile.grant_types]
    if bad or not grant_types:
        raise metadata_error(f"grant_types not allowed for {profile_name} clients: {' '.join(bad)[:80]}")
    if _string_list(meta, "response_types", ["code"] if "authorization_code" in grant_types else []) not in (
        ["code"],
        [],
    ):
        raise metadata_error('response_types must be ["code"]')

    redirect_uris = _string_list(meta, "redirect_uris", [])
    if "authorization_code" in grant_types and not redirect_uris:
        raise _redirect_error("redirect_uris is required for the authorization code grant")
    for uri in redirect_uris:
        try:
            validate_registered(uri, profile.redirect_kind)
        except RedirectUriError as exc:
            raise _redirect_error(f"{uri[:80]}: {exc}") from None

    scope = meta.get("scope", "openid profile email")
    if not isinstance(scope, str):
        raise metadata_error("scope must be a space-separated string")
    scopes = parse_scope(scope)
    unknown = [s for s in scopes if s not in core.settings.scopes]
    if unknown or not scopes:
        raise metadata_error(f"unknown scope: {' '.join(unknown)[:80]}")

    name = meta.get("client_name", "")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100 or not name.isprintable():
        raise metadata_error("client_name is required (1-100 printable characters)")

    jwks = None
    if "jwks_uri" in meta:
        raise metadata_error("jwks_uri is not supported: register the keys with jwks")
    # Keys verify client assertions (private_key_jwt), self-signed client certificates (RFC 8705 §2.2)
    # and signed request objects (RFC 9101 §6.2), which clients of a signed_requests profile must send
    # whatever their authentication method.
    if method in ("private_key_jwt", "self_signed_tls_client_auth") or profile.signed_requests:
        jwks = validate_client_jwks(meta.get("jwks"), metadata_error)
    elif "jwks" in meta:
        raise metadata_error(
            "jwks is only used with private_key_jwt, self_signed_tls_client_auth or signed request objects"
        )
    if method in mtls.TLS_AUTH_METHODS:
        # RFC 8705 §2: only where a client certificate can reach the server (and, for PKI-bound
        # certificates, where the trusted CAs are configured).
        if not core.settings.mtls_enabled:
            raise metadata_error(
                f"{method} needs mutual TLS, which this server does not offer (mtls_port or mtls_base_url)"
            )
        if method == "tls_client_auth" and not core.settings.mtls_ca_file:
            raise metadata_error("tls_client_auth needs the server's trusted CAs (mtls_ca_file)")

    extra: dict[str, Any] = mtls.validate_registration(meta, method, jwks, public=profile.public, error=metadata_error)
    if extra.get(mtls.BOUND_TOKENS) and not core.settings.mtls_enabled:
        raise metadata_error(f"{mtls.BOUND_TOKENS} needs mutual TLS, which this server does not offer")
    if "require_pkce" in meta:
        if not isinstance(meta["require_pkce"], bool):
            raise metadata_error("require_pkce must be a boolean")
        if meta["require_pkce"] is False:
            if not profile.pkce_opt_out or "openid" not in scopes:
                # Without PKCE only the OIDC nonce protects the code (RFC 9700 §2.1.1).
                raise metadata_error("require_pkce = false is only for confidential OpenID Connect clients")
            extra["require_pkce"] = False
    # RFC 9126 §6: authorization requests only via PAR (profiles.par_required); RFC 9449 §5.2: token
    # requests only with a DPoP proof (profiles.dpop_required). Stored only when true.
    for flag in ("require_pushed_authorization_requests", "dpop_bound_access_tokens"):
        if flag in meta:
            if not isinstance(meta[flag], bool):
                raise metadata_error(f"{flag} must be a boolean")
            if meta[flag]:
                extra[flag] = True
    for field in _SIGNED_RESPONSE_FIELDS:
        # JARM §3 and RFC 9701 §6 default to RS256, which FAPI 2.0 SP 5.4.1 forbids: responses are
        # signed with the server's algorithm, the only value accepted here.
        if field in meta:
            if meta[field] != core.settings.signing_alg:
                raise metadata_error(f"{field} must be {core.settings.signing_alg}, the server's signing algorithm")
            extra[field] = meta[field]
    for field in _URL_FIELDS:
        if field in meta:
            value = meta[field]
            parts = urlsplit(value) if isinstance(value, str) else None
            if parts is None or parts.scheme != "https" or not parts.hostname or len(value) > 500:
                raise metadata_error(f"{field} must be an https URL")
            extra[field] = value
    for field in _TEXT_FIELDS:
        if field in meta:
            if not isinstance(meta[field], str) or len(meta[field]) > 200:
                raise metadata_error(f"{field} must be a short string")
            extra[field] = meta[field]
    if "authorization_details_types" in meta:
        # RFC 9396 §10.2: the types this client may use (profiles.authorization_details_types).
        types = _string_list(meta, "authorization_details_types", [])
        unknown = [t for t in types if t not in SUPPORTED_TYPES]
        if unknown:
            raise metadata_error(f"authorization_details_types: unsupported type {unknown[0][:40]}")
        if types:
            extra["authorization_details_types"] = types
    if "contacts" in meta:
        extra["contacts"] = _string_list(meta, "contacts", [])

    origins: list[str] = []
    if profile.cors_at_token_endpoint:
        for uri in redirect_uris:
            p = urlsplit(uri)
            origins.append(f"{p.scheme}://{p.netloc}")

    now = core.clock()
    secret = None
    secret_hash = existing.secret_hash if existing else None
    uses_secret = method in ("client_secret_basic", "client_secret_post")
    if uses_secret and (secret_hash is None):
        secret = new_token(32)
        secret_hash = keyed_hash(core.server_key, secret)
    if not uses_secret:
        secret_hash = None
    client = Client(
        client_id=existing.client_id if existing else new_client_id(),
        profile=profile_name,
        client_name=name.strip(),
        redirect_uris=redirect_uris,
        token_endpoint_auth_method=method,
        grant_types=grant_types,
        scope=" ".join(scopes),
        secret_hash=secret_hash,
        jwks=jwks,
        allowed_origins=origins,
        metadata=extra,
        resource_server=existing.resource_server if existing else False,
        registration_token_hash=existing.registration_token_hash if existing else None,
        created_at=existing.created_at if existing else now,
        updated_at=now,
    )
    return client, secret


def new_client_id() -> str:
    # Server-chosen and unguessable, so a client can never pick an id that collides with a user's
    # `sub` (RFC 9700 §4.15).
    return "c_" + new_token(16)


def client_metadata(core: Core, client: Client) -> dict[str, Any]:
    out: dict[str, Any] = {
        "client_id": client.client_id,
        "client_name": client.client_name,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "grant_types": client.grant_types,
        "response_types": ["code"] if "authorization_code" in client.grant_types else [],
        "scope": client.scope,
        "application_type": get_profile(client.profile).application_type,
        "security_profile": client.profile,
        "client_id_issued_at": client.created_at,
        **client.metadata,
    }
    if client.jwks:
        out["jwks"] = client.jwks
    if get_profile(client.profile).signed_requests:
        out["require_signed_request_object"] = True  # RFC 9101 §10.5
    if client.secret_hash:
        out["client_secret_expires_at"] = 0
    return out


def client_information(core: Core, client: Client, registration_access_token: str) -> dict[str, Any]:
    """RFC 7592 §3: the client information response REQUIRES the management URI and token. Only the
    token's hash is stored, so reads and updates return the token the client presented."""
    return {
        **client_metadata(core, client),
        "registration_access_token": registration_access_token,
        "registration_client_uri": core.url("/register/" + client.client_id),
    }


def _bearer(request: HttpRequest) -> str | None:
    header = request.header("authorization") or ""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _json_body(request: HttpRequest) -> Any:
    ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise metadata_error("the request body must be application/json")
    if len(request.body) > MAX_BODY:
        raise metadata_error("the request body is too large")
    try:
        return strict_json.loads(request.body)
    except strict_json.JsonError as exc:
        raise metadata_error(f"the request body: {exc}") from None


def _error(exc: OAuthError) -> HttpResponse:
    headers = {**NO_STORE, **exc.headers}
    if exc.error == "invalid_token":
        headers["WWW-Authenticate"] = 'Bearer realm="fingrade", error="invalid_token"'
    return HttpResponse(exc.status, headers, json=exc.body())


async def register_endpoint(core: Core, request: HttpRequest) -> HttpResponse:
    """RFC 7591 §3: POST client metadata, protected by an initial access token unless open."""
    try:
        if request.method != "POST":
            raise method_not_allowed("POST")
        if not core.settings.registration_open:
            token = _bearer(request)
            if token is None or not await core.store.registration_token_valid(token_hash(token), core.clock()):
                raise invalid_token("a valid initial access token is required")
        meta = _json_body(request)
        client, secret = build_client(core, meta)
        rat = new_token(32)
        client.registration_token_hash = token_hash(rat)
        await core.store.save_client(client)
        await core.store.audit("client_registered", core.clock(), client_id=client.client_id, ip=request.client_ip)
        body = client_information(core, client, rat)
        if secret:
            body["client_secret"] = secret
        return HttpResponse(201, dict(NO_STORE), json=body)
    except OAuthError as exc:
        return _error(exc)


async def manage_endpoint(core: Core, request: HttpRequest, client_id: str) -> HttpResponse:
    """RFC 7592: read, update and delete a registration with its registration access token."""
    try:
        if request.method not in ("GET", "PUT", "DELETE"):
            raise method_not_allowed("GET, PUT, DELETE")
        token = _bearer(request)
        client = await core.store.get_client(client_id) if token else None
        # §2: unknown client and wrong token look the same (no client enumeration).
        if (
            client is None
            or token is None
            or not client.registration_token_hash
            or not equal(token_hash(token), client.registration_token_hash)
        ):
            raise invalid_token("the registration access token is not valid")
        now = core.clock()
        if request.method == "GET":
            return HttpResponse(200, dict(NO_STORE), json=client_information(core, client, token))
        if request.method == "DELETE":
            await core.store.delete_client(client_id)
            await core.store.audit("client_deleted", now, client_id=client_id, ip=request.client_ip)
            return HttpResponse(204, dict(NO_STORE))
        meta = _json_body(request)
        if not isinstance(meta, dict) or meta.get("client_id") != client_id:
            raise metadata_error("client_id in the body must match the client being updated")  # RFC 7592 §2.2
        if "client_secret" in meta and (
            not client.secret_hash
            or not equal(keyed_hash(core.server_key, str(meta["client_secret"])), client.secret_hash)
        ):
            raise metadata_error("client_secret does not match")
        for field in (
            "registration_access_token",
            "registration_client_uri",
            "client_secret_expires_at",
            "client_id_issued_at",
        ):
            meta.pop(field, None)
        meta.pop("client_id")
        meta.pop("client_secret", None)
        updated, secret = build_client(core, meta, existing=client)
        await core.store.save_client(updated)
        await core.store.audit("client_updated", now, client_id=client_id, ip=request.client_ip)
        body = client_information(core, updated, token)
        if secret:
            body["client_secret"] = secret
        return HttpResponse(200, dict(NO_STORE), json=body)
    except OAuthError as exc:
        return _error(exc)
