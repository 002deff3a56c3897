"""Running the app under uvicorn: the main listener and, when `mtls_port` is set, a second TLS
listener for the back channel that asks for client certificates (RFC 8705 §5 `mtls_endpoint_aliases`).

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
import signal
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn._compat import asyncio_run
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import Settings
from ..oauth.mtls import registered_certificates

log = logging.getLogger("fingrade.mtls")
FAPI_TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384")


class MtlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the ASGI TLS extension (client_cert_chain, as PEM).

    asyncio calls connection_made after the TLS handshake, so the peer certificate is known here and
    is the same for every request on the connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self._tls_extension = {
            "server_cert": None, "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None, "client_cert_error": None, "tls_version": None, "cipher_suite": None,
        }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"tls": dict(self._tls_extension)}  # type: ignore[typeddict-unknown-key]


class _NoSignals(uvicorn.Server):
    """Signals are handled once for both listeners (see serve)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class TrustStore:
    """The mTLS listener's trust store: CA bundle + registered self-signed client certificates."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.loaded: set[bytes] = set()

    async def refresh(self, app: Starlette) -> None:
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

    async def keep_fresh(self, app: Starlette, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh(app)
            except Exception:  # noqa: BLE001 - try again next round
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


def serve(settings: Settings, app: Starlette, ssl_args: dict[str, Any]) -> None:
    common: dict[str, Any] = {"host": settings.host, "access_log": settings.access_log, "loop": "uvloop",
                              "proxy_headers": False, "server_header": False, "log_level": "warning",
                              "timeout_graceful_shutdown": 5}
    main_config = uvicorn.Config(app, port=settings.port, http="httptools", **common, **ssl_args)
    if ssl_args:
        main_config.load()
        main_config.ssl = _server_context(ssl_args)
    main = _NoSignals(main_config)
    servers: list[uvicorn.Server] = [main]
    mtls: uvicorn.Server | None = None
    store: TrustStore | None = None
    if settings.mtls_port:
        config = uvicorn.Config(app, port=settings.mtls_port, http=MtlsHttpToolsProtocol, lifespan="off", **common)
        config.load()
        config.ssl = _mtls_context(settings, ssl_args)
        store = TrustStore(config.ssl)
        mtls = _NoSignals(config)
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

