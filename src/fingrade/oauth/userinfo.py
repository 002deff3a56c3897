"""UserInfo (OIDC Core §5.3) and the RFC 6750 bearer-token rules of protected resources."""

from __future__ import annotations

from typing import Any

from .context import Core
from .errors import OAuthError, insufficient_scope, invalid_request, invalid_token, method_not_allowed
from .http import HttpRequest, HttpResponse, is_form, parse_params
from .tokens import verify_access_token

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def bearer_challenge(exc: OAuthError) -> str:
    """RFC 6750 §3: WWW-Authenticate with error and description (no error for a missing token, §3.1)."""
    parts = ['Bearer realm="fingrade"']
    if exc.error != "missing_token":
        parts.append(f'error="{exc.error}"')
        if exc.description:
            parts.append(f'error_description="{exc.description}"')
    return ", ".join(parts)


def extract_bearer(request: HttpRequest) -> str:
    """Only the Authorization header (FAPI 2.0 SP 5.3.4; RFC 6750 §2.3 query tokens refused).
    The scheme name is case-insensitive (RFC 9110 §11.1)."""
    if b"access_token=" in request.query:
        raise invalid_request("access tokens in the query string are not accepted")
    if request.body and is_form(request):
        if "access_token" in parse_params(request.body):
            raise invalid_request("send the access token in the Authorization header")
    header = request.header("authorization")
    if not header:
        raise OAuthError("missing_token", "", 401)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise invalid_token("use the Bearer authorization scheme")
    return token


async def authorize_resource(core: Core, request: HttpRequest, scope: str) -> dict[str, Any]:
    token = extract_bearer(request)
    claims = await verify_access_token(core, token)
    if scope not in str(claims.get("scope", "")).split():
        raise insufficient_scope(f"the token lacks the {scope} scope")
    return claims


def resource_error(exc: OAuthError) -> HttpResponse:
    status = 401 if exc.error in ("missing_token", "invalid_token") else exc.status
    headers = {**NO_STORE, "WWW-Authenticate": bearer_challenge(exc)}
    body = exc.body() if exc.error != "missing_token" else {"error": "invalid_token",
                                                            "error_description": "an access token is required"}
    return HttpResponse(status, headers, json=body)


async def userinfo_endpoint(core: Core, request: HttpRequest) -> HttpResponse:
    try:
        if request.method not in ("GET", "POST"):
            raise method_not_allowed("GET, POST")
        claims = await authorize_resource(core, request, "openid")
        user = await core.store.get_user(claims["sub"])
        if user is None or user.disabled:
            raise invalid_token("the user no longer exists")
        scopes = set(str(claims.get("scope", "")).split())
        info: dict[str, Any] = {"sub": user.id}
        if "profile" in scopes:  # OIDC Core §5.4
            info.update(name=user.name, preferred_username=user.username)
        if "email" in scopes and user.email:
            info.update(email=user.email, email_verified=user.email_verified)
        return HttpResponse(200, dict(NO_STORE), json=info)
    except OAuthError as exc:
        if exc.status == 405:
            return HttpResponse(405, exc.headers, json=exc.body())
        return resource_error(exc)
