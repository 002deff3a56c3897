"""The one-time store contract, on every implementation: SQL on SQLite, SQL on PostgreSQL, Redis,
and the in-memory store.
Atomic take-once is what makes codes single-use (RFC 6749 §4.1.2) and replay caches work
(RFC 7523 §3, OIDC Core §9) on one node or many. Expiry is checked without waiting: `Elapse` moves
the SQL stores' clock, and shortens the TTLs Redis keeps."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from support.backends import BACKENDS
from support.clock import Clock, set_clock
from support.server import REDIS_URL, _create_pg_database, drop_pg_database

from fingrade.oauth.ports import AttemptLimit
from fingrade.store.memory import MemoryOneTimeStore
from fingrade.store.redis.onetime import RedisOneTimeStore
from fingrade.store.sql import onetime as sql_onetime
from fingrade.store.sql.db import Database
from fingrade.store.sql.migrate import upgrade
from fingrade.store.sql.onetime import SqlOneTimeStore
from fingrade.store.sql.schema import onetime

# PostgreSQL and Redis when the run includes the postgres backend (`make check` runs without services).
KINDS = ["sqlite", "memory"] + (["postgres", "redis"] if "postgres" in BACKENDS else [])


@pytest.fixture(scope="module")
def pg_url() -> Iterator[Callable[[], str]]:
    """The URL of a fresh PostgreSQL database, created when a test first asks for it."""
    made: list[str] = []

    def url() -> str:
        if not made:
            made.append(_create_pg_database())
        return made[0]

    yield url
    if made:
        drop_pg_database(made[0])


async def _open(kind: str, tmp: Path, pg_url: str | None, clock: Clock | None = None):
    if kind == "redis":
        store = RedisOneTimeStore(REDIS_URL, prefix=f"fgcontract:{secrets.token_hex(4)}:")
        await store.ping()
        return store, None
    if kind == "memory":
        return (MemoryOneTimeStore(clock) if clock else MemoryOneTimeStore()), None
    db = Database(f"sqlite:///{tmp / 'o.db'}" if kind == "sqlite" else str(pg_url))
    await upgrade(db)
    return SqlOneTimeStore(db), db


def run(kind: str, tmp: Path, pg_url: Callable[[], str], body, clock: Clock | None = None) -> None:
    url = pg_url() if kind == "postgres" else None  # made outside the test's event loop

    async def main() -> None:
        store, db = await _open(kind, tmp, url, clock)
        try:
            await body(store)
        finally:
            await store.close()
            if db is not None:
                await db.close()

    asyncio.run(main())


class Elapse:
    """Lets `seconds` pass for the store. The SQL store compares its expiry times with time.time(),
    which reads a frozen `Clock` here (set_clock), and the memory store is given that clock; Redis expires keys by itself, so each key named
    has its remaining TTL (PTTL) shortened by that much, and is dropped if it runs out, as Redis
    would do. A key without a TTL fails: it would never expire."""

    def __init__(self, store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    async def __call__(self, seconds: int, *keys: tuple[str, str]) -> None:
        self.clock.advance(seconds)
        if not isinstance(self.store, RedisOneTimeStore):
            return
        for kind, key in keys:
            k = self.store._k(kind, key)
            left = await self.store.redis.pttl(k)
            assert left != -1, f"{k} has no expiry"
            if 0 <= left <= seconds * 1000:
                await self.store.redis.delete(k)
            elif left > 0:
                await self.store.redis.pexpire(k, left - seconds * 1000)


def run_timed(kind: str, tmp: Path, pg_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch, body) -> None:
    """`run` for expiry tests: body(store, elapse, clock), the SQL store on a frozen clock, the memory
    store with it injected."""
    clock = Clock()
    clock.freeze()
    set_clock(monkeypatch, clock, (sql_onetime,))
    run(kind, tmp, pg_url, lambda s: body(s, Elapse(s, clock), clock), clock)


@pytest.mark.parametrize("kind", KINDS)
def test_put_get_take(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    async def body(s) -> None:
        key = secrets.token_hex(8)
        await s.put("t", key, {"a": 1}, ttl=30)
        assert await s.get("t", key) == {"a": 1}
        assert await s.take("t", key) == {"a": 1}
        assert await s.take("t", key) is None
        assert await s.get("t", key) is None

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_exchange_turns_one_live_entry_into_another_once(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    """RFC 9126 §4 / FAPI 2.0 SP §5.3.2.2 note 3: a pushed request is used up when its code is issued.
    The use and the code's storage are one step: of concurrent completions exactly one gets a code,
    and a used-up or unknown request yields none."""

    async def body(s) -> None:
        par = secrets.token_hex(8)
        await s.put("par", par, {"client_id": "c"}, ttl=60)
        codes = [secrets.token_hex(8) for _ in range(12)]
        won = await asyncio.gather(*(s.exchange("par", par, "code", c, {"grant_id": c}, ttl=30) for c in codes))
        assert won.count(True) == 1
        winner = codes[won.index(True)]
        assert await s.get("par", par) is None
        assert await s.consume("code", winner) == ({"grant_id": winner}, True)  # a fresh, unused code
        assert [c for c in codes if await s.get("code", c) is not None] == [winner]
        assert await s.exchange("par", par, "code", secrets.token_hex(8), {}, ttl=30) is False
        assert await s.exchange("par", "absent", "code", secrets.token_hex(8), {}, ttl=30) is False

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_exchange_refuses_an_expired_entry(
    kind: str, tmp_path: Path, pg_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(s, elapse: Elapse, clock: Clock) -> None:
        par, code = secrets.token_hex(8), secrets.token_hex(8)
        await s.put("par", par, {"client_id": "c"}, ttl=5)
        await elapse(6, ("par", par))
        assert await s.exchange("par", par, "code", code, {"grant_id": "g"}, ttl=30) is False
        assert await s.get("code", code) is None

    run_timed(kind, tmp_path, pg_url, monkeypatch, body)


@pytest.mark.parametrize("kind", KINDS)
def test_consume_has_exactly_one_first_use(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    async def body(s) -> None:
        key = secrets.token_hex(8)
        await s.put("code", key, {"grant_id": "g"}, ttl=30)
        results = await asyncio.gather(*(s.consume("code", key) for _ in range(20)))
        assert sum(1 for r in results if r and r[1]) == 1
        assert all(r is not None and r[0] == {"grant_id": "g"} for r in results)  # reuse stays detectable
        assert await s.consume("code", "absent") is None

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_take_has_one_winner(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    async def body(s) -> None:
        key = secrets.token_hex(8)
        await s.put("i", key, {"x": 1}, ttl=30)
        results = await asyncio.gather(*(s.take("i", key) for _ in range(20)))
        assert sum(1 for r in results if r is not None) == 1

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_add_is_a_replay_cache(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    async def body(s) -> None:
        key = secrets.token_hex(8)
        results = await asyncio.gather(*(s.add("jti", key, ttl=30) for _ in range(10)))
        assert results.count(True) == 1
        assert await s.add("jti", key, ttl=30) is False

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_add_all_claims_every_entry_at_once(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    """A request's client assertion and DPoP proof are claimed together (RFC 7523 §3, RFC 9449 §11.1):
    each answer is that entry's own, a replay among them does not spare the new ones, and an entry
    named twice is a replay of itself."""

    async def body(s) -> None:
        a, p = secrets.token_hex(8), secrets.token_hex(8)
        assert await s.add_all([("assertion_jti", a, 30), ("dpop_jti", p, 30)]) == [True, True]
        assert await s.add_all([("assertion_jti", a, 30), ("dpop_jti", p, 30)]) == [False, False]
        fresh = secrets.token_hex(8)
        assert await s.add_all([("assertion_jti", a, 30), ("dpop_jti", fresh, 30)]) == [False, True]
        assert await s.add("dpop_jti", fresh, ttl=30) is False  # remembered although the request failed
        twice = secrets.token_hex(8)
        assert await s.add_all([("jti", twice, 30), ("jti", twice, 30)]) == [True, False]
        assert await s.add_all([]) == []
        # The same key under two kinds is two entries.
        both = secrets.token_hex(8)
        assert await s.add_all([("assertion_jti", both, 30), ("dpop_jti", both, 30)]) == [True, True]
        # Concurrent requests presenting the same pair: exactly one wins each entry.
        c1, c2 = secrets.token_hex(8), secrets.token_hex(8)
        results = await asyncio.gather(
            *(s.add_all([("assertion_jti", c1, 30), ("dpop_jti", c2, 30)]) for _ in range(8))
        )
        assert [r[0] for r in results].count(True) == 1 and [r[1] for r in results].count(True) == 1

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_add_all_takes_over_expired_entries_and_keeps_each_ttl(
    kind: str, tmp_path: Path, pg_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body(s, elapse: Elapse, clock: Clock) -> None:
        short, long = secrets.token_hex(8), secrets.token_hex(8)
        assert await s.add_all([("jti", short, 5), ("jti", long, 60)]) == [True, True]
        await elapse(6, ("jti", short), ("jti", long))
        assert await s.add_all([("jti", short, 60), ("jti", long, 60)]) == [True, False]

    run_timed(kind, tmp_path, pg_url, monkeypatch, body)


@pytest.mark.parametrize("kind", KINDS)
def test_expiry(kind: str, tmp_path: Path, pg_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A value and a replay-cache entry live `ttl` seconds, not less and not more; an expired entry
    does not block a new one, and purge_expired removes it."""

    async def body(s, elapse: Elapse, clock: Clock) -> None:
        key = secrets.token_hex(8)
        await s.put("t", key, {"a": 1}, ttl=10)
        assert await s.add("jti", key, ttl=10) is True
        await elapse(9, ("t", key), ("jti", key))
        assert await s.get("t", key) == {"a": 1}
        assert await s.add("jti", key, ttl=30) is False
        await elapse(2, ("t", key), ("jti", key))
        assert await s.get("t", key) is None and await s.take("t", key) is None
        assert await s.consume("t", key) is None
        assert await s.add("jti", key, ttl=30) is True  # an expired entry does not block a new one
        await s.put("t", key, {"a": 2}, ttl=1)
        await elapse(2, ("t", key))
        assert await s.purge_expired() >= (0 if kind == "redis" else 1)
        if kind == "memory":
            assert ("t", key) not in s._entries
        elif kind != "redis":  # Redis drops expired keys itself; the SQL store deletes its rows here
            rows = select(onetime.c.key).where(onetime.c.kind == "t", onetime.c.key == key)
            assert await s.db.read(lambda conn: conn.execute(rows).all()) == []

    run_timed(kind, tmp_path, pg_url, monkeypatch, body)


@pytest.mark.parametrize("kind", KINDS)
def test_counters(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    async def body(s) -> None:
        key = secrets.token_hex(8)
        assert await s.count("fail", key) == 0
        counts = await asyncio.gather(*(s.incr("fail", key, ttl=30) for _ in range(5)))
        assert sorted(counts) == [1, 2, 3, 4, 5]
        assert await s.count("fail", key) == 5
        await s.delete("fail", key)
        assert await s.count("fail", key) == 0

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_add_does_not_extend_a_live_entry(
    kind: str, tmp_path: Path, pg_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused add (replay) leaves the first entry as it was: it still expires on time, and then
    the key is free again (RFC 9449 §11.1: the replay window is the proof's acceptance window)."""

    async def body(s, elapse: Elapse, clock: Clock) -> None:
        key = secrets.token_hex(8)
        assert await s.add("jti", key, ttl=5) is True
        assert await s.add("jti", key, ttl=60) is False
        await elapse(6, ("jti", key))
        assert await s.add("jti", key, ttl=60) is True
        assert await s.add("jti", key, ttl=60) is False

    run_timed(kind, tmp_path, pg_url, monkeypatch, body)


@contextlib.contextmanager
def _statements(s) -> Iterator[list[str]]:
    """The first word of every SQL statement the store sends while the block runs."""
    from sqlalchemy import event

    engine = s.db.engine if s.db.engine is not None else s.db.async_engine.sync_engine
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement.split()[0].upper())

    def count_direct(statement: str) -> None:  # the hot statements run on the driver (direct.py)
        word = statement.split()[0].upper()
        # On SQLite writes are committed in groups, shared by concurrent requests (test_group_commit.py):
        # the group's BEGIN and COMMIT are not the statement's own.
        if word not in ("BEGIN", "COMMIT"):
            seen.append(word)

    event.listen(engine, "before_cursor_execute", count)
    s.db.direct.listeners.append(count_direct)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)
        s.db.direct.listeners.remove(count_direct)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_sql_add_is_one_statement(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    """The replay-cache insert runs on every client assertion and DPoP proof (twice per token request
    of a FAPI 2.0 client): one INSERT ... ON CONFLICT DO UPDATE ... WHERE expired, no separate
    delete of an expired leftover and no savepoint (bench: cc_jwt_dpop profile)."""

    async def body(s) -> None:
        with _statements(s) as seen:
            key = secrets.token_hex(8)
            assert await s.add("jti", key, ttl=30) is True
            assert await s.add("jti", key, ttl=30) is False
            # A client assertion and a DPoP proof: one statement for both.
            assert await s.add_all([("assertion_jti", key, 30), ("dpop_jti", key, 30)]) == [True, True]
        work = [st for st in seen if st not in ("BEGIN", "COMMIT", "ROLLBACK", "SELECT")]
        assert work == ["INSERT", "INSERT", "INSERT"], seen

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_sql_per_request_writes_are_single_autocommit_statements(
    kind: str, tmp_path: Path, pg_url: Callable[[], str]
) -> None:
    """put, add, take, consume and exchange are each one statement, atomic on its own, with no transaction
    of their own (PostgreSQL: autocommit; SQLite: the group commit): a FAPI flow makes about ten of them
    (bench: fapi_flow)."""

    async def body(s) -> None:
        with _statements(s) as seen:
            key = secrets.token_hex(8)
            await s.put("code", key, {"v": 1}, ttl=30)
            await s.put("code", key, {"v": 2}, ttl=30)  # replaces, in the same one statement
            assert await s.consume("code", key) == ({"v": 2}, True)
            assert await s.take("code", key) == {"v": 2}
            assert await s.add("jti", key, ttl=30) is True
            await s.put("par", key, {"v": 3}, ttl=30)
            assert await s.exchange("par", key, "code", key, {"v": 4}, ttl=30) is True  # the row is rekeyed
        assert seen == ["INSERT", "INSERT", "UPDATE", "DELETE", "INSERT", "INSERT", "UPDATE"], seen

    run(kind, tmp_path, pg_url, body)


# -- attempt limits (sign-in throttling): reserve before the work, all or none -------------------


def _limit(kind: str, key: str, free: int = 3, backoff: int = 10, window: int = 300) -> AttemptLimit:
    return AttemptLimit(kind=kind, key=key, free=free, backoff=backoff, max_wait=window, window=window)


@pytest.mark.parametrize("kind", KINDS)
def test_reserve_counts_free_attempts_then_backs_off_exponentially(
    kind: str, tmp_path: Path, pg_url: Callable[[], str]
) -> None:
    async def body(s) -> None:
        lim = _limit("att", secrets.token_hex(8), free=3, backoff=10, window=300)
        now = int(time.time())
        assert [await s.reserve([lim], now) for _ in range(3)] == [0, 0, 0]
        # The third attempt used up the free ones: the next must wait `backoff` seconds, then twice that.
        assert await s.reserve([lim], now) == 10
        assert await s.reserve([lim], now + 4) == 6
        assert await s.reserve([lim], now + 10) == 0
        assert await s.reserve([lim], now + 10) == 20
        assert await s.reserve([lim], now + 30) == 0
        assert await s.reserve([lim], now + 31) == 39
        # Never longer than max_wait.
        assert await s.reserve([lim], now + 70) == 0
        assert await s.reserve([lim], now + 70) == 80
        assert await s.reserve([lim], now + 150) == 0
        assert await s.reserve([lim], now + 150) == 160
        assert await s.reserve([lim], now + 310) == 0
        assert await s.reserve([lim], now + 310) == 300

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_reserve_is_all_or_none(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    """One limit that refuses means nothing is counted on the others."""

    async def body(s) -> None:
        tight, loose = _limit("att", secrets.token_hex(8), free=1), _limit("att2", secrets.token_hex(8), free=2)
        now = int(time.time())
        assert await s.reserve([tight, loose], now) == 0
        for _ in range(5):
            assert await s.reserve([loose, tight], now) == 10
        # loose was counted once only: one more free attempt is left on it.
        assert await s.reserve([loose], now) == 0
        assert await s.reserve([loose], now) == 10

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_reserve_never_exceeds_the_limit(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    """The race a check-then-count design loses: of 30 concurrent attempts exactly `free` are counted."""

    async def body(s) -> None:
        shared, own = secrets.token_hex(8), secrets.token_hex(8)
        now = int(time.time())
        results = await asyncio.gather(
            *(
                s.reserve([_limit("att", shared, free=5), _limit("att2", f"{own}{i % 3}", free=100)], now)
                for i in range(30)
            )
        )
        assert results.count(0) == 5 and all(r == 10 for r in results if r)

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_release_takes_back_one_attempt(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    async def body(s) -> None:
        lim = _limit("att", secrets.token_hex(8), free=2)
        now = int(time.time())
        assert await s.reserve([lim], now) == 0
        assert await s.reserve([lim], now) == 0  # the second: a wait is now due
        await s.release([lim], now)  # it was not a failure after all: the wait is lifted
        assert await s.reserve([lim], now) == 0
        assert await s.reserve([lim], now) == 10
        await s.release([_limit("att", secrets.token_hex(8))], now)  # nothing there: nothing happens

    run(kind, tmp_path, pg_url, body)


@pytest.mark.parametrize("kind", KINDS)
def test_attempts_are_forgotten_after_the_window(
    kind: str, tmp_path: Path, pg_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`window` seconds after its last counted attempt a counter is gone: counting starts again with
    the free attempts (a counter kept would impose the next, doubled wait)."""

    async def body(s, elapse: Elapse, clock: Clock) -> None:
        key = secrets.token_hex(8)
        lim = _limit("att", key, free=2, backoff=1, window=5)
        now = clock()
        assert [await s.reserve([lim], now) for _ in range(3)] == [0, 0, 1]
        await elapse(6, ("att", key))
        now = clock()
        assert [await s.reserve([lim], now) for _ in range(3)] == [0, 0, 1]

    run_timed(kind, tmp_path, pg_url, monkeypatch, body)


@pytest.mark.parametrize("kind", KINDS)
def test_forget_deletes_by_key_prefix_only(kind: str, tmp_path: Path, pg_url: Callable[[], str]) -> None:
    async def body(s) -> None:
        base = secrets.token_hex(8)
        now = int(time.time())
        keep = [
            _limit("att", f"{base}x|1", free=1),
            _limit("att2", f"{base}|1", free=1),
            _limit("att", f"{base}*|1", free=1),
        ]
        gone = [_limit("att", f"{base}|1", free=1), _limit("att", f"{base}|2", free=1)]
        for lim in keep + gone:
            assert await s.reserve([lim], now) == 0
        assert await s.forget("att", f"{base}|") == 2
        for lim in gone:
            assert await s.reserve([lim], now) == 0
        for lim in keep:
            assert await s.reserve([lim], now) == 10
        with pytest.raises(ValueError):
            await s.forget("att", "")  # an empty prefix is refused, never "everything"

    run(kind, tmp_path, pg_url, body)
