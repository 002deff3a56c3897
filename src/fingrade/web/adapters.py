"""Translation between Starlette and the core's plain request/response values."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import ssl
from functools import lru_cache
from urllib.parse import unquote

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.requests import Request
from starlette.responses import Response

from ..oauth.errors import OAuthError
from ..oauth.http import HttpRequest, HttpResponse

MAX_BODY = 64 * 1024
log = logging.getLogger("fingrade.web")


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


def forwarded_certificate(value: str) -> bytes | None:
    """DER of a certificate forwarded by a TLS-terminating proxy: nginx's $ssl_client_escaped_cert
    (URL-encoded PEM) or the RFC 9440 Client-Cert form (`:base64 DER:`)."""
    try:
        if value.startswith(":") and value.endswith(":") and len(value) > 2:
            der = base64.b64decode(value[1:-1], validate=True)
            return x509.load_der_x509_certificate(der).public_bytes(Encoding.DER)
        return x509.load_pem_x509_certificate(unquote(value).encode()).public_bytes(Encoding.DER)
    except (ValueError, binascii.Error):
        log.warning("the client certificate forwarded by the proxy cannot be parsed; ignored")
        return None


def client_certificate(request: Request, trusted_proxies: tuple[str, ...], cert_header: str) -> bytes | None:
    """The client certificate of this request (RFC 8705), as DER.

    From a trusted proxy, only what it forwards in `cert_header` counts (the proxy's own TLS identity is
    not the client's). From anyone else the header means nothing; the certificate is the one our own
    mTLS listener received in the handshake (the ASGI TLS extension, set by web.server)."""
    peer = request.client.host if request.client else ""
    if trusted_proxies and is_trusted(peer, trusted_proxies):
        value = request.headers.get(cert_header) if cert_header else None
        return forwarded_certificate(value) if value else None
    tls = (request.scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain")
    return ssl.PEM_cert_to_DER_cert(chain[0]) if chain else None


async def to_core(request: Request, trusted_proxies: tuple[str, ...], read: bool = True,
                  cert_header: str = "") -> HttpRequest:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        if name == cert_header:
            continue  # the core never sees the forwarding header, only the vetted certificate
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    body = await read_body(request) if read and request.method in ("POST", "PUT", "PATCH") else b""
    return HttpRequest(method=request.method, path=request.url.path, headers=headers,
                       query=request.scope.get("query_string", b""), body=body,
                       client_ip=client_ip(request, trusted_proxies),
                       client_cert=client_certificate(request, trusted_proxies, cert_header))


def to_starlette(resp: HttpResponse) -> Response:
    if resp.json is not None:
        return Response(orjson.dumps(resp.json), resp.status, headers=resp.headers, media_type="application/json")
    return Response(resp.body, resp.status, headers=resp.headers, media_type=resp.content_type)


def json_error(exc: OAuthError, extra: dict[str, str] | None = None) -> Response:
    headers = {"Cache-Control": "no-store", **exc.headers, **(extra or {})}
    return Response(orjson.dumps(exc.body()), exc.status, headers=headers, media_type="application/json")
