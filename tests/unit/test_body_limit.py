"""Request body limits (body_limit.py): every route has one, checked before the route runs when the
length is declared and while the body streams when it is not (RFC 9110 §15.5.14: 413). The real
server's behaviour (answer while the client sends, connection closed, memory) is in
tests/security/test_slow_and_big_clients.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from fingrade.bank.server import create_bank_server
from fingrade.config import load_settings
from fingrade.protocol.body_limit import BodyLimit, BodyLimits, BodyTooLarge, read_body


def test_limit_of_a_path() -> None:
    limits = BodyLimits(1000, routes=(("/small", 100), ("/big", 5000)), delegated=("/bank/v1",))
    assert limits.for_path("/token") == 1000
    assert limits.for_path("/small") == limits.for_path("/small/x") == 100
    assert limits.for_path("/smaller") == 1000  # a prefix is a whole path segment
    assert limits.for_path("/big") == 1000  # a route never exceeds the deployment's cap
    assert limits.for_path("/bank/v1/payments") is None  # the bank API limits its own bodies


def _app(reads: list[int]) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()  # no limit of its own: the middleware's holds
        reads.append(len(body))
        return Response(b"ok")

    async def own(request: Request) -> Response:
        try:
            body = await read_body(request, 10)
        except BodyTooLarge:
            return Response(b"own 413", 413)
        return Response(body)

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/own", own, methods=["POST"])])
    app.add_middleware(
        BodyLimit,
        limits=BodyLimits(100),
        too_large=lambda: Response(b'{"error":"invalid_request"}', 413, media_type="application/json"),
    )
    return app


def _post(app: Starlette, *requests: tuple[str, object]) -> list[httpx.Response]:
    """POST each (path, content) in turn, in process (httpx's ASGI transport)."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://as.example") as http:
            return [
                await http.post(path, content=content, headers={"content-type": "application/json"})  # type: ignore[arg-type]
                for path, content in requests
            ]

    return asyncio.run(run())


async def _pieces(n: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield b"a" * 30


def test_declared_length_over_the_limit_refused_before_the_route_runs() -> None:
    reads: list[int] = []
    over, within = _post(_app(reads), ("/echo", b"a" * 101), ("/echo", b"a" * 100))
    assert over.status_code == 413 and over.json() == {"error": "invalid_request"}
    assert over.headers["connection"] == "close"
    assert within.status_code == 200
    assert reads == [100]


def test_streamed_body_cut_off_past_the_limit() -> None:
    reads: list[int] = []
    over, within = _post(_app(reads), ("/echo", _pieces(4)), ("/echo", _pieces(3)))  # no Content-Length
    assert over.status_code == 413 and over.headers["connection"] == "close"
    assert within.status_code == 200
    assert reads == [90]


@pytest.mark.parametrize("streamed", [False, True])
def test_a_route_with_a_lower_limit_answers_in_its_own_format(streamed: bool) -> None:
    (resp,) = _post(_app([]), ("/own", _pieces(1) if streamed else b"a" * 11))
    assert resp.status_code == 413 and resp.text == "own 413"


@pytest.mark.parametrize("value", ["1e3", "-1", "²", "1, 1"])
def test_content_length_that_is_not_a_plain_number_refused(value: str) -> None:
    async def call() -> list[dict]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/echo",
            "headers": [(b"content-length", value.encode())],
            "query_string": b"",
            "root_path": "",
        }
        await _app([])(scope, receive, send)
        return sent

    assert asyncio.run(call())[0]["status"] == 413


def test_role_bank_has_the_bank_limit_and_error_format() -> None:
    """`fingrade serve --role bank`: the bank API alone has its 16 KiB limit, in its error format."""
    settings = load_settings(
        overrides={
            "role": "bank",
            "bank_issuer": "https://as.example",
            "bank_client_id": "rs",
            "bank_client_secret": "secret",
            "data_dir": "/nonexistent",
        },
        environ={},
    )
    (resp,) = _post(create_bank_server(settings), ("/bank/v1/payments", b"{" + b" " * (16 * 1024) + b"}"))
    assert resp.status_code == 413
    assert resp.json() == {"error": "invalid_request", "error_description": "the request body is too large"}
    assert resp.headers["cache-control"] == "no-store" and resp.headers["x-fapi-interaction-id"]


@settings(max_examples=100, deadline=None)
@given(pieces=st.lists(st.integers(0, 60), max_size=12), declared=st.booleans())
def test_any_body_in_any_pieces_is_read_whole_or_refused(pieces: list[int], declared: bool) -> None:
    """Whatever the pieces, a body within the limit (100) reaches the route whole, a larger one is
    413 and the route never holds more than the limit plus one piece."""
    seen: list[int] = []

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            seen.append(size)
            if not message.get("more_body"):
                break
        await Response(b"ok")(scope, receive, send)

    async def call() -> int:
        chunks = [b"a" * n for n in pieces] or [b""]
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
        sent: list[dict] = []

        async def receive() -> dict:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        headers = [(b"content-length", str(sum(pieces)).encode())] if declared else [(b"transfer-encoding", b"chunked")]
        scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
        await BodyLimit(route, BodyLimits(100), lambda: Response(b"too large", 413))(scope, receive, send)
        return sent[0]["status"]

    status = asyncio.run(call())
    if sum(pieces) <= 100:
        assert status == 200 and seen[-1] == sum(pieces)
    else:
        assert status == 413
        assert not seen or seen[-1] <= 100 + max(pieces)
        assert not declared or not seen  # a declared length over the limit never reaches the route
