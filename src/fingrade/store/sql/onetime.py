"""One-time store on SQL: single statements do the atomic work (DELETE/UPDATE ... RETURNING)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from fingrade.oauth.ports import AttemptLimit
from fingrade.store.sql.db import Database
from fingrade.store.sql.schema import onetime


def _key(kind: str, key: str) -> Any:
    return and_(onetime.c.kind == kind, onetime.c.key == key)


# Prebuilt statements for the per-request operations (expression building dominates on SQLite).
_K = and_(onetime.c.kind == bindparam("k_kind"), onetime.c.key == bindparam("k_key"))
_LIVE = and_(_K, onetime.c.expires_at > bindparam("k_now"))
_GET = select(onetime.c.value).where(_LIVE)
_TAKE = delete(onetime).where(_LIVE).returning(onetime.c.value)
_CONSUME = update(onetime).where(and_(_LIVE, onetime.c.used == 0)).values(used=1).returning(onetime.c.value)


def _put_statement(dialect: str) -> Any:
    """Store a value under a key, replacing whatever was there, in one statement (upsert)."""
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(onetime)
    return ins.on_conflict_do_update(
        index_elements=[onetime.c.kind, onetime.c.key],
        set_={"value": ins.excluded.value, "used": ins.excluded.used, "expires_at": ins.excluded.expires_at},
    )


def _add_statement(dialect: str) -> Any:
    """Replay-cache insert in one statement: insert the key, or take over an expired leftover of it;
    a live entry is left untouched and no row comes back (SQLite >= 3.35 and PostgreSQL: upsert with
    a WHERE on the conflicting row, RETURNING)."""
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(onetime)
    return ins.on_conflict_do_update(
        index_elements=[onetime.c.kind, onetime.c.key],
        set_={"value": ins.excluded.value, "used": ins.excluded.used, "expires_at": ins.excluded.expires_at},
        where=onetime.c.expires_at <= bindparam("k_now"),
    ).returning(onetime.c.kind)


def _ensure_statement(dialect: str) -> Any:
    """Create an attempt counter's row unless it exists (so that it can be locked)."""
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(onetime)
    return ins.on_conflict_do_nothing(index_elements=[onetime.c.kind, onetime.c.key])


# Attempt counters: `used` is the count, `value` the time before which no attempt is allowed.
_LOCK = select(onetime.c.used, onetime.c.value, onetime.c.expires_at).where(_K).with_for_update()
_SET_COUNT = update(onetime).where(_K).values(used=bindparam("n"), value=bindparam("nb"), expires_at=bindparam("exp"))


def _counter(conn: Connection, limit: AttemptLimit, now: int) -> tuple[int, int] | None:
    """(count, not before) of a live counter, locked for this transaction (PostgreSQL FOR UPDATE;
    SQLite's write transaction holds the database lock already); None when absent or expired."""
    row = conn.execute(_LOCK, {"k_kind": limit.kind, "k_key": limit.key}).first()
    if row is None or row.expires_at <= now:
        return None
    return int(row.used), int(row.value or 0)


class SqlOneTimeStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._add = _add_statement(db.dialect)
        self._put = _put_statement(db.dialect)
        self._ensure = _ensure_statement(db.dialect)

    async def put(self, kind: str, key: str, value: dict[str, Any], ttl: int) -> None:
        data = orjson.dumps(value).decode()
        expires = int(time.time()) + ttl

        def q(conn: Connection) -> None:
            conn.execute(self._put, {"kind": kind, "key": key, "value": data, "used": 0, "expires_at": expires})

        await self.db.write_statement(q)

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        now = int(time.time())

        def q(conn: Connection) -> str | None:
            return conn.execute(_GET, {"k_kind": kind, "k_key": key, "k_now": now}).scalar()

        raw = await self.db.read(q)
        return orjson.loads(raw) if raw else None

    async def take(self, kind: str, key: str) -> dict[str, Any] | None:
        now = int(time.time())

        def q(conn: Connection) -> str | None:
            return conn.execute(_TAKE, {"k_kind": kind, "k_key": key, "k_now": now}).scalar()

        raw = await self.db.write_statement(q)
        return orjson.loads(raw) if raw else None

    async def consume(self, kind: str, key: str) -> tuple[dict[str, Any], bool] | None:
        now = int(time.time())

        def q(conn: Connection) -> tuple[str, bool] | None:
            params = {"k_kind": kind, "k_key": key, "k_now": now}
            # The conditional UPDATE alone decides who wins; the read after a loss only tells a
            # reuse (the entry is there, used) from an unknown key, so it needs no transaction.
            won = conn.execute(_CONSUME, params).scalar()
            if won is not None:
                return won, True
            seen = conn.execute(_GET, params).scalar()
            return (seen, False) if seen is not None else None

        got = await self.db.write_statement(q)
        if got is None:
            return None
        return orjson.loads(got[0]), got[1]

    async def add(self, kind: str, key: str, ttl: int) -> bool:
        now = int(time.time())

        def q(conn: Connection) -> bool:
            # An expired leftover must not block a fresh value: the upsert takes it over.
            row = conn.execute(
                self._add, {"kind": kind, "key": key, "value": None, "used": 0, "expires_at": now + ttl, "k_now": now}
            ).first()
            return row is not None

        return await self.db.write_statement(q)

    async def incr(self, kind: str, key: str, ttl: int) -> int:
        now = int(time.time())

        def q(conn: Connection) -> int:
            conn.execute(delete(onetime).where(and_(_key(kind, key), onetime.c.expires_at <= now)))
            bump = update(onetime).where(_key(kind, key)).values(used=onetime.c.used + 1).returning(onetime.c.used)
            n = conn.execute(bump).scalar()
            if n is not None:
                return int(n)
            try:
                with conn.begin_nested():
                    conn.execute(insert(onetime).values(kind=kind, key=key, value=None, used=1, expires_at=now + ttl))
                return 1
            except IntegrityError:  # a concurrent caller created it first
                return int(conn.execute(bump).scalar() or 1)

        return await self.db.write(q)

    async def count(self, kind: str, key: str) -> int:
        now = int(time.time())

        def q(conn: Connection) -> int:
            return (
                conn.execute(select(onetime.c.used).where(and_(_key(kind, key), onetime.c.expires_at > now))).scalar()
                or 0
            )

        return int(await self.db.read(q))

    async def reserve(self, limits: Sequence[AttemptLimit], now: int) -> int:
        def q(conn: Connection) -> int:
            seen: list[tuple[AttemptLimit, int]] = []
            wait = 0
            # One lock order for every caller, so two transactions never wait for each other in a cycle.
            for limit in sorted(limits, key=lambda lim: (lim.kind, lim.key)):
                conn.execute(
                    self._ensure,
                    {"kind": limit.kind, "key": limit.key, "value": "0", "used": 0, "expires_at": now + limit.window},
                )
                count, not_before = _counter(conn, limit, now) or (0, 0)
                wait = max(wait, not_before - now)
                seen.append((limit, count))
            if wait > 0:
                return wait  # all or none: nothing counted
            for limit, count in seen:
                not_before = now + limit.wait_after(count + 1)
                conn.execute(
                    _SET_COUNT,
                    {
                        "k_kind": limit.kind,
                        "k_key": limit.key,
                        "n": count + 1,
                        "nb": str(not_before),
                        "exp": max(now + limit.window, not_before),
                    },
                )
            return 0

        return await self.db.write(q)

    async def release(self, limits: Sequence[AttemptLimit], now: int) -> None:
        def q(conn: Connection) -> None:
            for limit in sorted(limits, key=lambda lim: (lim.kind, lim.key)):
                found = _counter(conn, limit, now)
                if found is None:
                    continue
                count = max(found[0] - 1, 0)
                not_before = found[1] if count >= limit.free else 0
                conn.execute(
                    update(onetime).where(_key(limit.kind, limit.key)).values(used=count, value=str(not_before))
                )

        await self.db.write(q)

    async def forget(self, kind: str, prefix: str) -> int:
        if not prefix:
            raise ValueError("forget needs a key prefix")

        def q(conn: Connection) -> int:
            # substr, not LIKE: exact on both databases (SQLite's LIKE ignores case), no wildcards to escape.
            return conn.execute(
                delete(onetime).where(
                    and_(onetime.c.kind == kind, func.substr(onetime.c.key, 1, len(prefix)) == prefix)
                )
            ).rowcount

        return await self.db.write(q)

    async def delete(self, kind: str, key: str) -> None:
        def q(conn: Connection) -> None:
            conn.execute(delete(onetime).where(_key(kind, key)))

        await self.db.write(q)

    async def purge_expired(self) -> int:
        now = int(time.time())

        def q(conn: Connection) -> int:
            return conn.execute(delete(onetime).where(onetime.c.expires_at <= now)).rowcount

        return await self.db.write(q)

    async def close(self) -> None:  # the Database is closed by its owner
        return None
