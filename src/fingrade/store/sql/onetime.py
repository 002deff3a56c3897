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
from fingrade.store.sql.direct import Statement
from fingrade.store.sql.schema import onetime


def _key(kind: str, key: str) -> Any:
    return and_(onetime.c.kind == kind, onetime.c.key == key)


# The per-request operations run straight on the driver (direct.py): one statement each.
_GET = Statement("SELECT value FROM onetime WHERE kind = :kind AND key = :key AND expires_at > :now")
_TAKE = Statement("DELETE FROM onetime WHERE kind = :kind AND key = :key AND expires_at > :now RETURNING value")
_CONSUME = Statement(
    "UPDATE onetime SET used = 1 WHERE kind = :kind AND key = :key AND expires_at > :now AND used = 0 RETURNING value"
)
# The live entry becomes the new one: the row itself is rekeyed, so using up the first and storing
# the second are one statement (a pushed request turns into its code).
_EXCHANGE = Statement(
    "UPDATE onetime SET kind = :new_kind, key = :new_key, value = :value, used = 0, expires_at = :expires_at "
    "WHERE kind = :kind AND key = :key AND expires_at > :now RETURNING used"
)
# Store a value under a key, replacing whatever was there (upsert).
_PUT = Statement(
    "INSERT INTO onetime (kind, key, value, used, expires_at) VALUES (:kind, :key, :value, 0, :expires_at) "
    "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, used = excluded.used, expires_at = excluded.expires_at"
)
# Replay-cache insert: insert the key, or take over an expired leftover of it; a live entry is left
# untouched and no row comes back (upsert with a WHERE on the conflicting row, RETURNING).
_ADD = Statement(
    "INSERT INTO onetime (kind, key, value, used, expires_at) VALUES (:kind, :key, NULL, 0, :expires_at) "
    "ON CONFLICT (kind, key) DO UPDATE SET value = NULL, used = 0, expires_at = excluded.expires_at "
    "WHERE onetime.expires_at <= :now RETURNING kind"
)

_ADD_ALL: dict[int, Statement] = {}


def _add_all_statement(n: int) -> Statement:
    """_ADD for `n` rows in one statement (a request's client assertion and DPoP proof together)."""
    stmt = _ADD_ALL.get(n)
    if stmt is None:
        rows = ", ".join(f"(:kind{i}, :key{i}, NULL, 0, :expires_at{i})" for i in range(n))
        stmt = _ADD_ALL[n] = Statement(
            f"INSERT INTO onetime (kind, key, value, used, expires_at) VALUES {rows} "
            "ON CONFLICT (kind, key) DO UPDATE SET value = NULL, used = 0, expires_at = excluded.expires_at "
            "WHERE onetime.expires_at <= :now RETURNING kind, key"
        )
    return stmt


def _ensure_statement(dialect: str) -> Any:
    """Create an attempt counter's row unless it exists (so that it can be locked)."""
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(onetime)
    return ins.on_conflict_do_nothing(index_elements=[onetime.c.kind, onetime.c.key])


_K = and_(onetime.c.kind == bindparam("k_kind"), onetime.c.key == bindparam("k_key"))

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
        self.sql = db.direct
        self._ensure = _ensure_statement(db.dialect)

    async def put(self, kind: str, key: str, value: dict[str, Any], ttl: int) -> None:
        data = orjson.dumps(value).decode()
        await self.sql.run(_PUT, kind=kind, key=key, value=data, expires_at=int(time.time()) + ttl)

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        row = await self.sql.one(_GET, kind=kind, key=key, now=int(time.time()))
        return orjson.loads(row[0]) if row and row[0] else None

    async def take(self, kind: str, key: str) -> dict[str, Any] | None:
        row = await self.sql.one(_TAKE, kind=kind, key=key, now=int(time.time()))
        return orjson.loads(row[0]) if row and row[0] else None

    async def exchange(self, kind: str, key: str, new_kind: str, new_key: str, value: dict[str, Any], ttl: int) -> bool:
        now = int(time.time())
        data = orjson.dumps(value).decode()
        row = await self.sql.one(
            _EXCHANGE, new_kind=new_kind, new_key=new_key, value=data, expires_at=now + ttl, kind=kind, key=key, now=now
        )
        return row is not None

    async def consume(self, kind: str, key: str) -> tuple[dict[str, Any], bool] | None:
        now = int(time.time())
        # The conditional UPDATE alone decides who wins; the read after a loss only tells a reuse
        # (the entry is there, used) from an unknown key, so it needs no transaction.
        won = await self.sql.one(_CONSUME, kind=kind, key=key, now=now)
        if won is not None:
            return orjson.loads(won[0]), True
        seen = await self.sql.one(_GET, kind=kind, key=key, now=now)
        return (orjson.loads(seen[0]), False) if seen is not None and seen[0] else None

    async def add(self, kind: str, key: str, ttl: int) -> bool:
        now = int(time.time())
        # An expired leftover must not block a fresh value: the upsert takes it over.
        return await self.sql.one(_ADD, kind=kind, key=key, expires_at=now + ttl, now=now) is not None

    async def add_all(self, entries: Sequence[tuple[str, str, int]]) -> list[bool]:
        now = int(time.time())
        # A pair named twice is a replay of itself; PostgreSQL would also refuse to upsert one row twice.
        first = list(dict.fromkeys((kind, key) for kind, key, _ttl in entries))
        if not first:
            return []
        params: dict[str, Any] = {"now": now}
        ttls = {(kind, key): ttl for kind, key, ttl in reversed(entries)}  # the first one's ttl
        for i, (kind, key) in enumerate(first):
            params[f"kind{i}"], params[f"key{i}"], params[f"expires_at{i}"] = kind, key, now + ttls[(kind, key)]
        added = {(row[0], row[1]) for row in await self.sql.all(_add_all_statement(len(first)), **params)}
        results, seen = [], set()
        for kind, key, _ttl in entries:
            results.append((kind, key) in added and (kind, key) not in seen)
            seen.add((kind, key))
        return results

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
