"""Translation between Starlette and the core's plain request/response values."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..oauth.errors import OAuthError
from ..oauth.http import HttpRequest, HttpResponse

MAX_BODY = 64 * 1024


class BodyTooLarge(OAuthError):
    pass


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge("invalid_request", "the request body is too large", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge("invalid_request", "the request body is too large", 413)
        chunks.append(chunk)
    return b"".join(chunks)


@lru_cache(maxsize=4096)
def is_trusted(ip: str, networks: tuple[str, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(n, strict=False) for n in networks)


def client_ip(request: Request, trusted_proxies: tuple[str, ...]) -> str:
    """The peer address; behind a trusted proxy, the right-most untrusted X-Forwarded-For hop
    (RFC 9700 §4.13: forwarding headers are believed only from the proxy)."""
    peer = request.client.host if request.client else ""
    if not trusted_proxies or not is_trusted(peer, trusted_proxies):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted_proxies):
            return hop
    return peer


async def to_core(request: Request, trusted_proxies: tuple[str, ...], read: bool = True) -> HttpRequest:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    body = await read_body(request) if read and request.method in ("POST", "PUT", "PATCH") else b""
    return HttpRequest(method=request.method, path=request.url.path, headers=headers,
                       query=request.scope.get("query_string", b""), body=body,
                       client_ip=client_ip(request, trusted_proxies))


def to_starlette(resp: HttpResponse) -> Response:
    if resp.json is not None:
        return Response(orjson.dumps(resp.json), resp.status, headers=resp.headers, media_type="application/json")
    return Response(resp.body, resp.status, headers=resp.headers, media_type=resp.content_type)


def json_error(exc: OAuthError, extra: dict[str, str] | None = None) -> Response:
    headers = {"Cache-Control": "no-store", **exc.headers, **(extra or {})}
    return Response(orjson.dumps(exc.body()), exc.status, headers=headers, media_type="application/json")
