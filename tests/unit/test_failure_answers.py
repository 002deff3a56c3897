"""The one failure path of the AS and the bank (failures.ErrorBoundary with each one's answer): for
any exception a handler may raise, a complete response (503 temporarily_unavailable + Retry-After
for a store failure, 500 server_error otherwise) with the security headers (and the bank's
x-fapi-interaction-id), the exception never reaching the server (which would drop the connection),
and a log line that never carries a statement's parameters."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from types import SimpleNamespace
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from fingrade.bank.routes import bank_api
from fingrade.protocol.failures import ErrorBoundary, describe, is_store_failure
from fingrade.web.errors import render_failure
from fingrade.web.security_headers import SecurityHeaders

SECRET = "s3cr3t-parameter-value"


def _dbapi(cls: type[sa.DBAPIError], message: str) -> Exception:
    return cls(f"INSERT INTO t VALUES ('{SECRET}')", (SECRET,), sqlite3.OperationalError(message))


STORE_FAILURES = [
    lambda m: _dbapi(sa.OperationalError, m),
    lambda m: _dbapi(sa.InterfaceError, m),
    lambda m: _dbapi(sa.DBAPIError, m),
    lambda m: sa.TimeoutError(m),
    lambda m: redis_errors.ConnectionError(m),
    lambda m: redis_errors.TimeoutError(m),
    lambda m: redis_errors.BusyLoadingError(m),
    lambda m: redis_errors.ReadOnlyError(m),
    lambda m: ConnectionRefusedError(111, m),
    lambda m: OSError(28, m),
    # The hot paths' statements run on the drivers unwrapped (store/sql/direct.py).
    lambda m: sqlite3.OperationalError(m),
    lambda m: sqlite3.DatabaseError(m),
    lambda m: asyncpg.exceptions.ConnectionDoesNotExistError(m),
    lambda m: asyncpg.exceptions.CannotConnectNowError(m),
    lambda m: asyncpg.exceptions.ReadOnlySQLTransactionError(m),
    lambda m: asyncpg.exceptions.ConnectionFailureError(m),
    lambda m: asyncpg.InterfaceError(m),
    lambda m: TimeoutError(m),  # no pooled asyncpg connection came free in time
]
BUGS = [
    ValueError,
    KeyError,
    TypeError,
    RuntimeError,
    AttributeError,
    ZeroDivisionError,
    OverflowError,
    LookupError,
    NotImplementedError,
    RecursionError,
    AssertionError,
    orjson.JSONDecodeError,
]

failures = st.one_of(
    st.tuples(st.sampled_from(STORE_FAILURES), st.text(max_size=60)).map(lambda t: (t[0](t[1]), True)),
    st.tuples(st.sampled_from(BUGS), st.text(max_size=60)).map(
        lambda t: (t[0](t[1], "", 0) if t[0] is orjson.JSONDecodeError else t[0](t[1]), False)
    ),
)
accepts = st.sampled_from(["*/*", "application/json", "text/html,application/xhtml+xml;q=0.9", ""])


async def _call(app: Any, path: str, accept: str) -> tuple[int, dict[str, str], bytes]:
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"accept", accept.encode())] if accept else [],
        "http_version": "1.1",
        "scheme": "https",
        "server": ("bank.example", 443),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
        "app": SimpleNamespace(state=SimpleNamespace(core=SimpleNamespace(issuer="https://as.example.com"))),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # must not raise: a raise makes the server drop the connection
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert sent[-1]["type"] == "http.response.body" and not sent[-1].get("more_body"), "incomplete response"
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


def _raising(exc: Exception) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise exc

    return app


def _check(status: int, headers: dict[str, str], body: bytes, store: bool, page: bool) -> None:
    assert status == (503 if store else 500)
    assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "no-store" in headers["cache-control"]
    assert ("retry-after" in headers) is store
    error = "temporarily_unavailable" if store else "server_error"
    if page:
        assert headers["content-type"].startswith("text/html") and error.encode() in body
    else:
        assert orjson.loads(body)["error"] == error


@settings(max_examples=60, deadline=None)
@given(failure=failures, accept=accepts)
def test_as_answers_every_failure_completely(failure: tuple[Exception, bool], accept: str) -> None:
    exc, store = failure
    assert is_store_failure(exc) is store
    app = SecurityHeaders(ErrorBoundary(_raising(exc), render=render_failure), hsts=True)
    status, headers, body = asyncio.run(_call(app, "/token", accept))
    _check(status, headers, body, store, page="text/html" in accept)


@settings(max_examples=60, deadline=None)
@given(failure=failures)
def test_bank_answers_every_failure_completely_in_its_format(failure: tuple[Exception, bool]) -> None:
    exc, store = failure
    api, mounted = bank_api()

    async def boom(request: Any) -> Any:
        raise exc

    api.router.routes.append(Route("/boom", boom))
    app = SecurityHeaders(mounted, hsts=True)
    status, headers, body = asyncio.run(_call(app, "/boom", "text/html"))
    _check(status, headers, body, store, page=False)  # an API: JSON whatever the Accept header
    assert headers["x-fapi-interaction-id"]


@settings(max_examples=50, deadline=None)
@given(failure=failures)
def test_the_log_line_never_holds_statement_parameters(failure: tuple[Exception, bool]) -> None:
    exc, store = failure
    if store:
        assert SECRET not in describe(exc)


def test_a_failure_after_the_response_started_is_raised_so_the_server_ends_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing else would tell the client that the body it got is cut short."""

    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ValueError("late")

    with caplog.at_level(logging.ERROR), pytest.raises(ValueError):
        asyncio.run(_call(ErrorBoundary(half, render=render_failure), "/x", ""))
    assert caplog.text.count("unhandled error") == 1


@settings(max_examples=40, deadline=None)
@given(path=st.text(min_size=1, max_size=300), failure=failures)
def test_the_log_line_is_one_line_whatever_the_path(path: str, failure: tuple[Exception, bool]) -> None:
    """The path is the client's text (percent-decoded): it must not start a forged log line."""
    exc, _ = failure
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("fingrade.protocol.failures.test")
    logger.addHandler(handler)
    try:
        asyncio.run(_call(ErrorBoundary(_raising(exc), render=render_failure, logger=logger), "/" + path, ""))
    finally:
        logger.removeHandler(handler)
    (record,) = records
    message = record.getMessage()
    assert "\n" not in message and "\r" not in message and len(message) < 700
