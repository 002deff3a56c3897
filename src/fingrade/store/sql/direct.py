"""Hot-path SQL straight on the database driver: `sqlite3` (its statement cache) or an `asyncpg`
pool (prepared statements per connection).

SQLAlchemy keeps the schema, the migrations and the cold paths. On the per-request paths its
per-call machinery (pool checkout, autobegin, execution context, reset on return) cost several
times the statement itself: 55-100 µs through `Database._run` against 3-35 µs on the driver with a
cached prepared statement (docs/performance.md). So the statements a token request, PAR or an
authorization runs are written once as text here and run on the driver.

A statement is written once for both databases with `:name` placeholders; `Statement` numbers them
in order of first appearance (`?1` for SQLite, `$1` for PostgreSQL), and a call passes the values
by name. Only SQL that both databases read the same way belongs here (upserts with ON CONFLICT,
RETURNING; SQLite >= 3.35).

Transactions: `transaction()` gives a `DirectSql` whose statements run in one transaction (SQLite:
BEGIN IMMEDIATE, the write lock up front as db.py does; PostgreSQL: one pooled connection). On
SQLite every statement runs synchronously on the event loop, so a transaction's body must await
nothing but its own statements: then no other request can run between its BEGIN and its COMMIT on
the one shared connection (a nested BEGIN is refused, never silently merged).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]  # it ships no type information

_PLACEHOLDER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Statement:
    """One SQL statement, numbered for both drivers once at import time."""

    __slots__ = ("names", "pg", "sqlite")

    def __init__(self, text: str) -> None:
        names: list[str] = []

        def number(style: str) -> Any:
            def sub(m: re.Match[str]) -> str:
                if m.group(1) not in names:
                    names.append(m.group(1))
                return f"{style}{names.index(m.group(1)) + 1}"

            return sub

        text = " ".join(text.split())
        self.sqlite = _PLACEHOLDER.sub(number("?"), text)
        self.pg = _PLACEHOLDER.sub(number("$"), text)
        self.names = tuple(names)

    def args(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(params[name] for name in self.names)


Row = tuple[Any, ...]


class DirectSql(Protocol):
    """What the hot paths of the stores run statements with."""

    async def one(self, stmt: Statement, **params: Any) -> Row | None:
        """The first row, or None."""

    async def all(self, stmt: Statement, **params: Any) -> list[Row]: ...

    async def run(self, stmt: Statement, **params: Any) -> int:
        """Execute; the number of rows changed."""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[DirectSql]:
        """The statements run on what this yields form one transaction, committed when the block
        ends without an exception and rolled back otherwise."""


class Traced:
    """Observers of the statements sent (tests and bench/serve_counted.py count them); empty in service."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[str], None]] = []

    def _trace(self, sql: str) -> None:
        for listener in self.listeners:
            listener(sql)


class SqliteDirect(Traced):
    """Statements on the one sqlite3 connection of the process (shared with SQLAlchemy's StaticPool,
    so both see one connection state). sqlite3 caches the prepared statement per SQL text."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        super().__init__()
        self._connect = connect
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        if self.listeners:
            self._trace(sql)
        return self.conn.execute(sql, args)

    async def one(self, stmt: Statement, **params: Any) -> Row | None:
        row: Row | None = self._execute(stmt.sqlite, stmt.args(params)).fetchone()
        return row

    async def all(self, stmt: Statement, **params: Any) -> list[Row]:
        return self._execute(stmt.sqlite, stmt.args(params)).fetchall()

    async def run(self, stmt: Statement, **params: Any) -> int:
        return self._execute(stmt.sqlite, stmt.args(params)).rowcount

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[DirectSql]:
        if self.conn.in_transaction:
            # Another request's transaction is open on the shared connection: its body awaited
            # something that suspended. Merging into it would commit or roll back the wrong work.
            raise RuntimeError("a direct SQLite transaction is already open on this connection")
        self._execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self._execute("ROLLBACK")
            raise
        self._execute("COMMIT")


class PgDirect(Traced):
    """Statements on an asyncpg pool, opened on first use (it needs the running loop); asyncpg
    prepares and caches each statement per connection. A statement outside a transaction runs in
    autocommit, atomic on its own."""

    def __init__(self, dsn: str, size: int, connect_timeout: float, acquire_timeout: float) -> None:
        super().__init__()
        self.dsn = dsn
        self.size = size
        self.connect_timeout = connect_timeout
        self.acquire_timeout = acquire_timeout
        self._pool: Any = None
        self._opening: asyncio.Lock | None = None

    async def _acquire(self) -> Any:
        if self._pool is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._pool is None:
                    # min_size=0: connections are opened on demand, so the pool has no background task
                    # reconnecting during a database outage (each request fails fast with a 503 instead).
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=0, max_size=self.size, timeout=self.connect_timeout
                    )
        # A pool with no free connection in time is a store failure (TimeoutError, a 503), not a hang.
        return self._pool.acquire(timeout=self.acquire_timeout)

    async def one(self, stmt: Statement, **params: Any) -> Row | None:
        async with await self._acquire() as conn:
            return await _PgConnection(conn, self).one(stmt, **params)

    async def all(self, stmt: Statement, **params: Any) -> list[Row]:
        async with await self._acquire() as conn:
            return await _PgConnection(conn, self).all(stmt, **params)

    async def run(self, stmt: Statement, **params: Any) -> int:
        async with await self._acquire() as conn:
            return await _PgConnection(conn, self).run(stmt, **params)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[DirectSql]:
        async with await self._acquire() as conn:
            if self.listeners:
                self._trace("BEGIN")
            async with conn.transaction():
                yield _PgConnection(conn, self)
            if self.listeners:
                self._trace("COMMIT")

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


class _PgConnection:
    def __init__(self, conn: Any, owner: Traced) -> None:
        self.conn = conn
        self.owner = owner

    async def one(self, stmt: Statement, **params: Any) -> Row | None:
        if self.owner.listeners:
            self.owner._trace(stmt.pg)
        row = await self.conn.fetchrow(stmt.pg, *stmt.args(params))
        return tuple(row) if row is not None else None

    async def all(self, stmt: Statement, **params: Any) -> list[Row]:
        if self.owner.listeners:
            self.owner._trace(stmt.pg)
        return [tuple(r) for r in await self.conn.fetch(stmt.pg, *stmt.args(params))]

    async def run(self, stmt: Statement, **params: Any) -> int:
        if self.owner.listeners:
            self.owner._trace(stmt.pg)
        return _rowcount(await self.conn.execute(stmt.pg, *stmt.args(params)))

    def transaction(self) -> contextlib.AbstractAsyncContextManager[DirectSql]:
        raise RuntimeError("direct transactions do not nest")


def _rowcount(status: str) -> int:
    """asyncpg's command tag ("UPDATE 1", "INSERT 0 1", "DELETE 3"): its last number."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0
