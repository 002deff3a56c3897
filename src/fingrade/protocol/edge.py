"""What the network edge says about a request, shared by the authorization server (web/) and the
bank's resource server (bank/): the client's address behind trusted proxies, and the client
certificate (RFC 8705) from our own mTLS listener or from a trusted TLS-terminating proxy."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import ssl
from functools import lru_cache
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.requests import Request

log = logging.getLogger("fingrade.web")

__all__ = ["client_certificate", "client_ip", "forwarded_certificate", "is_trusted"]


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
