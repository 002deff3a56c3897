"""The lean path: an ASGI front, outermost, that answers the common case of the busiest requests
without Starlette's request object, routing and middleware stack, and hands every other request to
the application (app.py) unchanged. Routing and middleware cost nearly as much per client-credentials
token request as the protocol work itself; here they are a dictionary lookup.

Served here, when nothing about the request is unusual:

- `POST /token`, `/par`, `/introspect`, `/revoke` and `GET`/`POST /userinfo`: the HttpRequest is
  built straight from the ASGI scope, as `protocol.asgi.to_core` builds it, the body read under the
  same limits (`protocol.body_limit`: a declared length over the route's limit, or a chunked body
  that grows past it, is the same 413), and the same core endpoint function answers.
- `GET /authorize`: the same route function (interaction_routes.authorize) with its Starlette
  request, without the router and the middlewares in front of it.
- `GET /bank/v1/accounts...` (role all): the bank API's account reads, straight to their route
  functions inside the bank's own InteractionHeaders and error boundary (bank/routes.py AccountReads),
  without the two applications' routing and middleware; only without a body.

Every answer carries what the middlewares would add (the security headers, HSTS for an https
issuer), and a failure the request did not cause gets the answer and the log line of
`failures.ErrorBoundary` (`web/errors.py` `render_failure`: 500 `server_error`, or 503 with
Retry-After for a store outage).

Handed to the application: every other method and path (and `OPTIONS`), a request with an `Origin`
header (CORS decides there), a bank read with a body (the bank's own body limit answers it), a
request from a trusted proxy (its forwarded address and certificate headers are read there), a
request on the mutual-TLS listener (its scope has the TLS extension), the bank's calls from inside
the process, a query string that is not UTF-8 (Starlette's URL parsing fails on it, and the answer is
the application's), a mounted scope (a `root_path`), lifespan events, and, when the server only takes
plain HTTP from trusted proxies (ProxyOnly), every request.

tests/integration/test_lean_path.py sends the same requests, valid and not, through both paths on a
real server and compares the answers byte for byte (apart from the Date and random values).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fingrade.bank.routes import AccountReads, RouteFunction
from fingrade.bank.server import IN_PROCESS
from fingrade.config import Settings
from fingrade.oauth.context import Core
from fingrade.oauth.introspect import introspection_endpoint, revocation_endpoint
from fingrade.oauth.par import par_endpoint
from fingrade.oauth.token_endpoint import token_endpoint
from fingrade.oauth.userinfo import userinfo_endpoint
from fingrade.protocol.asgi import MAX_BODY, json_error, raw_response, too_large
from fingrade.protocol.body_limit import BodyLimits, declared_length
from fingrade.protocol.edge import is_trusted
from fingrade.protocol.failures import report
from fingrade.protocol.http import HttpRequest, HttpResponse
from fingrade.web import interaction_routes
from fingrade.web.errors import render_failure
from fingrade.web.security_headers import floor_headers, with_floor

log = logging.getLogger("fingrade.web")  # the application's ErrorBoundary logs here too

Headers = list[tuple[bytes, bytes]]
CoreEndpoint = Callable[[Core, HttpRequest], Awaitable[HttpResponse]]
PageRoute = Callable[[Request], Awaitable[Response]]


async def _token(core: Core, request: HttpRequest) -> HttpResponse:
    resp, _client = await token_endpoint(core, request)  # the client matters only for CORS: with an Origin
    return resp


# The core endpoints of oauth_routes.py, by method and path.
BACK_CHANNEL: dict[tuple[str, str], CoreEndpoint] = {
    ("POST", "/token"): _token,
    ("POST", "/par"): par_endpoint,
    ("POST", "/introspect"): introspection_endpoint,
    ("POST", "/revoke"): revocation_endpoint,
    ("GET", "/userinfo"): userinfo_endpoint,
    ("POST", "/userinfo"): userinfo_endpoint,
}
PAGES: dict[tuple[str, str], PageRoute] = {
    ("GET", "/authorize"): interaction_routes.authorize,
}


class LeanPath:
    """In front of the application `app` (create_app): see the module's description."""

    def __init__(self, app: Starlette, settings: Settings) -> None:
        self.app = app
        # ProxyOnly's configuration: plain HTTP is taken only from trusted proxies, whose requests go
        # to the application anyway.
        self.on = not (settings.tls == "off" and settings.trusted_proxies)
        self.proxies: tuple[str, ...] = app.state.trusted_proxies
        self.cert_header: str = app.state.cert_header
        self.floor = floor_headers(settings.issuer.startswith("https://"))
        limits: BodyLimits = app.state.body_limits
        self.limits = {key: _limit(limits, key[1]) for key in (*BACK_CHANNEL, *PAGES)}
        answer = json_error(too_large())
        self._too_large: tuple[Headers, bytes] = (list(answer.raw_headers), bytes(answer.body))
        bank: Starlette | None = app.state.bank_api
        self.bank = AccountReads(bank) if bank is not None else None

    @property
    def state(self) -> State:
        """The application's state (the core, once started)."""
        return self.app.state

    def _too_large_answer(self, close: bool) -> tuple[Headers, bytes]:
        """The 413 of the application (json_error(too_large())); with `close`, BodyLimit's, which
        does not read the rest of the body (Connection: close)."""
        raw, body = self._too_large
        return [*raw, (b"connection", b"close")] if close else list(raw), body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.on and await self._serve(scope, receive, send):
            return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answers the request and returns True, or returns False, having read nothing, to hand it over."""
        key = (scope["method"], scope["path"])
        endpoint = BACK_CHANNEL.get(key)
        if endpoint is not None:
            return self._plain(scope) and await self._back_channel(endpoint, self.limits[key], scope, receive, send)
        page = PAGES.get(key)
        if page is not None:
            return self._plain(scope) and await self._page(page, self.limits[key], scope, receive, send)
        if self.bank is not None and key[0] == "GET":
            read = self.bank.match(key[1])
            if read is not None:
                return self._plain(scope) and await self._bank_read(read, scope, receive, send)
        return False

    def _plain(self, scope: Scope) -> bool:
        """Nothing about the connection asks for the application: no mount, not the bank's call from
        inside the process, not the mutual-TLS listener, not a trusted proxy, a UTF-8 query."""
        if scope.get("root_path") or scope.get(IN_PROCESS) or "tls" in (scope.get("extensions") or {}):
            return False
        if self.proxies:
            client = scope.get("client")
            if is_trusted(client[0] if client else "", self.proxies):
                return False
        query: bytes = scope.get("query_string", b"")
        if not query.isascii():
            try:
                query.decode()
            except UnicodeDecodeError:
                return False
        return True

    # -- the back channel -------------------------------------------------------------------------

    async def _back_channel(
        self, endpoint: CoreEndpoint, limit: int, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """Answers the request and returns True, or returns False, having read nothing, to hand it over."""
        # The header fields as to_core keeps them: every one but the proxy's certificate header, a
        # repeated one joined with ", ".
        headers: dict[str, str] = {}
        declared: list[bytes] = []
        chunked = False
        cert_header = self.cert_header
        for raw_name, raw_value in scope["headers"]:
            if raw_name == b"content-length":
                declared.append(raw_value)
            elif raw_name == b"transfer-encoding":
                chunked = True
            elif raw_name == b"origin":
                return False  # CORS (cors.py) decides at the application
            name = raw_name.decode("latin-1")
            if name == cert_header:
                continue
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        started = False
        try:
            if declared and (len(declared) != 1 or (size := declared_length(declared[0])) is None or size > limit):
                started = True
                await self._send(send, 413, *self._too_large_answer(close=True))
                return True
            method: str = scope["method"]
            body = b""
            if method == "POST":
                read = await self._read(receive, declared[0] if declared else None, chunked, limit)
                if read is None:
                    return True  # the client is gone: nobody to answer
                if isinstance(read, tuple):
                    started = True
                    await self._send(send, 413, *read)
                    return True
                body = read
            client = scope.get("client")
            request = HttpRequest(
                method=method,
                path=scope["path"],
                headers=headers,
                query=scope.get("query_string", b""),
                body=body,
                client_ip=client[0] if client else "",
            )
            resp = await endpoint(self.app.state.core, request)
            raw, content = raw_response(resp)
            started = True
            await self._send(send, resp.status, raw, content)
        except Exception as exc:  # noqa: BLE001 - logged and answered (or raised on) by _failed
            await self._failed(exc, started, scope, receive, send)
        return True

    async def _read(
        self, receive: Receive, declared: bytes | None, chunked: bool, limit: int
    ) -> bytes | tuple[Headers, bytes] | None:
        """The body as BodyLimit and to_core's read_body read it: the 413 answer (header fields and
        body) if it is too large, None if the client went away."""
        if declared is not None and int(declared) > MAX_BODY:  # read_body's own, lower limit
            return self._too_large_answer(close=False)
        counted = declared is None and chunked  # BodyLimit counts a body of undeclared length
        received = size = 0
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                if counted:
                    received += len(chunk)
                    if received > limit:  # BodyLimit cuts it off: the rest is not read
                        return self._too_large_answer(close=True)
                if chunk:
                    size += len(chunk)
                    if size > MAX_BODY:
                        return self._too_large_answer(close=False)
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
            elif message["type"] == "http.disconnect":
                return None

    # -- pages ------------------------------------------------------------------------------------

    async def _page(self, route: PageRoute, limit: int, scope: Scope, receive: Receive, send: Send) -> bool:
        """A GET page route with its Starlette request (the body, if any, is not read); False, having
        read nothing, to hand it over."""
        declared: list[bytes] = []
        for raw_name, raw_value in scope["headers"]:
            if raw_name == b"content-length":
                declared.append(raw_value)
            elif raw_name == b"origin":
                return False

        async def page(scope: Scope, receive: Receive, send: Send) -> None:
            if declared and (len(declared) != 1 or (size := declared_length(declared[0])) is None or size > limit):
                raw, body = self._too_large_answer(close=True)
                await send({"type": "http.response.start", "status": 413, "headers": raw})
                await send({"type": "http.response.body", "body": body})
                return
            scope["app"] = self.app  # as Starlette sets it: the route reads app.state
            response = await route(Request(scope, receive, send))
            await response(scope, receive, send)

        await self._guarded(page, scope, receive, send)
        return True

    # -- the bank's account reads -----------------------------------------------------------------

    async def _bank_read(
        self, read: tuple[RouteFunction, dict[str, Any]], scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """A GET of the bank API that AccountReads serves; False, having read nothing, to hand it
        over: a request with a body (the bank's own body limit applies) or with an Origin."""
        for raw_name, _ in scope["headers"]:
            if raw_name in (b"content-length", b"transfer-encoding", b"origin"):
                return False
        bank = self.bank
        assert bank is not None

        async def account_read(scope: Scope, receive: Receive, send: Send) -> None:
            await bank(read, scope, receive, send)

        await self._guarded(account_read, scope, receive, send)
        return True

    async def _guarded(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """`app`'s answer with the security headers, inside the failure answer (as SecurityHeaders and
        ErrorBoundary around the routes)."""
        started = False

        async def send_floored(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = with_floor(list(message.get("headers", [])), self.floor)
            await send(message)

        try:
            await app(scope, receive, send_floored)
        except Exception as exc:  # noqa: BLE001 - logged and answered (or raised on) by _failed
            await self._failed(exc, started, scope, receive, send)

    # -- answers ----------------------------------------------------------------------------------

    async def _send(self, send: Send, status: int, raw: Headers, body: bytes) -> None:
        """`raw`: a list of the answer's own (extended in place with the security headers)."""
        await send({"type": "http.response.start", "status": status, "headers": with_floor(raw, self.floor)})
        await send({"type": "http.response.body", "body": body})

    async def _failed(self, exc: Exception, started: bool, scope: Scope, receive: Receive, send: Send) -> None:
        """ErrorBoundary's answer: logged once; 503 for a store outage, else 500 (render_failure); an
        answer already under way is cut short (raised on: the server closes the connection)."""
        store = report(log, scope, exc)
        if started:
            raise exc
        scope["app"] = self.app  # render_failure's error page reads app.state
        response = render_failure(Request(scope, receive), store)
        await self._send(send, response.status_code, response.raw_headers, bytes(response.body))


def _limit(limits: BodyLimits, path: str) -> int:
    limit = limits.for_path(path)
    if limit is None:
        raise ValueError(f"{path} has no body limit of its own")
    return limit
