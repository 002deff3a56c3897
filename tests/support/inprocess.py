"""The server in this process, on a clock the test moves: an expiry rule is checked by moving the
clock past the lifetime, not by waiting it out.

`InProcessServer` is the application of `fingrade serve --demo` (create_server_app: the lean path in
front of create_app with its lifespan, role all: the bank API included) on an SQLite file, driven
through an httpx transport, so every function that takes a `Server` works with it: `client()`,
`cli()` (the real command line on the same database), `add_client()`, `issuer`, `data_dir`. It has
no socket and no TLS by default: `listen(app)` serves an ASGI application of it (the whole front, or
the application alone) on a loopback port with the server's own HTTP protocol, in plain HTTP; tests
of TLS keep the subprocess server of server.py.

Where the server reads the time, the `Clock` stands in: it is the core's injected clock
(`Core.clock`: lifetimes of codes, request_uris, tokens and sessions, DPoP nonce windows, sign-in
throttling), and the `time` of the modules that read it themselves: the SQL one-time store (TTLs:
kept token answers, replay caches), the durable store's client cache, the signing keys' reload, and
the bank (consent expiry, access token lifetime, its introspection cache and JWKS refresh limit)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn

from fingrade.bank import context as bank_context
from fingrade.bank import server as bank_server
from fingrade.bank import trust as bank_trust
from fingrade.bank.demo import seed_bank_demo
from fingrade.config import Settings, load_settings
from fingrade.demo import seed_demo
from fingrade.oauth import signing_keys as keystore
from fingrade.oauth.context import Core
from fingrade.runtime import build_core, close_core
from fingrade.store.sql import clients as sql_clients
from fingrade.store.sql import common as sql_common
from fingrade.store.sql import onetime as sql_onetime
from fingrade.web.app import create_server_app
from fingrade.web.connection_limits import ConnectionLimits, LimitedHttpToolsProtocol, OpenConnections
from fingrade.web.server import _Listener

from .clock import Clock, set_clock
from .server import DEMO_PASSWORD, DEMO_SECRET, DEMO_TOTP_SECRET, Server, free_port, server_env

ISSUER = "https://as.example.com"
# The modules that read the time themselves (everything else asks Core.clock).
TIME_READERS: tuple[ModuleType, ...] = (
    sql_onetime,
    sql_clients,
    sql_common,
    keystore,
    bank_context,
    bank_server,
    bank_trust,
)


class _AppTransport(httpx.BaseTransport):
    """A blocking httpx transport that hands each request to the ASGI app on the server's loop."""

    def __init__(self, server: InProcessServer, client: tuple[str, int]) -> None:
        self.server = server
        self.asgi = httpx.ASGITransport(app=server.app, client=client)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> tuple[int, httpx.Headers, bytes]:
            inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            resp = await self.asgi.handle_async_request(inner)
            raw = b"".join([chunk async for chunk in resp.stream])  # type: ignore[union-attr]
            return resp.status_code, resp.headers, raw

        status, headers, raw = self.server.call(send())
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(raw), request=request)


@dataclass
class InProcessServer(Server):
    clock: Clock = field(default_factory=Clock)
    core: Core | None = None
    settings: Settings | None = None
    app: Any = None  # the lean path (web/lean_path.py); its `app` is the Starlette application
    _loop: asyncio.AbstractEventLoop | None = None
    _lifespan: Any = None
    _listeners: list[tuple[_Listener, asyncio.Task[None]]] = field(default_factory=list)

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's event loop (where its stores live) and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def listen(self, app: Any = None) -> str:
        """Serve `app` (default: the whole front) on a free loopback port, in plain HTTP, with the
        server's HTTP protocol and its connection limits (web/connection_limits.py); its base URL."""
        assert self.settings is not None
        settings = self.settings
        port = free_port()

        async def start() -> None:
            config = uvicorn.Config(
                app or self.app,
                host="127.0.0.1",
                port=port,
                http=LimitedHttpToolsProtocol,
                lifespan="off",  # the application is started already
                ws="none",
                access_log=False,
                server_header=False,
                log_level="warning",
            )
            listener = _Listener(config, ConnectionLimits.from_settings(settings), OpenConnections(100))
            task = asyncio.get_running_loop().create_task(listener.serve())
            self._listeners.append((listener, task))
            while not listener.started:
                if task.done():
                    await task
                await asyncio.sleep(0.01)

        self.call(start())
        return f"http://127.0.0.1:{port}"

    def client(self, client: tuple[str, int] = ("127.0.0.1", 50000), **kw: Any) -> httpx.Client:
        """An httpx client of the application; `client`: the peer address the server sees."""
        return httpx.Client(base_url=self.base_url, transport=_AppTransport(self, client), timeout=20, **kw)

    def stop(self) -> None:
        if self._loop is None:
            return

        async def down() -> None:
            for listener, task in self._listeners:
                listener.should_exit = True
                await task
            await self._lifespan.__aexit__(None, None, None)
            assert self.core is not None
            await close_core(self.core)

        try:
            self.call(down())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None


def start_in_process(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, extra_env: dict[str, str] | None = None
) -> InProcessServer:
    """The demo server with the test settings of server.py (and `extra_env`) on a clock of its own."""
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**server_env(data_dir, ISSUER), **(extra_env or {})}
    settings = load_settings(environ=env)
    loop = asyncio.new_event_loop()

    def serve() -> None:
        loop.run_forever()
        loop.close()

    threading.Thread(target=serve, daemon=True, name="in-process-server").start()
    srv = InProcessServer(backend="sqlite", base_url=ISSUER, data_dir=data_dir, env=env, _loop=loop)
    set_clock(monkeypatch, srv.clock, TIME_READERS)
    # seed_demo reads the demo credentials from the environment.
    monkeypatch.setenv("FINGRADE_DEMO_PASSWORD", DEMO_PASSWORD)
    monkeypatch.setenv("FINGRADE_DEMO_CLIENT_SECRET", DEMO_SECRET)
    monkeypatch.setenv("FINGRADE_DEMO_TOTP_SECRET", DEMO_TOTP_SECRET)

    async def up() -> None:
        core = await build_core(settings)
        core.clock = srv.clock
        await seed_demo(core, say=lambda _: None)
        await seed_bank_demo(core, say=lambda _: None)
        srv.core = core
        srv.settings = settings
        srv.app = create_server_app(settings, core)
        srv._lifespan = srv.app.app.router.lifespan_context(srv.app.app)
        await srv._lifespan.__aenter__()

    try:
        srv.call(up())
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        raise
    return srv
