"""The request head limits of web/connection_limits.py, for every way a head can be cut into reads:
a head within the limits is served, a head over them is refused (431, or 414 for the request line,
RFC 6585 §5 / RFC 9110 §15.5.15), and never later than one read or two past the limit. The protocol
is driven directly (no socket); the real server is tested in tests/security/test_slow_and_big_clients.py."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.config import Config
from uvicorn.server import ServerState

from fingrade.web.connection_limits import ConnectionLimits, LimitedHttpToolsProtocol, OpenConnections

MAX_HEAD = 2048
MAX_LINE = 512
SLACK = 32  # the request line's fixed parts ("GET ", " HTTP/1.1\r\n") and the blank line are not counted as parsed


class Transport:
    """What the protocol needs of an asyncio transport, recording what it writes."""

    def __init__(self) -> None:
        self.written = b""
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8443), "peername": ("127.0.0.1", 50000)}.get(name, default)


async def _app(scope: Any, receive: Any, send: Any) -> None:
    pass


def _feed(head: bytes, cuts: list[int]) -> tuple[Transport, int, bool]:
    """Feed `head` in reads of the sizes in `cuts` (cycled); (transport, bytes fed, served)."""
    loop = asyncio.new_event_loop()
    try:
        config = Config(_app, http=LimitedHttpToolsProtocol, ws="none", lifespan="off", log_level="warning")
        config.load()
        state = ServerState()
        limits = ConnectionLimits(
            max_header_bytes=MAX_HEAD,
            max_header_line_bytes=MAX_LINE,
            header_timeout=10,
            body_timeout=10,
            max_body_bytes=65536,
            answer_headers=b"",
        )
        proto = LimitedHttpToolsProtocol(config, state, {}, loop, limits=limits, connections=OpenConnections(10))
        transport = Transport()
        proto.connection_made(transport)  # type: ignore[arg-type]
        fed = i = 0
        while fed < len(head) and not transport.written:  # until the head is in, or answered
            size = cuts[i % len(cuts)]
            proto.data_received(head[fed : fed + size])
            fed += size
            i += 1
        served = proto.cycle is not None
        for task in state.tasks:
            task.cancel()
        proto.connection_lost(None)
        loop.run_until_complete(asyncio.sleep(0))
        return transport, min(fed, len(head)), served
    finally:
        loop.close()


field_st = st.tuples(st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True), st.integers(0, 700))


@settings(max_examples=150, deadline=None)
@given(
    target=st.integers(1, 700),
    fields=st.lists(field_st, max_size=30),
    cuts=st.lists(st.integers(1, 600), min_size=1, max_size=8),
)
def test_any_head_in_any_reads_is_served_or_refused_within_bounds(
    target: int, fields: list[tuple[str, int]], cuts: list[int]
) -> None:
    line = b"GET /" + b"p" * target + b" HTTP/1.1\r\n"
    lines = [b"Host: localhost\r\n"] + [f"{n}: ".encode() + b"v" * size + b"\r\n" for n, size in fields]
    head = line + b"".join(lines) + b"\r\n"
    transport, fed, served = _feed(head, cuts)
    too_long_target = len(b"/" + b"p" * target) > MAX_LINE
    too_long_field = any(len(x) > MAX_LINE for x in lines)
    if served:
        assert not transport.written
        assert not too_long_target and not too_long_field
        assert len(head) <= MAX_HEAD + SLACK
    else:
        status = int(transport.written.split(b" ", 2)[1])
        if too_long_target:
            assert status == 414
        else:
            assert status == 431
            assert too_long_field or len(head) > MAX_HEAD
        # refused no later than the limit plus the first and the last read
        assert fed <= MAX_HEAD + 2 * max(cuts) + SLACK
    if len(head) <= MAX_HEAD and not too_long_target and not too_long_field:
        assert served  # never a false refusal


def test_an_endless_header_field_is_refused_after_the_limit() -> None:
    head = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (1024 * 1024)
    transport, fed, served = _feed(head, [1000])
    assert not served and transport.written.startswith(b"HTTP/1.1 431 ")
    assert fed <= MAX_HEAD + 2000
