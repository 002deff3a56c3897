"""UserInfo (OIDC Core §5.3): a protected resource of the authorization server itself, under the
resource-server token rules of fingrade.protocol.resource."""

from __future__ import annotations

from typing import Any

from fingrade.oauth.context import Core
from fingrade.oauth.token_formats import verify_access_token
from fingrade.protocol import dpop
from fingrade.protocol.errors import OAuthError, invalid_token, method_not_allowed
from fingrade.protocol.http import NO_STORE, HttpRequest, HttpResponse
from fingrade.protocol.resource import authorize_resource, resource_error


async def userinfo_endpoint(core: Core, request: HttpRequest) -> HttpResponse:
    try:
        if request.method not in ("GET", "POST"):
            raise method_not_allowed("GET, POST")

        async def verify(token: str) -> dict[str, Any]:
            return await verify_access_token(core, token)

        claims = await authorize_resource(core, request, "openid", core.url("/userinfo"), verify=verify)
        user = await core.store.get_user(claims["sub"])
        if user is None or user.disabled:
            raise invalid_token("the user no longer exists")
        scopes = set(str(claims.get("scope", "")).split())
        info: dict[str, Any] = {"sub": user.id}
        if "profile" in scopes:  # OIDC Core §5.4
            info.update(name=user.name, preferred_username=user.username)
        if "email" in scopes and user.email:
            info.update(email=user.email, email_verified=user.email_verified)
        return HttpResponse(200, {**NO_STORE, **dpop.nonce_headers(core)}, json=info)
    except OAuthError as exc:
        if exc.status == 405:
            return HttpResponse(405, exc.headers, json=exc.body())
        return resource_error(exc)
