"""Slow and oversized clients against the real server, on real sockets, on both listeners (the main
one and the mutual-TLS one): the server bounds what one connection may cost and closes the
connections that exceed it (docs/architecture.md, "Connection limits").

- a request head (request line + header fields) must arrive within `http_header_timeout`, and an
  idle connection (also one that never finishes its TLS handshake) is closed by then;
- a head larger than `http_max_header_bytes` (or a line larger than `http_max_header_line_bytes`)
  is answered 431 (RFC 6585 §5) or 414 (RFC 9110 §15.5.15) and the connection closed, without buffering it;
- a request body larger than the route's limit is answered 413 (RFC 9110 §15.5.14) while the client
  is still sending, never read whole, and the connection closed;
- a body must arrive within `http_body_timeout`; a kept-alive connection is closed after
  `http_keep_alive_timeout`; beyond `http_max_connections` new connections get 503 and are closed.

Memory is measured on the server process (/proc/<pid>/status VmRSS, sampled while the attack runs).
The server here has short timeouts and a small connection cap (set through the environment).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain

import httpx
import pytest
from support.backends import BACKENDS
from support.bank import PREFIX, Fintech, payment_body, payment_initiation
from support.server import Server, drop_pg_database, free_port, start_server

BACKEND = BACKENDS[0]
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
KEEP_ALIVE = 2.0
MAX_CONNECTIONS = 40
MAX_HEADER_BYTES = 16 * 1024
LINGER = 2.0  # how long the server keeps reading (and dropping) after it refused a request mid-way
SLACK = 2.0  # scheduling slack on a busy machine
MiB = 1024 * 1024
FLOOD_PACE = 0.002  # between 64 KiB pieces (~30 MB/s): the answer, not the kernel's buffers, stops the client


@dataclass
class Limited:
    server: Server
    ports: dict[str, int]


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    mtls_port = free_port()
    srv = start_server(
        tmp_path_factory.mktemp("limits"),
        BACKEND,
        extra_env={
            "FINGRADE_MTLS_PORT": str(mtls_port),
            "FINGRADE_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "FINGRADE_HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "FINGRADE_HTTP_KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE),
            "FINGRADE_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        },
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"https://localhost:{mtls_port}/healthz", verify=srv.ssl_context(), timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield Limited(srv, {"main": int(srv.base_url.rsplit(":", 1)[1]), "mtls": mtls_port})
    finally:
        srv.stop()
        if srv.backend == "postgres":
            drop_pg_database(srv.env["FINGRADE_DATABASE_URL"])


LISTENERS = ["main", "mtls"]


# -- a raw client ------------------------------------------------------------------------------


@dataclass
class Exchange:
    reply: bytes = b""
    sent: int = 0  # bytes written
    answered_at: int | None = None  # bytes written when the first byte of the answer arrived
    answered_after: float | None = None  # seconds from connecting to the first byte of the answer
    closed_after: float | None = None  # seconds from connecting to the server's close (None: still open)
    peak_rss_growth: int = 0  # bytes, on the server, while this ran (if measured)
    extra: dict = field(default_factory=dict)

    @property
    def status(self) -> int | None:
        if not self.reply.startswith(b"HTTP/1.1 "):
            return None
        return int(self.reply.split(b" ", 2)[1])

    @property
    def head(self) -> dict[str, str]:
        lines = self.reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
        return {k.strip().lower().decode(): v.strip().decode() for k, v in (x.split(b":", 1) for x in lines)}

    @property
    def body(self) -> bytes:
        return self.reply.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.reply else b""


def _context(server: Server) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=server.ca)


async def _open(server: Server, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=_context(server), server_hostname="localhost")


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _exchange(
    server: Server,
    port: int,
    head: bytes,
    body: Iterable[bytes] = (),
    *,
    pace: float = 0.0,
    deadline: float = 10.0,
    stop_when_answered: bool = True,
) -> Exchange:
    """Send `head` then `body` (each piece after `pace` seconds) while reading the answer; stop
    sending once an answer arrives; wait (at most `deadline` seconds in all) for the server to close."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    out = Exchange()
    reader, writer = await _open(server, port)

    async def read() -> None:
        try:
            while chunk := await reader.read(65536):
                if out.answered_at is None:
                    out.answered_at, out.answered_after = out.sent, loop.time() - start
                out.reply += chunk
        except (ConnectionError, ssl.SSLError):
            pass
        out.closed_after = loop.time() - start

    reading = asyncio.create_task(read())
    try:
        async with asyncio.timeout(deadline):
            try:
                for i, piece in enumerate(chain([head], body)):
                    if reading.done() or (stop_when_answered and out.answered_at is not None):
                        break
                    if pace and i:
                        await asyncio.sleep(pace)
                    writer.write(piece)
                    await writer.drain()
                    out.sent += len(piece)
            except (ConnectionError, ssl.SSLError):
                pass
            await reading
    except TimeoutError:
        pass
    finally:
        reading.cancel()
        writer.transport.abort()
    return out


def run(coro):
    return asyncio.run(coro)


async def _with_rss(pid: int, coro):
    """Run `coro` while sampling the server's resident memory; (result, peak growth in bytes)."""
    base = _rss(pid)
    peak = base
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss(pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        result = await coro
    finally:
        done.set()
        await sampler
    return result, peak - base


def _assert_refused(ex: Exchange, status: int, error: str = "invalid_request") -> None:
    assert ex.status == status, ex.reply[:300]
    assert ex.head.get("connection") == "close", ex.head
    # the floor of security headers (web/security_headers.py) is on every answer, this one too
    assert ex.head.get("x-content-type-options") == "nosniff", ex.head
    assert ex.head.get("x-frame-options") == "DENY", ex.head
    assert ex.head.get("cache-control") == "no-store", ex.head
    assert json.loads(ex.body)["error"] == error, ex.body[:200]


# -- slow and idle clients ---------------------------------------------------------------------


@pytest.mark.parametrize("listener", LISTENERS)
def test_slow_request_head_is_cut_off_at_the_header_timeout(limited: Limited, listener: str) -> None:
    """Slowloris: one header line per 0.4 s never completes the head; the server answers 408 and
    closes within http_header_timeout, although bytes keep arriving (RFC 9110 §15.5.9)."""
    lines = (b"X-Slow-%d: x\r\n" % i for i in range(40))  # 16 s if the server waited
    ex = run(
        _exchange(
            limited.server,
            limited.ports[listener],
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n",
            lines,
            pace=0.4,
            deadline=HEADER_TIMEOUT + LINGER + 3 * SLACK,
            stop_when_answered=False,
        )
    )
    _assert_refused(ex, 408)
    assert ex.answered_after is not None and ex.answered_after < HEADER_TIMEOUT + SLACK, ex
    assert ex.closed_after is not None and ex.closed_after < HEADER_TIMEOUT + LINGER + SLACK, ex


@pytest.mark.parametrize("listener", LISTENERS)
def test_idle_connections_are_closed_by_the_server(limited: Limited, listener: str) -> None:
    """Connections that send nothing after the TLS handshake are closed within http_header_timeout."""

    async def idle() -> list[float | None]:
        return [
            ex.closed_after
            for ex in await asyncio.gather(
                *(
                    _exchange(limited.server, limited.ports[listener], b"", deadline=HEADER_TIMEOUT + 3 * SLACK)
                    for _ in range(10)
                )
            )
        ]

    closed = run(idle())
    assert all(c is not None and c < HEADER_TIMEOUT + SLACK for c in closed), closed


@pytest.mark.parametrize("listener", LISTENERS)
def test_tls_handshake_has_a_deadline(limited: Limited, listener: str) -> None:
    """A TCP connection that never sends its ClientHello is closed within http_header_timeout."""

    async def silent() -> float | None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        reader, writer = await asyncio.open_connection("127.0.0.1", limited.ports[listener])
        try:
            async with asyncio.timeout(HEADER_TIMEOUT + 3 * SLACK):
                await reader.read()
            return loop.time() - start
        except TimeoutError:
            return None
        except ConnectionError:
            return loop.time() - start
        finally:
            writer.transport.abort()

    closed = run(silent())
    assert closed is not None and closed < HEADER_TIMEOUT + SLACK, closed


@pytest.mark.parametrize("listener", LISTENERS)
def test_kept_alive_connection_is_closed_after_the_keep_alive_timeout(limited: Limited, listener: str) -> None:
    ex = run(
        _exchange(
            limited.server,
            limited.ports[listener],
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
            deadline=KEEP_ALIVE + 3 * SLACK,
        )
    )
    assert ex.status == 200, ex.reply[:200]
    assert ex.answered_after is not None and ex.closed_after is not None
    assert ex.closed_after - ex.answered_after < KEEP_ALIVE + SLACK, ex


@pytest.mark.parametrize("listener", LISTENERS)
def test_blank_lines_do_not_keep_a_connection_open(limited: Limited, listener: str) -> None:
    """After an answer, a client trickling CRLFs (which start no request) is still closed: a request
    head that has begun must be complete within http_header_timeout."""
    ex = run(
        _exchange(
            limited.server,
            limited.ports[listener],
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
            (b"\r\n" for _ in range(40)),
            pace=KEEP_ALIVE / 2,
            deadline=HEADER_TIMEOUT + KEEP_ALIVE + 3 * SLACK,
            stop_when_answered=False,
        )
    )
    assert ex.status == 200, ex.reply[:200]
    assert ex.closed_after is not None and ex.closed_after < HEADER_TIMEOUT + KEEP_ALIVE + SLACK, ex


@pytest.mark.parametrize("listener", LISTENERS)
def test_slow_body_is_cut_off_at_the_body_timeout(limited: Limited, listener: str) -> None:
    """A declared body trickling in (one byte per 0.4 s) is answered 408 within http_body_timeout."""
    head = (
        b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    ex = run(
        _exchange(
            limited.server,
            limited.ports[listener],
            head,
            (b"a" for _ in range(100)),
            pace=0.4,
            deadline=BODY_TIMEOUT + LINGER + 3 * SLACK,
            stop_when_answered=False,
        )
    )
    _assert_refused(ex, 408)
    assert ex.answered_after is not None and ex.answered_after < BODY_TIMEOUT + SLACK, ex
    assert ex.closed_after is not None and ex.closed_after < BODY_TIMEOUT + LINGER + SLACK, ex


def test_connections_beyond_the_cap_are_refused_and_closed(limited: Limited) -> None:
    """http_max_connections counts the connections of both listeners: beyond it a new connection is
    answered 503 with Retry-After and closed at once, and once the others are gone the server serves again."""

    async def crowd() -> tuple[list[Exchange], Exchange]:
        held = []
        for i in range(MAX_CONNECTIONS):  # idle connections, held open (they die at the header timeout)
            held.append(await _open(limited.server, limited.ports[LISTENERS[i % 2]]))
        extra = await asyncio.gather(
            *(
                _exchange(
                    limited.server,
                    limited.ports[listener],
                    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
                    deadline=SLACK,
                )
                for listener in LISTENERS
            )
        )
        for _, writer in held:
            writer.transport.abort()
        await asyncio.sleep(0.5)
        again = await _exchange(
            limited.server,
            limited.ports["main"],
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            deadline=5,
        )
        return extra, again

    extra, again = run(crowd())
    for ex in extra:
        _assert_refused(ex, 503, "temporarily_unavailable")
        assert ex.head.get("retry-after"), ex.head
        assert ex.closed_after is not None and ex.closed_after < SLACK, ex  # at once, no lingering
    assert again.status == 200, again.reply[:200]


def test_at_the_cap_an_idle_kept_alive_connection_makes_room(limited: Limited) -> None:
    """With the cap reached by connections idle between requests, a new client is served, not
    refused: one idle connection is closed to make room (as nginx reuses idle connections)."""

    async def scenario() -> tuple[list[int], float, Exchange, int]:
        loop = asyncio.get_running_loop()
        held = await asyncio.gather(
            *(_open(limited.server, limited.ports[LISTENERS[i % 2]]) for i in range(MAX_CONNECTIONS))
        )

        async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            return int(head.split(b" ", 2)[1])

        statuses = list(await asyncio.gather(*(ask(r, w) for r, w in held), return_exceptions=True))
        served = loop.time()
        extra = await _exchange(
            limited.server,
            limited.ports["main"],
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            deadline=5,
        )
        await asyncio.sleep(0.2)
        elapsed = loop.time() - served
        evicted = sum(1 for (r, _), st in zip(held, statuses, strict=True) if st == 200 and r.at_eof())
        for _, writer in held:
            writer.transport.abort()
        return [st if isinstance(st, int) else 0 for st in statuses], elapsed, extra, evicted

    statuses, elapsed, extra, evicted = run(scenario())
    assert statuses.count(200) >= MAX_CONNECTIONS - 5, statuses  # (a few slots may still be lingering)
    assert elapsed < KEEP_ALIVE, "too slow to tell eviction from the keep-alive timeout"
    assert extra.status == 200, extra.reply[:200]
    assert evicted >= 1


def test_malformed_request_gets_400_with_the_security_headers(limited: Limited) -> None:
    ex = run(_exchange(limited.server, limited.ports["main"], b"GARBAGE\r\n\r\n", deadline=LINGER + 3 * SLACK))
    _assert_refused(ex, 400)
    assert ex.closed_after is not None


# -- oversized heads ---------------------------------------------------------------------------


@pytest.mark.parametrize("listener", LISTENERS)
def test_huge_header_gets_431_without_buffering_it(limited: Limited, listener: str) -> None:
    """Four connections each sending one header field of up to 12 MiB: each is answered 431 after
    about http_max_header_bytes and closed; the server's memory grows by far less than was sent
    (an unbounded server buffers it all: 48 MiB and more)."""

    def attack() -> Iterator[bytes]:
        yield b"X-Big: "
        for _ in range(12 * 16):
            yield b"a" * (64 * 1024)

    async def four() -> list[Exchange]:
        return list(
            await asyncio.gather(
                *(
                    _exchange(
                        limited.server,
                        limited.ports[listener],
                        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n",
                        attack(),
                        pace=FLOOD_PACE,
                        deadline=10,
                    )
                    for _ in range(4)
                )
            )
        )

    exchanges, growth = run(_with_rss(limited.server.process.pid, four()))
    for ex in exchanges:
        _assert_refused(ex, 431)
        assert ex.answered_at is not None and ex.answered_at < 4 * MiB, ex.answered_at
        assert ex.closed_after is not None, "the server must close the connection"
    assert growth < 12 * MiB, f"server RSS grew by {growth / MiB:.1f} MiB"


@pytest.mark.parametrize("listener", LISTENERS)
def test_many_header_fields_get_431(limited: Limited, listener: str) -> None:
    fields = b"".join(b"X-Field-%05d: %s\r\n" % (i, b"v" * 40) for i in range(1000))  # ~60 KiB in all
    ex = run(
        _exchange(
            limited.server,
            limited.ports[listener],
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n",
            [fields, b"\r\n"],
            deadline=LINGER + 3 * SLACK,
        )
    )
    _assert_refused(ex, 431)
    assert ex.closed_after is not None


@pytest.mark.parametrize("listener", LISTENERS)
def test_one_long_header_line_gets_431(limited: Limited, listener: str) -> None:
    """A line longer than http_max_header_line_bytes (8 KiB) is refused even though the head is
    below http_max_header_bytes."""
    ex = run(
        _exchange(
            limited.server,
            limited.ports[listener],
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nCookie: " + b"c" * 10_000 + b"\r\n\r\n",
            deadline=LINGER + 3 * SLACK,
        )
    )
    _assert_refused(ex, 431)


@pytest.mark.parametrize("listener", LISTENERS)
def test_long_request_line_gets_414(limited: Limited, listener: str) -> None:
    ex = run(
        _exchange(
            limited.server,
            limited.ports[listener],
            b"GET /authorize?state=" + b"s" * 10_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
            deadline=LINGER + 3 * SLACK,
        )
    )
    _assert_refused(ex, 414)


def test_heads_within_the_limits_are_served(limited: Limited) -> None:
    """The limits do not refuse what a browser sends: a 6 KiB cookie and 12 KiB of header fields."""
    fields = b"".join(b"X-Field-%03d: %s\r\n" % (i, b"v" * 100) for i in range(60))
    ex = run(
        _exchange(
            limited.server,
            limited.ports["main"],
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nCookie: c="
            + b"c" * 6000
            + b"\r\n"
            + fields
            + b"Connection: close\r\n\r\n",
            deadline=5,
        )
    )
    assert ex.status == 200, ex.reply[:300]


# -- oversized bodies --------------------------------------------------------------------------

FORM = b"application/x-www-form-urlencoded"
DECLARED = 64 * MiB


def _body_pieces(total: int = DECLARED, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"a" * size


def _chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


def _post_head(path: str, ctype: bytes, framing: str, extra: bytes = b"") -> bytes:
    length = b"Transfer-Encoding: chunked\r\n" if framing == "chunked" else b"Content-Length: %d\r\n" % DECLARED
    return b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: %s\r\n%s%s\r\n" % (
        path.encode(),
        ctype,
        length,
        extra,
    )


def _assert_cut_off(ex: Exchange, growth: int) -> None:
    _assert_refused(ex, 413)
    # answered while the client was still sending: far less than the declared body went out
    assert ex.answered_at is not None and ex.answered_at < 8 * MiB, ex.answered_at
    assert ex.closed_after is not None and ex.answered_after is not None
    assert ex.closed_after - ex.answered_after < LINGER + SLACK, ex
    assert growth < 8 * MiB, f"server RSS grew by {growth / MiB:.1f} MiB"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/token", "/par", "/register", "/introspect"])
def test_huge_form_body_gets_413_while_it_is_sent(limited: Limited, path: str, framing: str) -> None:
    pieces = _body_pieces()
    ex, growth = run(
        _with_rss(
            limited.server.process.pid,
            _exchange(
                limited.server,
                limited.ports["main"],
                _post_head(path, FORM, framing),
                _chunked(pieces) if framing == "chunked" else pieces,
                pace=FLOOD_PACE,
                deadline=15,
            ),
        )
    )
    _assert_cut_off(ex, growth)


def test_unread_body_is_not_drained_forever(limited: Limited) -> None:
    """A route that answers without reading the body (here: no such page) and keeps the connection:
    the client goes on sending (RFC 9112 §9.3), the server drops the rest of a huge chunked body up to
    the body limit, then closes the connection."""
    pieces = _body_pieces()
    ex, growth = run(
        _with_rss(
            limited.server.process.pid,
            _exchange(
                limited.server,
                limited.ports["main"],
                _post_head("/no-such-page", FORM, "chunked"),
                _chunked(pieces),
                pace=FLOOD_PACE,
                deadline=15,
                stop_when_answered=False,
            ),
        )
    )
    assert ex.status == 404, ex.reply[:200]
    assert ex.closed_after is not None and ex.answered_after is not None
    assert ex.closed_after - ex.answered_after < LINGER + SLACK, ex
    assert growth < 8 * MiB, f"server RSS grew by {growth / MiB:.1f} MiB"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_huge_body_on_the_mtls_listener_gets_413(limited: Limited, framing: str) -> None:
    pieces = _body_pieces()
    ex, growth = run(
        _with_rss(
            limited.server.process.pid,
            _exchange(
                limited.server,
                limited.ports["mtls"],
                _post_head("/token", FORM, framing),
                _chunked(pieces) if framing == "chunked" else pieces,
                pace=FLOOD_PACE,
                deadline=15,
            ),
        )
    )
    _assert_cut_off(ex, growth)


@pytest.fixture(scope="module")
def payer(limited: Limited, tmp_path_factory: pytest.TempPathFactory) -> tuple[Fintech, str, dict]:
    fintech = Fintech(
        limited.server, tmp_path_factory.mktemp("limits-fintech"), "--authorization-details-type", "payment_initiation"
    )
    detail = payment_initiation("1.00")
    return fintech, fintech.token(detail, scope="openid payments"), detail


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_huge_payment_body_gets_413_before_it_is_read(
    limited: Limited, payer: tuple[Fintech, str, dict], framing: str
) -> None:
    """POST /bank/v1/payments with a valid DPoP-bound token: the 16 KiB limit holds while the body
    streams in (it is never read whole), in the bank's error format."""
    fintech, token, _detail = payer
    extra = b"Authorization: DPoP %s\r\nDPoP: %s\r\nIdempotency-Key: limits-%s\r\n" % (
        token.encode(),
        fintech.proof("/payments", token, method="POST").encode(),
        framing.encode(),
    )
    pieces = _body_pieces()
    ex, growth = run(
        _with_rss(
            limited.server.process.pid,
            _exchange(
                limited.server,
                limited.ports["main"],
                _post_head(PREFIX + "/payments", b"application/json", framing, extra),
                _chunked(pieces) if framing == "chunked" else pieces,
                pace=FLOOD_PACE,
                deadline=15,
            ),
        )
    )
    _assert_cut_off(ex, growth)
    assert ex.head.get("x-fapi-interaction-id"), ex.head  # the bank's own answer, with its headers


def test_payment_within_the_limit_still_pays(limited: Limited, payer: tuple[Fintech, str, dict]) -> None:
    fintech, token, detail = payer
    with limited.server.client() as http:
        resp = fintech.post(http, "/payments", token, payment_body(detail), key="limits-ok")
    assert resp.status_code == 201, resp.text


def test_server_is_still_healthy(limited: Limited) -> None:
    with limited.server.client() as http:
        assert http.get("/healthz").status_code == 200
