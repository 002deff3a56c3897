"""Cross-origin access (CORS) for browser apps.

Discovery, JWKS and the OpenAPI document are public: any origin. The token endpoint answers only
origins that browser-app (`spa` profile) clients registered (RFC 9700 §2.6). The authorization
endpoint and the pages never send CORS headers (FAPI 2.0 Security Profile 5.2.3-3).
"""

from __future__ import annotations

from starlette.responses import Response

from fingrade.oauth.context import Core
from fingrade.oauth.models import Client
from fingrade.oauth.profiles import get_profile
from fingrade.protocol.http import HttpResponse

ANY_ORIGIN = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT_HEADERS = "Authorization, Content-Type, DPoP"


def allow(headers: dict[str, str], origin: str) -> None:
    headers["Access-Control-Allow-Origin"] = origin
    headers["Vary"] = "Origin"
    # RFC 9449 §8: a browser app must be able to read the nonce it is asked to use.
    headers["Access-Control-Expose-Headers"] = "DPoP-Nonce, WWW-Authenticate"


async def token_preflight(core: Core, origin: str | None) -> Response:
    """The answer to OPTIONS /token: allowed only for origins registered by browser-app clients."""
    headers = {"Vary": "Origin"}
    if origin and await core.store.origin_registered(origin):
        allow(headers, origin)
        headers.update(
            {
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": PREFLIGHT_HEADERS,
                "Access-Control-Max-Age": "600",
            }
        )
    return Response(status_code=204, headers=headers)


async def token_answer(core: Core, origin: str | None, client: Client | None, resp: HttpResponse) -> None:
    """CORS headers on a token response: for the client's own registered origin when its profile
    allows CORS there; for an unidentified client's error, any registered origin, so that a
    registered browser app can read why it failed."""
    if not origin:
        return
    if client is not None:
        if get_profile(client.profile).cors_at_token_endpoint and origin in client.allowed_origins:
            allow(resp.headers, origin)
    elif resp.status >= 400 and await core.store.origin_registered(origin):
        allow(resp.headers, origin)
