"""The token endpoint (RFC 6749 §3.2) and its grants: authorization_code (+PKCE), refresh_token,
client_credentials. Every response carries Cache-Control: no-store (RFC 6749 §5.1)."""

from __future__ import annotations

import logging
from typing import Any

from fingrade.oauth import authn_level, authorization_details, pkce, sca_policy, token_retry
from fingrade.oauth.authorize import CodeGrant
from fingrade.oauth.claims_request import INTENT_CLAIM
from fingrade.oauth.client_auth import authenticate_with_proof
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client, Grant, RefreshToken
from fingrade.oauth.offline_access import stays_connected
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.oauth.profiles import (
    authorization_details_types,
    binds_certificate,
    dpop_required,
    get_profile,
    tokens_must_be_bound,
)
from fingrade.oauth.scope import narrow
from fingrade.oauth.token_formats import mint_access_token, mint_id_token, new_refresh_token
from fingrade.protocol import dpop
from fingrade.protocol.cert_binding import thumbprint
from fingrade.protocol.crypto import token_hash
from fingrade.protocol.errors import (
    OAuthError,
    invalid_grant,
    invalid_request,
    method_not_allowed,
    unauthorized_client,
    unsupported_grant_type,
)
from fingrade.protocol.http import NO_STORE, HttpRequest, HttpResponse, form_params

log = logging.getLogger("fingrade.token")

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


async def token_endpoint(core: Core, request: HttpRequest) -> tuple[HttpResponse, Client | None]:
    """Returns the response and the authenticated client (for CORS decisions in the web layer)."""
    client: Client | None = None
    try:
        if request.method != "POST":
            raise method_not_allowed("POST")
        params = form_params(request)
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise invalid_request("grant_type is missing")
        # RFC 9449 §5: a valid proof makes the tokens DPoP-bound.
        client, method, jkt = await authenticate_with_proof(core, request, params, "/token")
        if grant_type not in GRANT_TYPES:
            # The resource owner password grant is refused by design (RFC 9700 §2.4).
            raise unsupported_grant_type()
        if grant_type not in client.grant_types or grant_type not in get_profile(client.profile).grant_types:
            raise unauthorized_client(f"this client may not use the {grant_type} grant")
        if jkt is None and dpop_required(client):
            raise dpop.invalid_dpop_proof("this client's token requests need a DPoP proof")  # RFC 9449 §5.2
        bind = _binding(client, method, request, jkt)
        if tokens_must_be_bound(client) and bind is None:
            # FAPI 2.0 SP 5.3.2.1-4: no bearer tokens for this client (nor for one that registered
            # tls_client_certificate_bound_access_tokens, RFC 8705 §3.4).
            raise invalid_request(
                "this client's tokens must be sender-constrained: send a DPoP proof or use mutual TLS"
            )
        x5t = thumbprint(request.client_cert) if request.client_cert is not None else None
        if grant_type == "authorization_code":
            body = await _authorization_code(core, client, params, jkt, bind, x5t)
        elif grant_type == "refresh_token":
            body = await _refresh_token(core, client, params, jkt, bind, x5t)
        else:
            body = await _client_credentials(core, client, params, bind)
        return HttpResponse(200, {**NO_STORE, **dpop.nonce_headers(core)}, json=body), client
    except OAuthError as exc:
        if exc.status >= 500 or exc.error in ("invalid_client", "invalid_grant"):
            log.info("token request refused: %s", exc)
        return HttpResponse(exc.status, {**NO_STORE, **exc.headers}, json=exc.body()), client


def _binding(client: Client, method: str, request: HttpRequest, jkt: str | None) -> dict[str, Any] | None:
    """The `cnf` claim of the access tokens (RFC 7800 §3.1), or None for a bearer token.

    A DPoP proof wins: the client asked for DPoP binding on this request (RFC 9449 §6.1). Otherwise a
    client certificate binds when profiles.binds_certificate says so (RFC 8705 §3.1); a certificate
    that binds nothing does not count as sender-constraining."""
    if jkt is not None:
        return {"jkt": jkt}
    if request.client_cert is not None and binds_certificate(client, method):
        return {"x5t#S256": thumbprint(request.client_cert)}
    return None


def _binding_kind(bind: dict[str, Any] | None) -> str | None:
    if bind is None:
        return None
    return "dpop" if "jkt" in bind else "mtls"


def _require_binding(kind: str | None, bind: dict[str, Any] | None) -> None:
    """A grant whose tokens were sender-constrained stays so, the same way, on every refresh: a
    refresh without the proof would turn the grant into a bearer grant (RFC 9449 §5; RFC 8705 §3;
    FAPI 2.0 SP 5.3.2.1-4). A confidential client may change its DPoP key or certificate: its
    refresh token is bound to its authentication, not to that key (RFC 9449 §5)."""
    if kind is None or kind == _binding_kind(bind):
        return
    if kind == "dpop":
        raise dpop.invalid_dpop_proof("this grant's tokens are DPoP-bound: a DPoP proof is required")
    raise invalid_request(
        "this grant's tokens are bound to a client certificate: refresh over mutual TLS with the certificate"
    )


def _require_key(bound: str | None, jkt: str | None, what: str) -> None:
    """RFC 9449 §5 and §10: a grant bound to a DPoP key is only usable with a proof by that key."""
    if bound is None:
        return
    if jkt is None:
        raise dpop.invalid_dpop_proof(f"a DPoP proof is required for this {what}")
    if jkt != bound:
        raise invalid_grant(f"the DPoP proof key does not match the key this {what} is bound to")


async def _authorization_code(
    core: Core, client: Client, params: dict[str, str], jkt: str | None, bind: dict[str, Any] | None, x5t: str | None
) -> dict[str, Any]:
    code = params.get("code")
    if code is None:
        raise invalid_request("code is missing")
    now = core.clock()
    code_hash = token_hash(code)
    found = await core.onetime.consume(OneTimeKind.CODE, code_hash)
    if found is None:
        raise invalid_grant("the authorization code is invalid or expired")
    record, first_use = found
    issued = CodeGrant.from_record(record)
    retry = token_retry.attempt(core, "code", code_hash, client_id=client.client_id, jkt=jkt, x5t=x5t, params=params)
    if not first_use:
        # The same client with the same verifier and key, within the grace period: its answer was lost.
        kept = await token_retry.replay(core, retry, wait=True)
        if kept is not None:
            if not await core.store.grant_live(issued.grant_id):
                raise invalid_grant("the authorization code has already been used")
            return kept
        # RFC 6749 §4.1.2 / RFC 9700 §4.5: a code used twice is stolen; revoke what it produced.
        await core.store.revoke_grant(issued.grant_id, now)
        await core.store.audit(
            "code_reuse",
            now,
            client_id=client.client_id,
            user_id=issued.user_id,
            detail={"grant_id": issued.grant_id},
        )
        raise invalid_grant("the authorization code has already been used")
    await token_retry.begin(core, retry)
    # From here on the code is spent whatever happens: a failed attempt burns it (no brute force).
    if issued.expires_at < now:
        raise invalid_grant("the authorization code has expired")
    if issued.client_id != client.client_id:
        await core.store.revoke_grant(issued.grant_id, now)
        raise invalid_grant("the authorization code was issued to another client")
    if params.get("redirect_uri") != issued.redirect_uri:
        raise invalid_grant("redirect_uri does not match the authorization request")  # RFC 6749 §4.1.3
    pkce.verify(params.get("code_verifier"), issued.code_challenge, issued.code_challenge_method)
    _require_key(issued.dpop_jkt, jkt, "authorization code")  # RFC 9449 §10
    # The grant was created with the code; revoked since (the customer revoked the app, or was
    # disabled, within the code's 60 s), it yields no tokens: fail closed.
    if not await core.store.grant_live(issued.grant_id):
        raise invalid_grant("the authorization is no longer valid")
    grant = Grant(
        id=issued.grant_id,
        client_id=client.client_id,
        user_id=issued.user_id,
        scope=issued.scope,
        auth_time=issued.auth_time,
        created_at=now,
        authorization_details=issued.authorization_details,
        acr=authn_level.acr_for(issued.amr or [authn_level.PWD]),
        amr=issued.amr,
        linked_details_hash=issued.linked_details_hash,
    )
    # UK Open Banking: the ID token names the consent the customer authorised.
    id_claims = {INTENT_CLAIM: issued.consent_id} if issued.consent_id else None
    body = await _issue(
        core,
        client,
        grant,
        nonce=issued.nonce,
        with_refresh=True,
        jkt=jkt,
        bind=bind,
        details=_narrow_details(core, client, params, grant),
        id_claims=id_claims,
    )
    await token_retry.keep(core, retry, body)
    return body


def _narrow_details(core: Core, client: Client, params: dict[str, str], grant: Grant) -> list[dict[str, Any]] | None:
    """RFC 9396 §6, §6.1: a token request may name part of the authorized details, never more;
    without the parameter the tokens carry all of them. The grant keeps what was approved."""
    if not grant.authorization_details:
        if "authorization_details" in params:
            raise authorization_details.error("no authorization_details were authorized in this grant")
        return None
    current = authorization_details.unexpired(grant.authorization_details, core.clock())
    if not current:
        # Everything this grant was for has expired (an account access past its expires_at).
        raise invalid_grant("the authorization has expired")
    if "authorization_details" not in params:
        return current
    return authorization_details.narrow(
        params["authorization_details"],
        current,
        authorization_details_types(client),
        authorization_details.context_of(core, defaults=False),
    )


async def _issue(
    core: Core,
    client: Client,
    grant: Grant,
    *,
    nonce: str | None,
    with_refresh: bool,
    jkt: str | None,
    bind: dict[str, Any] | None,
    details: list[dict[str, Any]] | None,
    scope: str | None = None,
    refresh_token: str | None = None,
    id_claims: dict[str, Any] | None = None,
) -> dict[str, Any]:
    scope = scope or grant.scope
    assert grant.user_id is not None
    extra = _cnf(bind) or {}
    # RFC 9068 §2.2.3.1: how the customer authenticated, for the resource server's step-up
    # decisions (RFC 9470); a payment's dynamic linking (the bank checks it before executing).
    acr, amr = grant.acr or authn_level.ACR_PASSWORD, grant.amr or [authn_level.PWD]
    extra.update(acr=acr, amr=amr)
    if grant.linked_details_hash:
        extra["linked_details_hash"] = grant.linked_details_hash
    if details:
        extra["authorization_details"] = details  # RFC 9396 §9.1
    access_token, claims = await mint_access_token(
        core,
        sub=grant.user_id,
        client_id=client.client_id,
        scope=scope,
        grant_id=grant.id,
        auth_time=grant.auth_time,
        extra=extra,
    )
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": _token_type(bind),
        "expires_in": core.settings.access_token_ttl,
        "scope": scope,
    }
    if details:
        body["authorization_details"] = details  # RFC 9396 §7: what the access token grants
    if "openid" in scope.split():
        body["id_token"] = await mint_id_token(
            core,
            sub=grant.user_id,
            client_id=client.client_id,
            nonce=nonce,
            auth_time=grant.auth_time or claims["iat"],
            access_token=access_token,
            acr=acr,
            amr=amr,
            claims=id_claims,
        )
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    elif with_refresh and stays_connected(client, grant.scope.split(), grant.authorization_details):
        rt = new_refresh_token()
        await core.store.save_refresh_token(
            RefreshToken(
                token_hash=token_hash(rt),
                grant_id=grant.id,
                client_id=client.client_id,
                user_id=grant.user_id,
                scope=grant.scope,
                created_at=claims["iat"],
                expires_at=claims["iat"] + core.settings.refresh_token_ttl,
                # RFC 9449 §5: a public client's refresh token is bound to its DPoP key (a confidential
                # client's is bound by its client authentication).
                dpop_jkt=jkt if get_profile(client.profile).public else None,
                binding=_binding_kind(bind),
            )
        )
        body["refresh_token"] = rt
    return body


def _cnf(bind: dict[str, Any] | None) -> dict[str, Any] | None:
    return {"cnf": bind} if bind is not None else None  # RFC 9449 §6.1, RFC 8705 §3.1


def _token_type(bind: dict[str, Any] | None) -> str:
    # RFC 9449 §5: DPoP-bound tokens are of type DPoP; certificate-bound ones stay Bearer (RFC 8705 §3).
    return "DPoP" if bind is not None and "jkt" in bind else "Bearer"


async def _refresh_token(
    core: Core, client: Client, params: dict[str, str], jkt: str | None, bind: dict[str, Any] | None, x5t: str | None
) -> dict[str, Any]:
    presented = params.get("refresh_token")
    if presented is None:
        raise invalid_request("refresh_token is missing")
    now = core.clock()
    found = await core.store.get_refresh_token(token_hash(presented))
    if found is None:
        raise invalid_grant("the refresh token is invalid")
    rt, grant = found
    if grant.revoked_at is not None or rt.expires_at <= now:
        raise invalid_grant("the refresh token has been revoked or has expired")
    retry = token_retry.attempt(
        core, "refresh", rt.token_hash, client_id=client.client_id, jkt=jkt, x5t=x5t, params=params
    )
    if rt.used_at is not None:
        # Presented by anyone (another client included) after rotation: a retry whose answer was lost, or theft.
        return await _replayed_refresh(core, client, rt, grant, retry, wait=now - rt.used_at <= 2)
    if rt.client_id != client.client_id:
        raise invalid_grant("the refresh token was issued to another client")
    _require_key(rt.dpop_jkt, jkt, "refresh token")
    _require_binding(rt.binding, bind)
    if sca_policy.reauthentication_due(core.settings, grant, now):
        # PSD2 RTS Art. 10: long-lived access is renewed by a fresh strong authentication.
        raise invalid_grant("the customer must authenticate again to keep this access")
    scope = narrow(params.get("scope"), rt.scope.split(), "the scope of the grant")
    details = _narrow_details(core, client, params, grant)  # RFC 9396 §6: never wider than the grant
    if get_profile(client.profile).rotate_refresh_tokens:
        new = new_refresh_token()
        replacement = RefreshToken(
            token_hash=token_hash(new),
            grant_id=grant.id,
            client_id=client.client_id,
            user_id=rt.user_id,
            scope=rt.scope,
            created_at=now,
            expires_at=rt.expires_at,
            dpop_jkt=rt.dpop_jkt,
            binding=rt.binding,
        )
        if not await core.store.rotate_refresh_token(rt.token_hash, replacement, now):
            # Lost the compare-and-set to a concurrent refresh with the same token: the same client's
            # retry (it gets the winner's answer) or a replay.
            return await _replayed_refresh(core, client, rt, grant, retry, wait=True, concurrent=True)
        await token_retry.begin(core, retry)
        body = await _issue(
            core,
            client,
            grant,
            nonce=None,
            with_refresh=False,
            jkt=jkt,
            bind=bind,
            scope=scope,
            refresh_token=new,
            details=details,
        )
        await token_retry.keep(core, retry, body)
        return body
    return await _issue(
        core,
        client,
        grant,
        nonce=None,
        with_refresh=False,
        jkt=jkt,
        bind=bind,
        scope=scope,
        refresh_token=presented,
        details=details,
    )


async def _replayed_refresh(
    core: Core,
    client: Client,
    rt: RefreshToken,
    grant: Grant,
    retry: token_retry.Attempt,
    *,
    wait: bool,
    concurrent: bool = False,
) -> dict[str, Any]:
    """A rotated-away refresh token presented again. Only a DPoP-bound one can be a retry (an unbound
    one is its own only proof, so a thief's copy would pass as one)."""
    if rt.dpop_jkt is not None:
        kept = await token_retry.replay(core, retry, wait=wait)
        if kept is not None:
            if await core.store.grant_live(grant.id):
                return kept
            raise invalid_grant("the refresh token has been revoked or has expired")
    # RFC 9700 §4.14.2: a rotated-away token presented again means one copy is stolen; we cannot
    # tell which, so the whole family dies.
    now = core.clock()
    await core.store.revoke_grant(grant.id, now)
    detail: dict[str, Any] = {"grant_id": grant.id, "concurrent": True} if concurrent else {"grant_id": grant.id}
    await core.store.audit("refresh_reuse", now, client_id=client.client_id, user_id=grant.user_id, detail=detail)
    raise invalid_grant("the refresh token has already been used")


async def _client_credentials(
    core: Core, client: Client, params: dict[str, str], bind: dict[str, Any] | None
) -> dict[str, Any]:
    if "authorization_details" in params:
        # RFC 9396 §6 allows it, but our two types are a customer's accounts and payments: only the
        # customer can approve them, and client_credentials has no customer. Refused, not ignored.
        raise authorization_details.error(
            "authorization_details need the customer's approval: use the authorization code flow"
        )
    allowed = [s for s in client.scope.split() if s in core.settings.scopes and s not in ("openid", "offline_access")]
    scope = narrow(params.get("scope"), allowed, "what this client may ask for")
    # No grant row: a client_credentials token stands alone and is revoked by its jti.
    access_token, _claims = await mint_access_token(
        core, sub=client.client_id, client_id=client.client_id, scope=scope, grant_id=None, extra=_cnf(bind)
    )
    return {
        "access_token": access_token,
        "token_type": _token_type(bind),
        "expires_in": core.settings.access_token_ttl,
        "scope": scope,
    }
