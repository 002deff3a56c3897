"""The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2) and the code it issues.

Order matters (RFC 6749 §4.1.2.1, RFC 9700 §4.11): until client_id and redirect_uri are known to
belong together, every error goes to an error page, never to a redirect. After that, errors are
redirected to the verified URI, with `iss` (RFC 9207) and `state`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fingrade.oauth import authn_level, authorization_details, claims_request, consent_resources, pkce, sca_policy
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client, Grant, Session
from fingrade.oauth.offline_access import approved_scopes
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.oauth.profiles import authorization_details_types, identity_assured, par_required, pkce_required
from fingrade.oauth.redirect_uri import matches
from fingrade.oauth.response_mode import QUERY, AuthorizationResponse, authorization_response, check_mode, delivery_mode
from fingrade.oauth.scope import parse_scope
from fingrade.protocol.crypto import new_token, token_hash
from fingrade.protocol.errors import OAuthError, invalid_request, invalid_scope
from fingrade.protocol.http import parse_params

CODE_REUSE_WINDOW = 600  # a used code is remembered this long after it expires, to detect replays
MAX_STATE = 2048
MAX_NONCE = 512
_PROMPTS = {"none", "login", "consent", "select_account"}


class PageError(OAuthError):
    """An error that must be shown to the user: the redirect URI is not trusted."""


@dataclass
class RedirectError(Exception):
    error: OAuthError
    redirect_uri: str
    state: str | None
    response_mode: str = QUERY  # how the error travels (response_mode.delivery_mode)
    client_id: str = ""  # the JWT audience when the response mode is a JARM one


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request. Parked inside an interaction (interaction.Interaction) in
    the one-time store: the field names are the stored JSON's."""

    client_id: str
    redirect_uri: str
    scope: list[str]
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompt: list[str] = field(default_factory=list)
    max_age: int | None = None
    login_hint: str | None = None
    ui_locales: str | None = None
    dpop_jkt: str | None = None  # RFC 9449 §10: the code may only be redeemed with this DPoP key
    pushed_key: str | None = None  # the PAR entry this request came from (RFC 9126), consumed with the code
    authorization_details: list[dict[str, Any]] | None = None  # RFC 9396 §2, validated and normalised
    response_mode: str = QUERY  # the validated encoding of the response (response_mode.check_mode)
    consent_id: str | None = None  # a lodged consent (consent_resources.py) named by openbanking_intent_id
    # The authentication the request needs (sca_policy.requested_acr: settings, client, acr_values,
    # an essential acr claim); None in requests parked before strong customer authentication existed.
    acr: str | None = None

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> AuthorizationRequest:
        return cls(**data)


@dataclass(frozen=True)
class PushedRequest:
    """A pushed authorization request (RFC 9126 §2.2), kept in the one-time store under the hash of
    its request_uri's secret until the authorization completes (consume_pushed). `params`: the
    authorization request parameters as pushed, client authentication aside."""

    client_id: str
    params: dict[str, str]
    expires_at: int  # /authorize refuses the request_uri from then on

    def to_record(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "params": self.params, "expires_at": self.expires_at}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> PushedRequest:
        return cls(client_id=data["client_id"], params=data["params"], expires_at=data["expires_at"])


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization code stands for (RFC 6749 §4.1.2), kept in the one-time store under the
    code's hash: what the token request must prove (client, redirect URI, PKCE challenge, DPoP key)
    and what the tokens carry. The field names are the stored JSON's: a code issued before an upgrade
    is redeemed after it."""

    client_id: str
    redirect_uri: str
    scope: str  # space-separated, as granted
    user_id: str
    auth_time: int
    grant_id: str  # the grant (token family) created with the code
    expires_at: int
    nonce: str | None  # OIDC Core §3.1.2.1
    code_challenge: str | None  # RFC 7636 §4.4
    code_challenge_method: str | None
    amr: list[str] | None = None  # OIDC Core §2
    dpop_jkt: str | None = None  # RFC 9449 §10
    authorization_details: list[dict[str, Any]] | None = None  # RFC 9396, as approved
    consent_id: str | None = None  # the lodged consent it authorised (consent_resources.py)
    linked_details_hash: str | None = None  # dynamic linking: the payment a fresh SCA approved

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> CodeGrant:
        return cls(
            client_id=data["client_id"],
            redirect_uri=data["redirect_uri"],
            scope=data["scope"],
            user_id=data["user_id"],
            auth_time=data["auth_time"],
            grant_id=data["grant_id"],
            expires_at=data["expires_at"],
            nonce=data["nonce"],
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            amr=data.get("amr"),
            dpop_jkt=data.get("dpop_jkt"),
            authorization_details=data.get("authorization_details"),
            consent_id=data.get("consent_id"),
            linked_details_hash=data.get("linked_details_hash"),
        )


def _page_error(error: str, desc: str) -> PageError:
    return PageError(error, desc, 400)


PAR_PREFIX = "urn:ietf:params:oauth:request_uri:"  # RFC 9126 §2.2


async def parse_request(core: Core, raw_query: bytes, body: bytes | None = None) -> tuple[AuthorizationRequest, Client]:
    """Validate an authorization request; raises PageError or RedirectError."""
    try:
        params = parse_params(body if body is not None else raw_query)
    except OAuthError as exc:
        raise _page_error("invalid_request", exc.description) from None

    client_id = params.get("client_id")
    if not client_id:
        raise _page_error("invalid_request", "client_id is missing")
    client = await core.store.get_client(client_id)
    if client is None:
        raise _page_error("invalid_client", "the client is not registered")
    pushed_key = None
    if "request_uri" in params:
        # RFC 9126 §4: only the pushed parameters count; anything else on this request is ignored.
        params, pushed_key = await _load_pushed(core, client, params["request_uri"])
    req = replace(validate_params(core, client, params, pushed=pushed_key is not None), pushed_key=pushed_key)
    try:
        req = await consent_resources.attach(core, client, req)
    except OAuthError as exc:
        raise RedirectError(
            exc, req.redirect_uri, req.state, delivery_mode(params.get("response_mode"), client), client.client_id
        ) from None
    return req, client


async def _load_pushed(core: Core, client: Client, request_uri: str) -> tuple[dict[str, str], str]:
    # Errors go to a page: the redirect URI is only known once the pushed request is found.
    if not request_uri.startswith(PAR_PREFIX):
        # Only our own PAR URNs: a URL is never fetched (CVE-2020-10770, SSRF through request_uri).
        raise _page_error("request_uri_not_supported", "only request_uri values from the PAR endpoint are supported")
    key = token_hash(request_uri[len(PAR_PREFIX) :])
    data = await core.onetime.get(OneTimeKind.PAR, key)
    pushed = PushedRequest.from_record(data) if data is not None else None
    # RFC 9126 §2.2/§4: bound to the client that pushed it, and short-lived.
    if pushed is None or pushed.client_id != client.client_id or pushed.expires_at <= core.clock():
        raise _page_error(
            "invalid_request_uri", "the request_uri is unknown, expired, already used or belongs to another client"
        )
    return {**pushed.params, "client_id": client.client_id}, key


def validate_params(core: Core, client: Client, params: dict[str, str], *, pushed: bool) -> AuthorizationRequest:
    """The one validation of authorization request parameters, for the authorization endpoint and
    the PAR endpoint (RFC 9126 §2.1 step 3). Raises PageError or RedirectError."""
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        # Required for every request: exact matching needs something to match (OAuth 2.1 §4.1.1;
        # RFC 9126 usage in FAPI 2.0 SP 5.3.2.2-6).
        raise _page_error("invalid_request", "redirect_uri is missing")
    if not matches(redirect_uri, client.redirect_uris):
        raise _page_error("invalid_request", "redirect_uri is not registered for this client")

    state = params.get("state")
    if state is not None and len(state) > MAX_STATE:
        raise _page_error("invalid_request", "state is too long")  # not echoed: would bloat the redirect

    # From here on errors are redirected, encoded as the request asks where it can (JARM §2.4).
    mode = delivery_mode(params.get("response_mode"), client)
    try:
        if not pushed and par_required(core.settings, client):
            raise invalid_request("this client must use pushed authorization requests")  # RFC 9126 §4
        return _validate(core, client, params, redirect_uri, state)
    except OAuthError as exc:
        raise RedirectError(exc, redirect_uri, state, mode, client.client_id) from None


def _validate(
    core: Core, client: Client, params: dict[str, str], redirect_uri: str, state: str | None
) -> AuthorizationRequest:
    if "request" in params:
        # Request objects are accepted only at the PAR endpoint (request_object.py, FAPI 2.0 Message
        # Signing 5.3.1); on the front channel they are refused (OIDC Core §3.1.2.6).
        raise OAuthError("request_not_supported", "request objects are only accepted at the PAR endpoint")
    response_type = params.get("response_type")
    if response_type is None:
        raise invalid_request("response_type is missing")
    if response_type != "code":
        # Implicit and hybrid flows leak tokens through the front channel (RFC 9700 §2.1.2).
        raise OAuthError("unsupported_response_type", "only response_type=code is supported")
    if "authorization_code" not in client.grant_types:
        raise OAuthError("unauthorized_client", "the client may not use the authorization code grant")
    response_mode = check_mode(params.get("response_mode"), client)

    scope_param = params.get("scope")
    if not scope_param:
        raise invalid_scope("scope is required")
    scope = parse_scope(scope_param)
    unknown = [s for s in scope if s not in core.settings.scopes or s not in client.scopes]
    if unknown:
        raise invalid_scope("scope not allowed for this client: " + " ".join(unknown)[:100])

    challenge = pkce.check_challenge(
        params.get("code_challenge"), params.get("code_challenge_method"), required=pkce_required(client)
    )

    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > MAX_NONCE:
        raise invalid_request("nonce is too long")
    if challenge is None and (nonce is None or "openid" not in scope):
        # A client allowed to skip PKCE must use the OIDC nonce against code injection (RFC 9700 §4.5.3).
        raise invalid_request("without code_challenge, an OpenID Connect request with a nonce is required")

    prompt = params.get("prompt", "").split()
    if any(p not in _PROMPTS for p in prompt) or len(set(prompt)) != len(prompt):
        raise invalid_request("prompt has an unknown or repeated value")
    if "none" in prompt and len(prompt) > 1:
        raise invalid_request("prompt=none cannot be combined with other values")  # OIDC Core §3.1.2.1

    max_age = None
    if "max_age" in params:
        if not re.fullmatch(r"\d{1,9}", params["max_age"]):
            raise invalid_request("max_age must be a non-negative integer")
        max_age = int(params["max_age"])

    dpop_jkt = params.get("dpop_jkt")
    if dpop_jkt is not None and not re.fullmatch(r"[A-Za-z0-9_-]{43}", dpop_jkt):
        raise invalid_request("dpop_jkt must be a base64url SHA-256 JWK thumbprint")  # RFC 9449 §10

    details = None
    if "authorization_details" in params:  # RFC 9396 §2; errors: invalid_authorization_details (§5)
        details = authorization_details.parse(
            params["authorization_details"], authorization_details_types(client), authorization_details.context_of(core)
        )
    # OIDC Core §5.5; UK Open Banking names a lodged consent this way (resolved by consent_resources.attach).
    claims = claims_request.parse(params["claims"]) if "claims" in params else claims_request.ClaimsRequest()
    consent_id = claims.intent_id
    acr_values = params.get("acr_values")
    if acr_values is not None and len(acr_values) > 1000:
        raise invalid_request("acr_values is too long")
    acr = sca_policy.requested_acr(core.settings, client, acr_values, claims.essential_acr)
    if consent_id is not None and details is not None:
        raise invalid_request(
            "authorization_details cannot be combined with openbanking_intent_id: the consent says what is asked"
        )

    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        nonce=nonce,
        code_challenge=challenge[0] if challenge else None,
        code_challenge_method=challenge[1] if challenge else None,
        prompt=prompt,
        max_age=max_age,
        login_hint=params.get("login_hint"),
        ui_locales=params.get("ui_locales"),
        dpop_jkt=dpop_jkt,
        authorization_details=details,
        response_mode=response_mode,
        consent_id=consent_id,
        acr=acr,
    )


async def error_response(core: Core, err: RedirectError) -> AuthorizationResponse:
    """An error redirected to the verified URI (RFC 6749 §4.1.2.1), with `iss` (RFC 9207 §2), in the
    request's response mode (JARM §2.4)."""
    return await authorization_response(
        core,
        err.client_id,
        err.redirect_uri,
        err.response_mode,
        {"error": err.error.error, "error_description": err.error.description or None, "state": err.state},
    )


async def request_error(core: Core, req: AuthorizationRequest, error: OAuthError) -> AuthorizationResponse:
    """An error for a validated request (login_required, access_denied, ...)."""
    return await error_response(
        core, RedirectError(error, req.redirect_uri, req.state, req.response_mode, req.client_id)
    )


def login_needed(req: AuthorizationRequest, session: Session | None, now: int) -> bool:
    if session is None:
        return True
    # OIDC Core §3.1.2.1: max_age bounds how long ago the user actively authenticated, and
    # "max_age=0 is equivalent to prompt=login" (auth_time has whole seconds: 0 elapsed is not > 0).
    return req.max_age is not None and (req.max_age == 0 or now - session.auth_time > req.max_age)


async def consent_needed(core: Core, req: AuthorizationRequest, user_id: str) -> bool:
    client = await core.store.get_client(req.client_id)
    if client is None or not identity_assured(client, req.redirect_uri):
        # RFC 8252 §8.6: "processed as if no previous request had been approved" — the user confirms
        # each time (prompt=none: consent_required), since another app may be using this client_id.
        return True
    if req.authorization_details:
        # A payment or an account access is approved each time, as shown (RFC 9396 §3: the user is
        # asked about these details; FAPI: informed consent). A remembered scope consent does not cover it.
        return True
    granted = await core.store.get_consent(user_id, req.client_id)
    return not set(approved_scopes(client, req.scope, req.authorization_details)) <= granted


def _used_up() -> PageError:
    return _page_error(
        "invalid_request_uri",
        "this sign-in request was already completed; return to the application and start again",
    )


async def consume_pushed(core: Core, req: AuthorizationRequest) -> None:
    """RFC 9126 §4/§7.3, FAPI 2.0 SP note 3: a request_uri is used up when the authorization
    completes, not when the page is first loaded (reloads before sign-in must work). The first
    completion takes it; any other interaction started from it then fails."""
    if req.pushed_key is not None and await core.onetime.take(OneTimeKind.PAR, req.pushed_key) is None:
        raise _used_up()


@dataclass(frozen=True)
class LinkedApproval:
    """A payment approved with dynamic linking (PSD2 RTS Art. 5): the hash of the approved details
    (finance/dynamic_linking.py) and the factors whose fresh authentication was bound to it."""

    details_hash: str
    factors: list[str]


async def issue_code(
    core: Core,
    req: AuthorizationRequest,
    user_id: str,
    auth_time: int,
    amr: list[str],
    linked: LinkedApproval | None = None,
) -> AuthorizationResponse:
    """Create the grant (the token family) and a single-use code bound to everything the token
    request must prove; return the authorization response carrying it."""
    now = core.clock()
    grant_id = new_token(16)
    scope = " ".join(req.scope)
    code = new_token(32)
    issued = CodeGrant(
        client_id=req.client_id,
        redirect_uri=req.redirect_uri,
        scope=scope,
        user_id=user_id,
        auth_time=auth_time,
        grant_id=grant_id,
        expires_at=now + core.settings.code_ttl,
        nonce=req.nonce,
        code_challenge=req.code_challenge,
        code_challenge_method=req.code_challenge_method,
        amr=amr,
        dpop_jkt=req.dpop_jkt,
        authorization_details=req.authorization_details,
        consent_id=req.consent_id,
        linked_details_hash=linked.details_hash if linked else None,
    )
    code_key, ttl = token_hash(code), core.settings.code_ttl + CODE_REUSE_WINDOW
    if req.pushed_key is None:
        await core.onetime.put(OneTimeKind.CODE, code_key, issued.to_record(), ttl=ttl)
    elif not await core.onetime.exchange(
        OneTimeKind.PAR, req.pushed_key, OneTimeKind.CODE, code_key, issued.to_record(), ttl
    ):
        # RFC 9126 §4/§7.3: the pushed request is used up by the code, in one step, so of two
        # completions of one request_uri only one yields a code (consume_pushed explains when).
        raise _used_up()
    # The code exists before its grant: until the grant is written (a moment later, before the code
    # is sent), or if writing it fails, the token endpoint finds no live grant and issues nothing.
    grant = Grant(
        id=grant_id,
        client_id=req.client_id,
        user_id=user_id,
        scope=scope,
        auth_time=auth_time,
        created_at=now,
        authorization_details=req.authorization_details,
        acr=authn_level.acr_for(amr),
        amr=amr,
        linked_details_hash=linked.details_hash if linked else None,
        linked_factors=linked.factors if linked else None,
    )
    if req.consent_id is None:
        await core.store.create_grant(grant)
    elif not await core.store.authorise_consent_resource(
        req.consent_id, grant, now - core.settings.consent_resource_ttl
    ):
        # Authorised (or deleted) by another request meanwhile: one consent, one authorisation.
        await core.onetime.delete(OneTimeKind.CODE, code_key)
        return await request_error(core, req, invalid_request("the consent is no longer awaiting authorisation"))
    return await authorization_response(
        core, req.client_id, req.redirect_uri, req.response_mode, {"code": code, "state": req.state}
    )
