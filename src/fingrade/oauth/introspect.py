"""Token introspection (RFC 7662) and revocation (RFC 7009)."""

from __future__ import annotations

from typing import Any

from fingrade.oauth.client_auth import authenticate_client
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client
from fingrade.oauth.profiles import get_profile
from fingrade.oauth.token_formats import sign_server_jwt, verify_access_token
from fingrade.protocol.crypto import token_hash
from fingrade.protocol.errors import OAuthError, invalid_client, invalid_request, method_not_allowed
from fingrade.protocol.http import NO_STORE, HttpRequest, HttpResponse, form_params

INACTIVE = {"active": False}
JWT_RESPONSE = "application/token-introspection+jwt"  # RFC 9701 §4


def wants_jwt(request: HttpRequest) -> bool:
    """RFC 9701 §4: the caller asks for a signed response with Accept (a media range of q=0 refuses it)."""
    for item in (request.header("accept") or "").split(","):
        media, *params = [part.strip().lower() for part in item.split(";")]
        if media == JWT_RESPONSE:
            for param in params:
                if param.replace(" ", "").startswith("q="):
                    try:
                        return float(param.replace(" ", "")[2:]) > 0
                    except ValueError:
                        return False
            return True
    return False


async def signed_response(core: Core, client: Client, body: dict[str, Any]) -> HttpResponse:
    """RFC 9701 §5: a JWT (typ token-introspection+jwt) signed with the server's key, addressed to the
    caller, carrying the RFC 7662 response in `token_introspection` ({"active": false} when inactive)."""
    token = await sign_server_jwt(
        core,
        "token-introspection+jwt",
        {"iss": core.issuer, "aud": client.client_id, "iat": core.clock(), "token_introspection": body},
    )
    return HttpResponse(200, dict(NO_STORE), body=token.encode(), content_type=JWT_RESPONSE)


async def _authenticated(core: Core, request: HttpRequest) -> tuple[Client, dict[str, str]]:
    if request.method != "POST":
        raise method_not_allowed("POST")
    params = form_params(request)
    client, _ = await authenticate_client(core, request, params)
    if "token" not in params:
        raise invalid_request("token is missing")
    return client, params


async def _describe(core: Core, token: str, hint: str | None) -> tuple[dict[str, Any], str] | None:
    """Find out what `token` is; returns (introspection body, kind) for an active token."""
    kinds = ("refresh_token", "access_token") if hint == "refresh_token" else ("access_token", "refresh_token")
    for kind in kinds:
        if kind == "access_token" and token.count(".") == 2:
            try:
                claims = await verify_access_token(core, token)
            except OAuthError:
                continue
            # RFC 9449 §6.2: a DPoP-bound token shows its cnf and token_type DPoP; RFC 8705 §3.2: a
            # certificate-bound one shows its cnf (x5t#S256) and stays a Bearer token; RFC 9396 §9.2 its
            # authorization_details.
            dpop_bound = isinstance(claims.get("cnf"), dict) and "jkt" in claims["cnf"]
            body = {
                "active": True,
                "token_type": "DPoP" if dpop_bound else "Bearer",
                **{
                    k: claims[k]
                    for k in (
                        "scope",
                        "client_id",
                        "sub",
                        "aud",
                        "iss",
                        "exp",
                        "iat",
                        "jti",
                        "auth_time",
                        "acr",
                        "amr",
                        "linked_details_hash",
                        "cnf",
                        "authorization_details",
                    )
                    if k in claims
                },
            }
            return body, kind
        if kind == "refresh_token":
            found = await core.store.get_refresh_token(token_hash(token))
            if found is None:
                continue
            rt, grant = found
            if rt.used_at is not None or grant.revoked_at is not None or rt.expires_at <= core.clock():
                return None
            body = {
                "active": True,
                "token_type": "refresh_token",
                "scope": rt.scope,
                "client_id": rt.client_id,
                "sub": rt.user_id,
                "iss": core.issuer,
                "exp": rt.expires_at,
                "iat": rt.created_at,
            }
            if grant.authorization_details:
                body["authorization_details"] = grant.authorization_details  # RFC 9396 §9.2
            return body, kind
    return None


async def introspection_endpoint(core: Core, request: HttpRequest) -> HttpResponse:
    try:
        client, params = await _authenticated(core, request)
        # RFC 7662 §2.1/§4: callers must be authorised; public clients cannot be, so they are refused.
        if get_profile(client.profile).public:
            raise invalid_client("public clients may not introspect tokens")
        found = await _describe(core, params["token"], params.get("token_type_hint"))
        body: dict[str, Any] = INACTIVE
        if found is not None:
            info, _kind = found
            # A client sees its own tokens; resource servers see all. Others learn nothing (§2.2).
            if info.get("client_id") == client.client_id or client.resource_server:
                body = info
        if wants_jwt(request):
            return await signed_response(core, client, body)  # errors above stay JSON (RFC 9701 §5)
        return HttpResponse(200, dict(NO_STORE), json=body)
    except OAuthError as exc:
        return HttpResponse(exc.status, {**NO_STORE, **exc.headers}, json=exc.body())


async def revocation_endpoint(core: Core, request: HttpRequest) -> HttpResponse:
    try:
        client, params = await _authenticated(core, request)
        hint = params.get("token_type_hint")
        if hint is not None and hint not in ("access_token", "refresh_token"):
            raise OAuthError("unsupported_token_type", "token_type_hint must be access_token or refresh_token")
        token = params["token"]
        now = core.clock()
        found = await _describe(core, token, hint)
        if found is not None:
            info, kind = found
            if info.get("client_id") == client.client_id:  # RFC 7009 §2.1: only the client's own tokens
                if kind == "refresh_token":
                    # §2.1: revoking a refresh token also revokes the access tokens of its grant.
                    rt_grant = await core.store.get_refresh_token(token_hash(token))
                    if rt_grant is not None:
                        await core.store.revoke_grant(rt_grant[1].id, now)
                else:
                    await core.store.revoke_access_token(info["jti"], int(info["exp"]))
                await core.store.audit(
                    "token_revoked", now, client_id=client.client_id, user_id=info.get("sub"), detail={"kind": kind}
                )
        # §2.2: 200 whether or not the token was valid.
        return HttpResponse(200, dict(NO_STORE), json={})
    except OAuthError as exc:
        return HttpResponse(exc.status, {**NO_STORE, **exc.headers}, json=exc.body())
