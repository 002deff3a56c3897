"""What one connection may cost, enforced where the bytes arrive: uvicorn's httptools protocol,
subclassed (docs/architecture.md, "Connection limits"). Both listeners use it.

- Head size: the request line and header fields of one request are counted as they are parsed, and
  so are the raw bytes of a head still unfinished (httptools holds a header field until its end).
  Over `max_header_line_bytes` a request line is 414, a header field 431; over `max_header_bytes` the
  head is 431 (RFC 9110 §15.5.15, RFC 6585 §5). At most the limit plus one read is ever held.
- Head time: a head must be complete `header_timeout` seconds after the connection was made (after
  the TLS handshake, which has the same deadline: web/server.py) or after its first byte arrived;
  else 408 (or, if nothing came, a silent close).
- Body time: the body must be complete `body_timeout` seconds after its head; else 408.
- After an answer given before the body was read (an early 4xx), the rest of the body is dropped up
  to `max_body_bytes`, then the connection is closed.
- Connections: at most `max_connections` per process, both listeners together. At the cap, an idle
  kept-alive connection makes room (as nginx reuses them); if there is none, 503 and close.
- Closing with request bytes still unread makes the kernel send a reset that can destroy the answer
  before the client reads it. So a connection closed in mid-request is closed gracefully: the answer,
  then (plain TCP) a FIN, then what still arrives is dropped for LINGER_SECONDS (lingering close).

Answers the protocol writes itself (400, 408, 413 is the application's, 414, 431, 503) are short JSON
with `Connection: close`, `Cache-Control: no-store` and the security headers every answer has.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from fingrade.config import Settings
from fingrade.web.security_headers import BASE_CSP, floor_headers

log = logging.getLogger("fingrade.web")

LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int
    max_header_line_bytes: int
    header_timeout: float
    body_timeout: float
    max_body_bytes: int
    answer_headers: bytes  # the security headers of the protocol's own answers, as raw header lines

    @classmethod
    def from_settings(cls, s: Settings) -> ConnectionLimits:
        headers = [*floor_headers(s.issuer.startswith("https://")), (b"content-security-policy", BASE_CSP.encode())]
        return cls(
            max_header_bytes=s.http_max_header_bytes,
            max_header_line_bytes=s.http_max_header_line_bytes,
            header_timeout=s.http_header_timeout,
            body_timeout=s.http_body_timeout,
            max_body_bytes=s.http_max_body_bytes,
            answer_headers=b"".join(name + b": " + value + b"\r\n" for name, value in headers),
        )


class OpenConnections:
    """The process's open connections, shared by its listeners."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.live: set[LimitedHttpToolsProtocol] = set()

    def admit(self, conn: LimitedHttpToolsProtocol) -> bool:
        if len(self.live) >= self.limit and not self._evict_idle():
            return False
        self.live.add(conn)
        return True

    def _evict_idle(self) -> bool:
        for conn in self.live:
            if conn.idle():
                self.live.discard(conn)
                conn.transport.close()
                return True
        return False


class HeadTooLarge(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


class _CycleTransport:
    """The transport as uvicorn's request cycle sees it: closing it after an answer is graceful when
    the request was not read to its end."""

    def __init__(self, protocol: LimitedHttpToolsProtocol) -> None:
        self._protocol = protocol
        transport = protocol.transport
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info

    def close(self) -> None:
        self._protocol.close_after_answer()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
        connections: OpenConnections,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.open_connections = connections
        self._deadline: asyncio.TimerHandle | None = None  # of the head or of the body being read
        self._linger: asyncio.TimerHandle | None = None
        self._in_body = False  # between the end of a head and the end of its body
        self._head_begun = False  # a head has begun and is not complete
        self._messages = 0
        self._head_raw = 0  # bytes of reads that were wholly inside the unfinished head
        self._head_parsed = 0  # request line and header fields parsed so far
        self._dropped = 0  # body bytes dropped after an early answer
        self._closing = False  # answered and closing: what still arrives is dropped

    # -- connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's: a stream
        super().connection_made(transport)
        self._cycle_transport = _CycleTransport(self)
        if not self.open_connections.admit(self):
            # Closed at once, not gracefully: a refused connection must not hold a socket either.
            self._refuse(503, "too many connections; try again", "temporarily_unavailable", retry_after=True)
            self.transport.close()
            return
        self._arm(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._linger is not None:
            self._linger.cancel()
        self.open_connections.live.discard(self)
        super().connection_lost(exc)

    def idle(self) -> bool:
        """Kept alive between requests with nothing under way: may be closed to make room."""
        return self.timeout_keep_alive_task is not None and not self._closing

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # answered: what still arrives is dropped until the close
        self._unset_keepalive_if_required()
        if not self._in_body and self._deadline is None:
            self._arm(self.limits.header_timeout, self._head_timed_out)  # bytes of a next head (even blank lines)
        begun, messages = self._head_begun, self._messages
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no protocol upgrades here (no WebSocket): the request is answered as plain HTTP
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse(exc.__context__.status, exc.__context__.description)
            else:
                log.debug("invalid HTTP request: %s", exc)
                self._refuse(400, "the request is not valid HTTP/1.1")
            return
        if self._in_body and self._deadline is None:
            self._arm(self.limits.body_timeout, self._body_timed_out)
        elif begun and self._head_begun and messages == self._messages:
            self._head_raw += len(data)  # the whole read is part of one unfinished head, held by the parser
            if self._head_raw > self.limits.max_header_bytes:
                self._refuse(431, "the request header fields are too large")

    # -- parser callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._messages += 1
        self._head_begun = True
        self._head_raw = self._head_parsed = 0
        if self._deadline is None:  # a pipelined head after a complete request
            self._arm(self.limits.header_timeout, self._head_timed_out)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_parsed += len(url)
        if len(self.url) > self.limits.max_header_line_bytes:
            raise HeadTooLarge(414, "the request target is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 4
        if size > self.limits.max_header_line_bytes:
            raise HeadTooLarge(431, "a request header field is too large")
        self._head_parsed += size
        if self._head_parsed > self.limits.max_header_bytes:
            raise HeadTooLarge(431, "the request header fields are too large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_begun = False
        self._in_body = True
        self._disarm()
        self._dropped = 0
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = self._cycle_transport  # type: ignore[assignment]  # a Transport by duck typing

    def on_body(self, body: bytes) -> None:
        if self.cycle.response_complete:  # answered without reading it: drop, up to the limit
            self._dropped += len(body)
            if self._dropped > self.limits.max_body_bytes:
                self._close_gracefully()
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if not self._closing:
            super().on_response_complete()

    # -- deadlines -------------------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a next head is late while an answer is under way: that answer is the last
        elif self._head_begun:
            self._refuse(408, "the request head did not arrive in time")
        else:
            self.transport.close()  # nothing (or only blank lines) came: nobody to answer

    def _body_timed_out(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if self.flow.read_paused:  # the application has not read what came: not the client's delay
            self._arm(self.limits.body_timeout, self._body_timed_out)
        elif cycle.response_complete:  # answered without the body, which does not come in time either
            self._close_gracefully()
        elif cycle.response_started:
            cycle.keep_alive = False
        else:
            self._refuse(408, "the request body did not arrive in time")

    # -- answers and closing ---------------------------------------------------------------------

    def _refuse(self, status: int, description: str, error: str = "invalid_request", retry_after: bool = False) -> None:
        """Answer `status` from here and close. If the fault is in the body of the request under way,
        its application sees the client gone; if it is in a later (pipelined) request, or an answer has
        begun, the answer under way is finished first and the connection closed after it instead."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.disconnected:
            if self._in_body and not cycle.response_started:
                cycle.disconnected = True  # its application reading the body gets http.disconnect
                cycle.message_event.set()
            else:
                cycle.keep_alive = False
                self._closing = True
                return
        body = orjson.dumps({"error": error, "error_description": description})
        head = [STATUS_LINE[status]]
        head.extend(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
        head.append(b"cache-control: no-store\r\nconnection: close\r\n")
        if retry_after:
            head.append(b"retry-after: 1\r\n")
        head.extend((self.limits.answer_headers, b"\r\n", body))
        self.transport.write(b"".join(head))
        self._close_gracefully()

    def close_after_answer(self) -> None:
        """The request cycle closes the connection after its answer (Connection: close)."""
        if self._in_body or self._head_begun:
            self._close_gracefully()  # request bytes may still be on their way
        else:
            self.transport.close()

    def _close_gracefully(self) -> None:
        if self._closing and self._linger is not None or self.transport.is_closing():
            return
        self._closing = True
        self._disarm()
        if self.transport.can_write_eof():
            self.transport.write_eof()  # plain TCP: the client sees the end of the answer at once
        self.flow.resume_reading()
        self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)
