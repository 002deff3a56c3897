"""The authorization server's back-channel and discovery endpoints: metadata (RFC 8414, OpenID
Connect Discovery), JWKS, token, PAR, userinfo, introspection, revocation, dynamic registration and
the consent resources. Each hands the request to its core endpoint (oauth/) as an HttpRequest and
returns what that decides."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fingrade.oauth.consent_resources import consent_resource_endpoint
from fingrade.oauth.introspect import introspection_endpoint, revocation_endpoint
from fingrade.oauth.par import par_endpoint
from fingrade.oauth.registration import manage_endpoint, register_endpoint
from fingrade.oauth.token_endpoint import token_endpoint
from fingrade.oauth.userinfo import userinfo_endpoint
from fingrade.protocol.asgi import BodyTooLarge, json_error, to_core, to_starlette
from fingrade.web import cors
from fingrade.web import request_context as ctx

# -- discovery --------------------------------------------------------------------------------


async def metadata(request: Request) -> Response:
    """The metadata document, serialised once at start (app.state.metadata_json)."""
    return Response(
        request.app.state.metadata_json,
        headers={**cors.ANY_ORIGIN, "Cache-Control": "public, max-age=300"},
        media_type="application/json",
    )


async def jwks(request: Request) -> Response:
    view = await ctx.core(request).keys.view()
    return Response(
        orjson.dumps({"keys": view.published}),
        media_type="application/jwk-set+json",
        headers={**cors.ANY_ORIGIN, "Cache-Control": "public, max-age=60"},
    )


# -- back-channel endpoints -------------------------------------------------------------------
# The common case of token, PAR, introspection, revocation and userinfo is answered in front of these
# routes by lean_path.py, with the same core endpoints: a change here is a change there too.


async def token(request: Request) -> Response:
    core = ctx.core(request)
    origin = request.headers.get("origin")
    if request.method == "OPTIONS":
        return await cors.token_preflight(core, origin)
    try:
        creq = await to_core(request, ctx.trusted_proxies(request), cert_header=ctx.cert_header(request))
    except BodyTooLarge as exc:
        return json_error(exc)
    resp, client = await token_endpoint(core, creq)
    await cors.token_answer(core, origin, client, resp)
    return to_starlette(resp)


def endpoint(handler: Callable[..., Awaitable[Any]], path_param: str | None = None) -> Any:
    """A route for a core endpoint: the request as HttpRequest; with `path_param`, that path
    parameter too (None on a route without it)."""

    async def route(request: Request) -> Response:
        try:
            creq = await to_core(request, ctx.trusted_proxies(request), cert_header=ctx.cert_header(request))
        except BodyTooLarge as exc:
            return json_error(exc)
        if path_param is None:
            return to_starlette(await handler(ctx.core(request), creq))
        return to_starlette(await handler(ctx.core(request), creq, request.path_params.get(path_param)))

    return route


par = endpoint(par_endpoint)  # RFC 9126
userinfo = endpoint(userinfo_endpoint)  # OpenID Connect Core §5.3
introspect = endpoint(introspection_endpoint)  # RFC 7662
revoke = endpoint(revocation_endpoint)  # RFC 7009
register = endpoint(register_endpoint)  # RFC 7591
manage_client = endpoint(manage_endpoint, "client_id")  # RFC 7592
consent_resources = endpoint(consent_resource_endpoint, "consent_id")  # with or without the id
