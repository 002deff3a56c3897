"""How the bank API answers: JSON bodies that are never stored by caches, and its errors - token
errors with their challenge (RFC 6750 §3.1 / RFC 9449 §7.1, `protocol.resource.resource_error`),
an unreachable authorization server or store as 503 with Retry-After, unknown routes as 404."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fingrade.protocol import dpop
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.failures import RETRY_AFTER
from fingrade.protocol.http import NO_STORE, HttpResponse
from fingrade.protocol.resource import resource_error


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers={**NO_STORE, **(headers or {})}, media_type="application/json")


def from_core(resp: HttpResponse) -> Response:
    return json_response(resp.status, resp.json, resp.headers)


def auth_error(request: Request, exc: OAuthError) -> Response:
    """RFC 6750 §3.1 / RFC 9449 §7.1 errors with a challenge; an unreachable AS is a plain 503."""
    if exc.error == "temporarily_unavailable":
        return json_response(503, exc.body(), {"Retry-After": RETRY_AFTER})
    if not isinstance(exc, dpop.DPoPError) and _dpop_scheme(request):
        exc = dpop.DPoPError(
            exc.error, exc.description, exc.status, headers=exc.headers, challenge_params=exc.challenge_params
        )
    return from_core(resource_error(exc))


def _dpop_scheme(request: Request) -> bool:
    return request.headers.get("authorization", "").split(" ", 1)[0].lower() == "dpop"


def failure_response(request: Request, store: bool) -> Response:
    """The bank's answer to a failure the call did not cause (failures.ErrorBoundary): a store
    outage is 503 temporarily_unavailable with Retry-After, as when the AS cannot be reached;
    anything else 500 server_error. InteractionHeaders (routes.py) adds the x-fapi-interaction-id."""
    if store:
        return json_response(
            503,
            {
                "error": "temporarily_unavailable",
                "error_description": "the bank cannot serve this request now; retry later",
            },
            {"Retry-After": RETRY_AFTER},
        )
    return json_response(500, {"error": "server_error"})


async def route_not_found(request: Request, exc: Exception) -> Response:
    """No such route below the API's prefix, or not with this method: 404, as for an unknown id."""
    return json_response(404, {"error": "not_found"})


def too_large() -> Response:
    return json_response(413, {"error": "invalid_request", "error_description": "the request body is too large"})
