"""The authorization server's OpenAPI 3.1 description (openapi.json beside this module), served at
GET /openapi.json like discovery: public, any origin, cacheable, `servers` naming the issuer.

tests/integration/test_as_openapi.py keeps it true: every route is documented and every documented path
is served, and schemathesis checks the live server against it. The bank's API below /bank/v1 has its
own document (fingrade.bank.openapi)."""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response


def openapi_document() -> dict[str, Any]:
    return orjson.loads(importlib.resources.files(__package__).joinpath("openapi.json").read_bytes())


@functools.cache
def _served(issuer: str) -> bytes:
    return orjson.dumps({**openapi_document(), "servers": [{"url": issuer}]})


async def openapi(request: Request) -> Response:
    return Response(
        _served(request.app.state.core.issuer),
        media_type="application/json",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"},
    )
