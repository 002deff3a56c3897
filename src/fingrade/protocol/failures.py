"""What a server answers when something fails that the request did not cause, shared by the
authorization server (web/) and the bank's resource server (bank/):

- a store that cannot be used now (PostgreSQL or Redis unreachable or restarting, SQLite on a full
  or read-only disk, a pool with no free connection): 503 `temporarily_unavailable` with
  `Retry-After` (RFC 6749 §4.1.2.1, RFC 9110 §10.2.3). The transaction was rolled back, so nothing
  was half written, and the client may retry;
- anything else (a bug): 500 `server_error`, with one logged traceback.

`ErrorBoundary` is the one place both are turned into a response. It sits inside the middlewares
that add headers (security headers, the bank's x-fapi-interaction-id), so error responses carry
them too, and it does not re-raise: Starlette's own ServerErrorMiddleware re-raises after sending
its 500, and uvicorn then closes the keep-alive connection the client would retry on.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # it ships no type information
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("fingrade.protocol.failures")

RETRY_AFTER = "2"  # seconds: a restart or failover of a store takes about that long to be noticed

# DBAPIError: every database error as the driver reports it (SQLite "database or disk is full",
# "attempt to write a readonly database", a PostgreSQL connection lost or refused by the server);
# OSError: a connection refused before the driver is involved; PoolTimeout: no pooled connection
# came free in time; RedisError: Redis unreachable, loading, read-only or out of memory. The hot
# paths' statements run on the drivers themselves (store/sql/direct.py), whose errors are not
# wrapped: sqlite3.Error, and asyncpg's PostgresError (server errors, lost connections) and
# InterfaceError (a connection closed under it). A pool that has no connection free in time raises
# TimeoutError, an OSError.
STORE_ERRORS: tuple[type[BaseException], ...] = (
    DBAPIError,
    PoolTimeout,
    RedisError,
    OSError,
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def is_store_failure(exc: BaseException) -> bool:
    return isinstance(exc, STORE_ERRORS)


def describe(exc: BaseException) -> str:
    """One line for the log that says what failed without the statement or its parameters (a
    DBAPIError's text holds both): the exception type and the driver's own first line."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    text = lines[0][:200] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def report(logger: logging.Logger, scope: Scope, exc: Exception) -> bool:
    """Log a failure the request did not cause, once: a store failure in one line, anything else
    with its traceback. True for a store failure."""
    # The path is the client's text: escaped (no line breaks into the log) and cut short.
    where = f"{scope.get('method', '')} {ascii(str(scope.get('path', '')))[1:-1][:200]}"
    store = is_store_failure(exc)
    if store:
        logger.error("store unavailable on %s: %s", where, describe(exc))
    else:
        logger.error("unhandled error on %s", where, exc_info=exc)
    return store


# What the application answers: (request, store_failure) -> response. Called only before any part
# of a response was sent.
Render = Callable[[Request, bool], Response]


class ErrorBoundary:
    """Pure ASGI middleware: an exception from the application becomes a complete 503 or 500
    response from `render`, logged once (a store failure in one line, anything else with its
    traceback), and is not raised further, so the server keeps the connection open.

    If the response had already started, it cannot be replaced: the exception is raised on, and the
    server closes the connection, the only honest end of a truncated response."""

    def __init__(self, app: ASGIApp, render: Render, logger: logging.Logger = log) -> None:
        self.app = app
        self.render = render
        self.log = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except ClientDisconnect:
            return  # the client went away while sending its body: nobody to answer, nothing broken
        except Exception as exc:
            store = report(self.log, scope, exc)
            if started:
                raise
            response = self.render(Request(scope, receive), store)
            await response(scope, receive, send)


def unavailable_headers(extra: dict[str, Any] | None = None) -> dict[str, str]:
    return {"Cache-Control": "no-store", "Retry-After": RETRY_AFTER, **(extra or {})}
