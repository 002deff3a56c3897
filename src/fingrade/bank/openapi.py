"""The bank API's OpenAPI 3.1 document, served at GET /bank/v1/openapi.json. It is hand-written
(openapi.json beside this module); tests/integration/test_bank_openapi.py keeps it true: routes <->
paths, and schemathesis on the live server."""

from __future__ import annotations

import functools
import importlib.resources
import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fingrade.bank.responses import json_response
from fingrade.protocol.errors import method_not_allowed


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document, loaded once."""
    return orjson.loads(importlib.resources.files(__package__).joinpath("openapi.json").read_bytes())


def route_template(path: str) -> str:
    """/accounts/{AccountId} and /accounts/{account_id} -> /accounts/{}"""
    return re.sub(r"\{[^}]+\}", "{}", path)


@functools.cache
def _openapi_bytes(bank_url: str) -> bytes:
    return orjson.dumps({**openapi_document(), "servers": [{"url": bank_url}]})


async def openapi(request: Request) -> Response:
    """GET /openapi.json: public like discovery (no token, any origin, cacheable); `servers` is bank_url."""
    if request.method not in ("GET", "HEAD"):
        return json_response(405, method_not_allowed("GET").body(), {"Allow": "GET, HEAD"})
    body = _openapi_bytes(request.app.state.bank.settings.bank_url)
    return Response(
        body,
        media_type="application/json",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"},
    )
