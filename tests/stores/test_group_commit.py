"""Group commit on SQLite (store/sql/direct.py): the writes of concurrent requests share one COMMIT,
and nobody is told a write happened before that COMMIT did. Real SQLite, real files; a COMMIT is
made to fail with a deferred foreign key, SQLite's own way of refusing one."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fingrade.store.sql.db import Database
from fingrade.store.sql.direct import Statement
from fingrade.store.sql.migrate import upgrade
from fingrade.store.sql.onetime import SqlOneTimeStore

_PARENT = "CREATE TABLE test_parent (id TEXT PRIMARY KEY)"
_CHILD = (
    "CREATE TABLE test_child (id TEXT PRIMARY KEY, "
    "parent TEXT REFERENCES test_parent(id) DEFERRABLE INITIALLY DEFERRED)"
)
# An orphan row is accepted by the statement and refused by the COMMIT (the key is deferred).
_ORPHAN = Statement("INSERT INTO test_child (id, parent) VALUES (:id, 'nobody')")
_CHILD_ROW = Statement("INSERT INTO test_child (id, parent) VALUES (:id, NULL)")


async def _open(path: Path) -> tuple[Database, SqlOneTimeStore, list[str]]:
    db = Database(f"sqlite:///{path}")
    await upgrade(db)
    db.direct.conn.execute(_PARENT)  # type: ignore[union-attr]
    db.direct.conn.execute(_CHILD)  # type: ignore[union-attr]
    sent: list[str] = []
    db.direct.listeners.append(sent.append)
    return db, SqlOneTimeStore(db), sent


def _commits(sent: list[str]) -> int:
    return sum(1 for s in sent if s == "COMMIT")


def _on_disk(path: Path, sql: str, *args: object) -> int:
    """What another connection (another process) sees: only committed rows."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


def test_concurrent_writes_share_one_commit(tmp_path: Path) -> None:
    async def main() -> None:
        db, store, sent = await _open(tmp_path / "g.db")
        try:
            won = await asyncio.gather(*(store.add("dpop_jti", f"proof-{i}", 60) for i in range(20)))
            assert won == [True] * 20
            assert _commits(sent) == 1
            # Replays, in the next group: every one refused (RFC 9449 §11.1).
            again = await asyncio.gather(*(store.add("dpop_jti", f"proof-{i}", 60) for i in range(20)))
            assert again == [False] * 20
        finally:
            await db.close()
        assert _on_disk(tmp_path / "g.db", "SELECT count(*) FROM onetime WHERE kind = 'dpop_jti'") == 20

    asyncio.run(main())


def test_a_write_is_acknowledged_only_after_its_commit(tmp_path: Path) -> None:
    async def main() -> None:
        db, store, sent = await _open(tmp_path / "g.db")
        try:

            async def add_and_note(i: int) -> None:
                await store.add("dpop_jti", f"proof-{i}", 60)
                sent.append(f"acknowledged {i}")

            await asyncio.gather(*(add_and_note(i) for i in range(5)))
            commit = sent.index("COMMIT")
            assert all(sent.index(f"acknowledged {i}") > commit for i in range(5))
        finally:
            await db.close()

    asyncio.run(main())


def test_a_read_while_a_group_is_open_waits_for_its_commit(tmp_path: Path) -> None:
    """The read sees the group's row; it must not answer before that row is committed."""

    async def main() -> None:
        db, store, sent = await _open(tmp_path / "g.db")
        try:

            async def read() -> None:
                seen = await store.get("pending", "k")
                sent.append(f"read {seen}")

            await asyncio.gather(store.put("pending", "k", {"v": 1}, 60), read())
            assert sent.index("read {'v': 1}") > sent.index("COMMIT")
        finally:
            await db.close()

    asyncio.run(main())


def test_a_failed_commit_fails_every_write_of_the_group_and_keeps_none(tmp_path: Path) -> None:
    async def main() -> None:
        db, store, sent = await _open(tmp_path / "g.db")
        try:
            results = await asyncio.gather(
                store.add("dpop_jti", "innocent", 60),
                db.direct.run(_ORPHAN, id="orphan"),
                return_exceptions=True,
            )
            assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
            assert "ROLLBACK" in sent
            # The connection is usable again, and the innocent write can be made now.
            assert await store.add("dpop_jti", "innocent", 60) is True
        finally:
            await db.close()
        assert _on_disk(tmp_path / "g.db", "SELECT count(*) FROM test_child") == 0
        assert _on_disk(tmp_path / "g.db", "SELECT count(*) FROM onetime WHERE key = 'innocent'") == 1

    asyncio.run(main())


def test_a_transaction_that_fails_undoes_only_its_own_statements(tmp_path: Path) -> None:
    async def main() -> None:
        db, store, _sent = await _open(tmp_path / "g.db")
        try:

            async def failing() -> None:
                async with db.direct.transaction() as tx:
                    await tx.run(_CHILD_ROW, id="in-transaction")
                    raise LookupError("the block gives up")

            results = await asyncio.gather(store.add("dpop_jti", "neighbour", 60), failing(), return_exceptions=True)
            assert results[0] is True and isinstance(results[1], LookupError)
        finally:
            await db.close()
        assert _on_disk(tmp_path / "g.db", "SELECT count(*) FROM test_child") == 0
        assert _on_disk(tmp_path / "g.db", "SELECT count(*) FROM onetime WHERE key = 'neighbour'") == 1

    asyncio.run(main())


def test_a_transaction_commits_with_its_group(tmp_path: Path) -> None:
    async def main() -> None:
        db, store, sent = await _open(tmp_path / "g.db")
        try:

            async def two_rows() -> None:
                async with db.direct.transaction() as tx:
                    await tx.run(_CHILD_ROW, id="a")
                    await tx.run(_CHILD_ROW, id="b")

            await asyncio.gather(store.add("dpop_jti", "x", 60), two_rows())
            assert _commits(sent) == 1
        finally:
            await db.close()
        assert _on_disk(tmp_path / "g.db", "SELECT count(*) FROM test_child") == 2

    asyncio.run(main())


def test_work_from_elsewhere_inside_an_open_transaction_is_refused(tmp_path: Path) -> None:
    """A transaction body that suspends would let another request's statement into its savepoint
    (and into its rollback): that is refused, never merged."""

    async def main() -> None:
        db, store, _sent = await _open(tmp_path / "g.db")
        try:
            entered = asyncio.Event()
            leave = asyncio.Event()

            async def suspending() -> None:
                async with db.direct.transaction() as tx:
                    await tx.run(_CHILD_ROW, id="held")
                    entered.set()
                    await leave.wait()  # against the rule: other work runs meanwhile

            held = asyncio.create_task(suspending())
            await entered.wait()
            with pytest.raises(RuntimeError):
                await store.add("dpop_jti", "intruder", 60)
            with pytest.raises(RuntimeError):
                await store.get("dpop_jti", "intruder")
            leave.set()
            await held
        finally:
            await db.close()
        assert _on_disk(tmp_path / "g.db", "SELECT count(*) FROM test_child WHERE id = 'held'") == 1
        assert _on_disk(tmp_path / "g.db", "SELECT count(*) FROM onetime WHERE key = 'intruder'") == 0

    asyncio.run(main())


def test_the_cold_paths_commit_the_open_group_before_their_own_transaction(tmp_path: Path) -> None:
    """SQLAlchemy shares the connection: its BEGIN must not meet the group's open transaction."""

    async def main() -> None:
        db, store, _sent = await _open(tmp_path / "g.db")
        try:
            # incr runs through SQLAlchemy (Database.write), while the add's group is still open.
            added, count = await asyncio.gather(store.add("dpop_jti", "hot", 60), store.incr("counter", "k", 60))
            assert added is True and count == 1
        finally:
            await db.close()
        assert _on_disk(tmp_path / "g.db", "SELECT count(*) FROM onetime WHERE key IN ('hot', 'k')") == 2

    asyncio.run(main())


_op = st.tuples(st.sampled_from(["add", "consume", "take", "put"]), st.sampled_from(["a", "b", "c"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, min_size=1, max_size=24))
def test_concurrent_single_use_holds_under_group_commit(tmp_path: Path, ops: list[tuple[str, str]]) -> None:
    """Whatever mix of concurrent operations lands in one group: each replay-cache key is added once,
    each code consumed first once, each entry taken once (RFC 6749 §4.1.2, RFC 9449 §11.1), and what
    the callers were told is what another connection finds committed."""
    # A database of its own per example: hypothesis may run the same list of operations twice.
    path = tmp_path / f"p-{secrets.token_hex(8)}.db"

    async def main() -> None:
        db, store, _sent = await _open(path)
        try:
            for key in "abc":
                await store.put("code", key, {"k": key}, 60)
                await store.put("entry", key, {"k": key}, 60)

            async def one(op: str, key: str) -> tuple[str, str, object]:
                if op == "add":
                    return op, key, await store.add("jti", key, 60)
                if op == "consume":
                    found = await store.consume("code", key)
                    return op, key, None if found is None else found[1]
                if op == "take":
                    return op, key, await store.take("entry", key)
                await store.put("other", key, {"k": key}, 60)
                return op, key, True

            results = await asyncio.gather(*(one(op, key) for op, key in ops))
        finally:
            await db.close()
        for key in "abc":
            assert sum(1 for op, k, r in results if op == "add" and k == key and r is True) == min(
                1, sum(1 for op, k in ops if op == "add" and k == key)
            )
            assert sum(1 for op, k, r in results if op == "consume" and k == key and r is True) == min(
                1, sum(1 for op, k in ops if op == "consume" and k == key)
            )
            assert sum(1 for op, k, r in results if op == "take" and k == key and r is not None) == min(
                1, sum(1 for op, k in ops if op == "take" and k == key)
            )
            added = any(op == "add" and k == key for op, k in ops)
            assert _on_disk(path, "SELECT count(*) FROM onetime WHERE kind = 'jti' AND key = ?", key) == int(added)
            taken = any(op == "take" and k == key for op, k in ops)
            assert _on_disk(path, "SELECT count(*) FROM onetime WHERE kind = 'entry' AND key = ?", key) == int(
                not taken
            )

    asyncio.run(main())
