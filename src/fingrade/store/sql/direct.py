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
a savepoint in the group commit below; PostgreSQL: one pooled connection). On SQLite every statement
runs synchronously on the event loop, so a transaction's body must await nothing but its own
statements: then no other request can run between its first statement and its last on the one
shared connection (a statement from elsewhere while it is open is refused, never silently merged).

Group commit (SQLite): a write does not commit on its own. The first write opens a transaction
(BEGIN IMMEDIATE, the write lock up front as db.py does); every statement that runs before the event
loop gets round to the commit joins it, and each caller gets its result only after that COMMIT. So
nothing is acknowledged before it is durable, as with one commit per statement, but under load one
commit (its WAL frames, the WAL index, the pages a b-tree shares) serves many requests' writes. A
read while a group is open waits for the commit too: no answer rests on rows that might yet be
rolled back. A failed COMMIT fails every statement of the group (each request answers 503).
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

    __slots__ = ("names", "pg", "sqlite", "writes")

    def __init__(self, text: str) -> None:
        names: list[str] = []

        def number(style: str) -> Any:
            def sub(m: re.Match[str]) -> str:
                if m.group(1) not in names:
                    names.append(m.group(1))
                return f"{style}{names.index(m.group(1)) + 1}"

            return sub

        text = " ".join(text.split())
        # Anything but a plain SELECT changes rows (INSERT, UPDATE, DELETE, an upsert; WITH ... too).
        self.writes = text.split(" ", 1)[0].upper() != "SELECT"
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


class _Group:
    """The open group commit: the futures of the callers waiting for its COMMIT."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[asyncio.Future[None]] = []

    def settle(self, error: BaseException | None) -> None:
        for waiter in self.waiters:
            if waiter.done():  # its caller was cancelled
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)


class SqliteDirect(Traced):
    """Statements on the one sqlite3 connection of the process (shared with SQLAlchemy's StaticPool,
    so both see one connection state). sqlite3 caches the prepared statement per SQL text. Writes are
    committed in groups (the module's docstring)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        super().__init__()
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._group: _Group | None = None
        self._in_transaction = False  # a transaction() block is open (its savepoint)
        self._view = _SqliteTransaction(self)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        if self.listeners:
            self._trace(sql)
        return self.conn.execute(sql, args)

    def _statement(self, stmt: Statement, params: dict[str, Any]) -> sqlite3.Cursor:
        """Runs one statement in the open group (opening it for a write)."""
        if stmt.writes and self._group is None:
            self._open_group()
        try:
            return self._execute(stmt.sqlite, stmt.args(params))
        except sqlite3.Error as exc:
            # A failed statement is undone on its own, but some errors (a full disk, an I/O error)
            # roll back the whole transaction: then the group's earlier statements are gone too.
            if self._group is not None and not self.conn.in_transaction:
                group, self._group = self._group, None
                group.settle(exc)
            raise

    def _open_group(self) -> None:
        if self.conn.in_transaction:
            # A transaction opened past this class (SQLAlchemy flushes the group before it runs):
            # joining it would commit or roll back somebody else's work.
            raise RuntimeError("a transaction is already open on the shared SQLite connection")
        self._execute("BEGIN IMMEDIATE")
        self._group = _Group()
        asyncio.get_running_loop().call_soon(self._commit_group)

    def _commit_group(self) -> None:
        if self._in_transaction:
            # A transaction() block is open (its body suspended, against the rule): the group waits
            # for it rather than commit half of it.
            asyncio.get_running_loop().call_soon(self._commit_group)
            return
        self.flush()

    def flush(self) -> None:
        """Commits the open group now: before anything else runs a transaction on the connection
        (SQLAlchemy's cold paths), and when the loop gets round to it."""
        group, self._group = self._group, None
        if group is None:
            return
        if self._in_transaction:
            self._group = group
            raise RuntimeError("a direct SQLite transaction is open: its body must not await other work")
        try:
            if self.conn.in_transaction:
                self._execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                if self.conn.in_transaction:
                    self._execute("ROLLBACK")
            group.settle(exc)
            return
        group.settle(None)

    async def _committed(self) -> None:
        """Returns once the open group (if any) is committed; raises if it was not."""
        group = self._group
        if group is None:
            return
        waiter = asyncio.get_running_loop().create_future()
        group.waiters.append(waiter)
        await waiter

    def _guard(self) -> None:
        if self._in_transaction:
            raise RuntimeError("a direct SQLite transaction is open: its body must not await other work")

    async def one(self, stmt: Statement, **params: Any) -> Row | None:
        self._guard()
        cur = self._statement(stmt, params)
        row: Row | None = cur.fetchone()
        cur.close()  # a statement left half-read would keep the COMMIT from completing
        await self._committed()
        return row

    async def all(self, stmt: Statement, **params: Any) -> list[Row]:
        self._guard()
        rows = self._statement(stmt, params).fetchall()
        await self._committed()
        return rows

    async def run(self, stmt: Statement, **params: Any) -> int:
        self._guard()
        count = self._statement(stmt, params).rowcount
        await self._committed()
        return count

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[DirectSql]:
        self._guard()
        if self._group is None:
            self._open_group()
        # A savepoint in the group: the block's statements commit with it, or are all undone.
        self._execute("SAVEPOINT direct_transaction")
        self._in_transaction = True
        try:
            yield self._view
        except BaseException:
            self._in_transaction = False
            self._execute("ROLLBACK TO direct_transaction")
            self._execute("RELEASE direct_transaction")
            raise
        self._in_transaction = False
        self._execute("RELEASE direct_transaction")
        await self._committed()


class _SqliteTransaction:
    """What a transaction() block runs its statements on: in the savepoint, not waiting for the
    group's commit (the block as a whole waits for it when it ends)."""

    def __init__(self, owner: SqliteDirect) -> None:
        self.owner = owner

    async def one(self, stmt: Statement, **params: Any) -> Row | None:
        cur = self.owner._statement(stmt, params)
        row: Row | None = cur.fetchone()
        cur.close()
        return row

    async def all(self, stmt: Statement, **params: Any) -> list[Row]:
        return self.owner._statement(stmt, params).fetchall()

    async def run(self, stmt: Statement, **params: Any) -> int:
        return self.owner._statement(stmt, params).rowcount

    def transaction(self) -> contextlib.AbstractAsyncContextManager[DirectSql]:
        raise RuntimeError("direct transactions do not nest")


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
