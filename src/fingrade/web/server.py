"""Running the app under uvicorn: the main listener and, when `mtls_port` is set, a second TLS
listener for the back channel that asks for client certificates (RFC 8705 §5 `mtls_endpoint_aliases`).
Both use the connection limits of connection_limits.py (head size and time, body time, keep-alive,
one connection cap for the two) and give a TLS handshake the head's deadline.

Why two listeners: a certificate request on the listener browsers use makes them show a certificate
chooser. The mTLS listener serves the same app; clients send their back-channel requests there.

Certificate path: the handshake proves the client holds the certificate's key; the protocol class
below copies the peer certificate into the ASGI TLS extension (`scope["extensions"]["tls"]`), the
web adapter turns it into `HttpRequest.client_cert`, and the core (oauth/mtls.py) decides whether it
authenticates a client or binds a token. Python's ssl module can only verify a presented certificate
against the context's trust store (there is no verify callback), so the store holds the configured
CA bundle plus every self-signed certificate registered in a client's JWKS (`x5c`), refreshed while
running, with VERIFY_X509_PARTIAL_CHAIN so that a registered leaf is its own anchor. That store is
only the gate at the door: it never decides who a client is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
import ssl
import sys
from collections.abc import Iterator
from typing import Any, Protocol

import uvicorn
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send
from uvicorn._compat import asyncio_run
from uvicorn.server import STARTUP_FAILURE

from fingrade.config import Settings
from fingrade.oauth.mtls import registered_certificates
from fingrade.web.connection_limits import LINGER_SECONDS, ConnectionLimits, LimitedHttpToolsProtocol, OpenConnections

log = logging.getLogger("fingrade.mtls")
server_log = logging.getLogger("fingrade.web")
FAPI_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
)


class Served(Protocol):
    """What the listeners serve: an ASGI application with the application's state (the AS behind
    its lean path, web/app.py `create_server_app`, or the bank's own server)."""

    @property
    def state(self) -> State: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class MtlsHttpToolsProtocol(LimitedHttpToolsProtocol):
    """uvicorn's httptools protocol plus the ASGI TLS extension (client_cert_chain, as PEM).

    asyncio calls connection_made after the TLS handshake, so the peer certificate is known here and
    is the same for every request on the connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's: a stream
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        # The ASGI TLS extension's members (uvicorn's scope type: dict[object, object]).
        self._tls_extension: dict[object, object] = {
            "server_cert": None,
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"tls": dict(self._tls_extension)}


class _Listener(uvicorn.Server):
    """One listener. Signals are handled once for both (see serve); connections get the limits
    (web/connection_limits.py), shared by both, and a TLS handshake has the head's deadline."""

    def __init__(self, config: uvicorn.Config, limits: ConnectionLimits, connections: OpenConnections) -> None:
        super().__init__(config)
        self.limits = limits
        self.open_connections = connections

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's startup for a host and port, with the protocol's limits and TLS deadlines
        (uvicorn passes neither: a client that never finishes its handshake would hold a socket 60 s)."""
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            # uvicorn types the class as asyncio.Protocol; ours takes uvicorn's arguments and the limits.
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
                limits=self.limits,
                connections=self.open_connections,
            )

        tls: dict[str, Any] = {}
        if config.ssl is not None:
            tls = {
                "ssl": config.ssl,
                "ssl_handshake_timeout": self.limits.header_timeout,
                "ssl_shutdown_timeout": LINGER_SECONDS,
            }
        try:
            server = await asyncio.get_running_loop().create_server(
                create_protocol, host=config.host, port=config.port, backlog=config.backlog, **tls
            )
        except OSError as exc:
            server_log.error("cannot listen on %s:%s: %s", config.host, config.port, exc)
            await self.lifespan.shutdown()
            sys.exit(STARTUP_FAILURE)
        self.servers = [server]
        self.started = True


def _room_for(connections: int) -> None:
    """Raise the process's open-file limit so that http_max_connections can be reached (sockets to
    the stores and files come on top)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + 256
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < want:
        server_log.warning("open-file limit %d is below http_max_connections + 256; connections beyond it fail", new)


class TrustStore:
    """The mTLS listener's trust store: CA bundle + registered self-signed client certificates."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.loaded: set[bytes] = set()

    async def refresh(self, app: Served) -> None:
        core = getattr(app.state, "core", None)
        if core is None:
            return
        for client in await core.store.list_clients():
            for der in registered_certificates(client.jwks):
                if der in self.loaded:
                    continue
                try:
                    self.ctx.load_verify_locations(cadata=der)
                except ssl.SSLError:
                    log.warning("client %s: registered certificate not usable as a trust anchor", client.client_id)
                self.loaded.add(der)  # OpenSSL keeps what it was given; removed clients fail in the core

    async def keep_fresh(self, app: Served, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh(app)
            except Exception:
                log.exception("refreshing the mTLS trust store failed")


def _server_context(ssl_args: dict[str, Any]) -> ssl.SSLContext:
    """TLS 1.2 or later; with TLS 1.2 only the BCP 195 (RFC 9325 §4.2) recommended suites. FAPI 2.0
    SP 5.2.2 asks this of back-channel endpoints (/token, /par, ... are on both listeners) and
    5.2.3-2 allows it for the browser-facing ones; every current browser speaks these suites."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(ssl_args["ssl_certfile"], ssl_args["ssl_keyfile"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(FAPI_TLS12_CIPHERS)
    return ctx


def _mtls_context(settings: Settings, ssl_args: dict[str, Any]) -> ssl.SSLContext:
    ctx = _server_context(ssl_args)
    # Ask for a certificate, but let clients without one in (their requests simply carry none).
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if settings.mtls_ca_file:
        ctx.load_verify_locations(settings.mtls_ca_file)
    return ctx


def serve(settings: Settings, app: Served, ssl_args: dict[str, Any]) -> None:
    # No WebSocket (ws none): an upgrade would leave these limits for another protocol's.
    common: dict[str, Any] = {
        "host": settings.host,
        "access_log": settings.access_log,
        "loop": "uvloop",
        "proxy_headers": False,
        "server_header": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 5,
        "ws": "none",
        "timeout_keep_alive": settings.http_keep_alive_timeout,
    }
    limits = ConnectionLimits.from_settings(settings)
    connections = OpenConnections(settings.http_max_connections)
    _room_for(settings.http_max_connections)
    main_config = uvicorn.Config(app, port=settings.port, http=LimitedHttpToolsProtocol, **common, **ssl_args)
    if ssl_args:
        main_config.load()
        main_config.ssl = _server_context(ssl_args)
    main = _Listener(main_config, limits, connections)
    servers: list[uvicorn.Server] = [main]
    mtls: uvicorn.Server | None = None
    store: TrustStore | None = None
    if settings.mtls_port:
        config = uvicorn.Config(app, port=settings.mtls_port, http=MtlsHttpToolsProtocol, lifespan="off", **common)
        config.load()
        config.ssl = _mtls_context(settings, ssl_args)
        store = TrustStore(config.ssl)
        mtls = _Listener(config, limits, connections)
        servers.append(mtls)

    def on_signal(sig: int, frame: Any) -> None:
        for server in servers:
            server.handle_exit(sig, frame)

    async def run() -> None:
        main_task = asyncio.create_task(main.serve())
        if mtls is None or store is None:
            await main_task
            return
        while not main.started:  # the app's lifespan (stores, keys) is up before the second listener opens
            if main_task.done():
                await main_task
                return
            await asyncio.sleep(0.05)
        await store.refresh(app)
        keeper = asyncio.create_task(store.keep_fresh(app, max(settings.client_cache_seconds, 1.0)))
        mtls_task = asyncio.create_task(mtls.serve())
        log.warning("mutual TLS listener on %s:%s", settings.host, settings.mtls_port)
        await asyncio.wait([main_task, mtls_task], return_when=asyncio.FIRST_COMPLETED)
        for server in servers:
            server.should_exit = True
        await asyncio.gather(main_task, mtls_task, return_exceptions=True)
        keeper.cancel()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        asyncio_run(run(), loop_factory=main.config.get_loop_factory())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
