"""Headers every response carries (RFC 9700 §4.16 clickjacking, §4.2 Referer leakage; HSTS).

A pure ASGI middleware: it adds headers at `http.response.start` and never buffers a body.
Pages set their own, stricter Content-Security-Policy; this is the floor for everything else.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BASE_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_BASE_CSP = BASE_CSP.encode()


def floor_headers(hsts: bool) -> list[tuple[bytes, bytes]]:
    """The headers of every response, without the Content-Security-Policy (pages set their own)."""
    headers = [
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if hsts:
        headers.append((b"strict-transport-security", b"max-age=31536000"))
    return headers


def with_floor(raw: list[tuple[bytes, bytes]], floor: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`raw` (a response's header fields, extended in place) plus those of `floor` it does not set
    itself, and the base Content-Security-Policy unless it has its own."""
    names = {name for name, _ in raw}
    raw.extend(h for h in floor if h[0] not in names)
    if b"content-security-policy" not in names:
        raw.append((b"content-security-policy", _BASE_CSP))
    return raw


class SecurityHeaders:
    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.headers = floor_headers(hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_floor(list(message.get("headers", [])), self.headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ProxyOnly:
    """In plain-HTTP mode behind a TLS-terminating proxy, refuse connections that do not come
    from a trusted proxy address (they would bypass TLS)."""

    def __init__(self, app: ASGIApp, trusted: Callable[[str], bool]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The in-process bank API's calls to the AS (fingrade.bank.server.InProcess) have no peer.
        if scope["type"] == "http" and not scope.get("fingrade.in_process"):
            peer = (scope.get("client") or ("", 0))[0]
            if not self.trusted(peer):
                await send(
                    {"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"application/json")]}
                )
                await send({"type": "http.response.body", "body": b'{"error":"access_denied"}'})
                return
        await self.app(scope, receive, send)
