"""How the authorization server answers what a route did not: an unknown path, and a failure the
request did not cause (protocol/failures.py `ErrorBoundary` calls render_failure)."""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fingrade.protocol.errors import OAuthError
from fingrade.protocol.failures import RETRY_AFTER
from fingrade.web import pages
from fingrade.web import request_context as ctx

log = logging.getLogger("fingrade.web")


async def not_found(request: Request, exc: Exception) -> Response:
    return Response(b'{"error":"not_found"}', 404, media_type="application/json")


def render_failure(request: Request, store: bool) -> Response:
    """The answer to a failure the request did not cause: a store outage is 503
    temporarily_unavailable with Retry-After (RFC 6749 §4.1.2.1), anything else 500 server_error.
    JSON, except for a browser's page request (Accept: text/html), which gets an error page."""
    error, status = ("temporarily_unavailable", 503) if store else ("server_error", 500)
    headers = {"Retry-After": RETRY_AFTER} if store else {}
    if "text/html" in request.headers.get("accept", ""):
        try:
            text = (
                "The bank cannot complete this right now. Please try again in a moment."
                if store
                else "Something went wrong on our side. Please try again later."
            )
            page = pages.error_page(ctx.core(request).issuer, OAuthError(error, text, status))
            page.headers.update(headers)
            return page
        except Exception:
            log.exception("rendering the error page failed")
    return Response(
        orjson.dumps({"error": error}),
        status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **headers},
    )
