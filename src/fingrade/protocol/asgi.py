"""Translation between Starlette and the core's plain request/response values."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fingrade.protocol import body_limit
from fingrade.protocol.edge import client_certificate, client_ip
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.http import HttpRequest, HttpResponse

MAX_BODY = 64 * 1024


class BodyTooLarge(OAuthError):
    pass


def too_large() -> BodyTooLarge:
    return BodyTooLarge("invalid_request", "the request body is too large", 413)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    try:
        return await body_limit.read_body(request, limit)
    except body_limit.BodyTooLarge:
        raise too_large() from None


async def to_core(
    request: Request, trusted_proxies: tuple[str, ...], read: bool = True, cert_header: str = ""
) -> HttpRequest:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if name == cert_header:
            continue  # the core never sees the forwarding header, only the vetted certificate
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    body = await read_body(request) if read and request.method in ("POST", "PUT", "PATCH") else b""
    return HttpRequest(
        method=request.method,
        path=request.url.path,
        headers=headers,
        query=request.scope.get("query_string", b""),
        body=body,
        client_ip=client_ip(request, trusted_proxies),
        client_cert=client_certificate(request, trusted_proxies, cert_header),
    )


def to_starlette(resp: HttpResponse) -> Response:
    if resp.json is not None:
        return Response(orjson.dumps(resp.json), resp.status, headers=resp.headers, media_type="application/json")
    return Response(resp.body, resp.status, headers=resp.headers, media_type=resp.content_type)


def raw_response(resp: HttpResponse) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The header fields and body that `to_starlette(resp)` sends, built without a Response object
    (for web/lean_path.py): the response's own headers (names lower-cased, values Latin-1), then, as
    Starlette adds them, Content-Length (not on 1xx, 204 or 304) and Content-Type (text types with
    their charset) unless the response set them."""
    media_type: str | None
    if resp.json is not None:
        body, media_type = orjson.dumps(resp.json), "application/json"
    else:
        body, media_type = resp.body, resp.content_type
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in resp.headers.items()]
    names = {name for name, _ in raw}
    if b"content-length" not in names and not (resp.status < 200 or resp.status in (204, 304)):
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
    if media_type is not None and b"content-type" not in names:
        if media_type.startswith("text/") and "charset=" not in media_type.lower():
            media_type += "; charset=utf-8"
        raw.append((b"content-type", media_type.encode("latin-1")))
    return raw, body


def json_error(exc: OAuthError, extra: dict[str, str] | None = None) -> Response:
    headers = {"Cache-Control": "no-store", **exc.headers, **(extra or {})}
    return Response(orjson.dumps(exc.body()), exc.status, headers=headers, media_type="application/json")
