"""One SQL code path for SQLite and PostgreSQL.

Store methods are plain functions over a synchronous SQLAlchemy `Connection`. For SQLite they run
inline on the event loop: an embedded database answers in microseconds and a thread hop would cost
more than the query. For PostgreSQL they run through `AsyncConnection.run_sync` over asyncpg, so the
loop never blocks on the network. Either way, `read` and `write` wrap one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from fingrade.private_files import private_sqlite
from fingrade.store.sql.checkpoints import WalCheckpointer, tune_loop_connection
from fingrade.store.sql.direct import PgDirect, SqliteDirect

T = TypeVar("T")

CONNECT_TIMEOUT = 5.0  # seconds for a new PostgreSQL connection
POOL_TIMEOUT = 30.0  # seconds a request waits for a pooled connection (SQLAlchemy's default)
# hide_parameters (both engines): a database error's text never carries the statement's values
# (hashes, personal data) into a log line or a traceback.


class Database:
    def __init__(self, url: str, pool_size: int = 20) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self._checkpointer: WalCheckpointer | None = None
        self._sqlite_file: str | None = None
        self.engine: Engine | None  # SQLite: inline on the loop
        self.async_engine: AsyncEngine | None  # PostgreSQL: asyncpg
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
                private_sqlite(Path(parsed.database))
                self._sqlite_file = parsed.database
            # One connection: the event loop is the only user in this process, so there is no
            # contention to pool for; other processes (the CLI) are serialised by SQLite's lock.
            self.engine = create_engine(
                parsed.set(drivername="sqlite+pysqlite"),
                poolclass=StaticPool,
                # A statement cache large enough for every hot statement (direct.py) and the ORM's.
                connect_args={"check_same_thread": False, "timeout": 5, "cached_statements": 512},
                hide_parameters=True,
            )
            _configure_sqlite(self.engine)
            self.async_engine = None
            # The hot paths' statements run on the same (only) connection, straight on sqlite3.
            self.direct: SqliteDirect | PgDirect = SqliteDirect(self._sqlite_connection)
        elif self.dialect == "postgresql":
            self.engine = None
            # A fixed pool, no overflow: an overflow connection is closed when it is returned, so
            # under load every burst above the pool size paid a new connection (TCP, TLS, a forked
            # backend) - bank_balances on PostgreSQL went from 279 to 438 req/s without it
            # (docs/performance.md). Requests beyond the pool wait for a connection instead.
            # An unreachable server fails the request in seconds (a 503), not after asyncpg's 60 s default.
            self.async_engine = create_async_engine(
                parsed.set(drivername="postgresql+asyncpg"),
                pool_size=pool_size,
                max_overflow=0,
                pool_recycle=3600,
                connect_args={"timeout": CONNECT_TIMEOUT},
                hide_parameters=True,
            )
            # Reads are single indexed lookups: autocommit spares the BEGIN and COMMIT round trips.
            self._read_engine = self.async_engine.execution_options(isolation_level="AUTOCOMMIT")
            # The hot paths' statements: an asyncpg pool of their own, prepared statements cached
            # per connection (direct.py). It is opened on first use.
            self.direct = PgDirect(
                parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                size=pool_size,
                connect_timeout=CONNECT_TIMEOUT,
                acquire_timeout=POOL_TIMEOUT,
            )
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")

    def _sqlite_connection(self) -> Any:
        """The driver's connection under the StaticPool (connected on first use)."""
        assert self.engine is not None
        proxy = self.engine.raw_connection()
        try:
            return proxy.driver_connection
        finally:
            proxy.close()  # back to the pool; the StaticPool keeps the one connection open

    def start_background_checkpoints(self) -> None:
        """For the server: SQLite's WAL checkpoints (and their fsyncs) move to a thread, off the event
        loop (checkpoints.py). Nothing to do for PostgreSQL or an in-memory database."""
        if self._sqlite_file is None or self._checkpointer is not None:
            return
        assert isinstance(self.direct, SqliteDirect)
        self._checkpointer = WalCheckpointer(self._sqlite_file)
        tune_loop_connection(self.direct.conn)
        self._checkpointer.start()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(fn, args, write=False)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._run(fn, args, write=True)

    async def write_statement(self, fn: Callable[..., T], *args: Any) -> T:
        """A write that is exactly one SQL statement. A single statement is atomic on its own in both
        databases, so it runs in autocommit: no BEGIN/COMMIT round trip, which is about half the cost
        of a one-statement transaction (the one-time store does several per request). On SQLite a
        write statement takes the write lock before it reads, and waits for it (busy_timeout)."""
        return await self._run(fn, args, write=False)

    async def _run(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        if self.engine is not None:
            # The hot paths' open group commit goes first: SQLAlchemy's transaction must not join it,
            # nor its reads see rows not yet committed (direct.py).
            if isinstance(self.direct, SqliteDirect):
                self.direct.flush()
            with self.engine.connect() as conn:
                conn.info["write"] = write
                if not write:
                    return fn(conn, *args)
                with conn.begin():
                    return fn(conn, *args)
        assert self.async_engine is not None
        if not write:
            async with self._read_engine.connect() as conn:
                return await conn.run_sync(fn, *args)
        async with self.async_engine.begin() as conn:
            return await conn.run_sync(fn, *args)

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """For the CLI and migrations: run `fn` on a connection outside any event loop."""
        if self.engine is not None:
            with self.engine.connect() as conn:
                conn.info["write"] = True
                with conn.begin():
                    return fn(conn)
        return asyncio.run(self._run_sync_async(fn))

    async def _run_sync_async(self, fn: Callable[[Connection], T]) -> T:
        assert self.async_engine is not None
        try:
            async with self.async_engine.begin() as conn:
                return await conn.run_sync(fn)
        finally:
            await self.async_engine.dispose()

    async def close(self) -> None:
        if isinstance(self.direct, SqliteDirect):
            self.direct.flush()
        if self._checkpointer is not None:
            checkpointer, self._checkpointer = self._checkpointer, None
            await asyncio.to_thread(checkpointer.stop)
        if isinstance(self.direct, PgDirect):
            await self.direct.close()
        if self.engine is not None:
            self.engine.dispose()
        if self.async_engine is not None:
            await self.async_engine.dispose()


def _configure_sqlite(engine: Any) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=5000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writes: IMMEDIATE takes the write lock up front, so two processes never deadlock on an
        # upgrade. Reads run in autocommit: each is one indexed lookup, and BEGIN/COMMIT would
        # double their cost.
        if conn.info.get("write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
