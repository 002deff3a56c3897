"""SQLite's WAL checkpoints run on their own thread while the server serves (store/sql/checkpoints.py):
the commits on the event loop never wait for a checkpoint's fsync, and the WAL is still copied back
into the database and kept bounded."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.store.sql import checkpoints
from fingrade.store.sql.db import Database
from fingrade.store.sql.migrate import upgrade
from fingrade.store.sql.onetime import SqlOneTimeStore


async def _write(store: SqlOneTimeStore, n: int) -> None:
    for i in range(n):
        assert await store.add(OneTimeKind.DPOP_JTI, f"proof-{time.monotonic_ns()}-{i}", 300)


def test_the_thread_copies_the_wal_back_while_the_loop_only_commits(tmp_path: Path) -> None:
    asyncio.run(_copies_back(tmp_path))


async def _serving(path: Path) -> tuple[Database, SqlOneTimeStore, checkpoints.WalCheckpointer]:
    """The database as the server opens it: migrated, checkpoints on their thread."""
    db = Database(f"sqlite:///{path}")
    await upgrade(db)
    db.start_background_checkpoints()
    checkpointer = db._checkpointer
    assert checkpointer is not None
    return db, SqlOneTimeStore(db), checkpointer


async def _copies_back(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db, store, checkpointer = await _serving(path)

    async def rounds(n: int) -> None:
        target = checkpointer.runs + n
        deadline = time.monotonic() + 10
        while checkpointer.runs < target and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert checkpointer.runs >= target

    try:
        conn = db.direct.conn  # type: ignore[union-attr]
        # The loop's own checkpoint is only the safety net now: alone it would not copy these pages yet.
        (pages,) = conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert pages == checkpoints.FALLBACK_AUTOCHECKPOINT_PAGES
        await rounds(2)  # what the migrations wrote is copied back
        before = path.stat().st_size
        await _write(store, 2000)
        await rounds(2)
        # The pages of those commits reached the database file itself: the thread copied them.
        assert path.stat().st_size > before
    finally:
        await db.close()
    # Stopped with the database: no thread left behind.
    assert db._checkpointer is None
    assert not checkpointer.running


def test_without_the_thread_the_loop_checkpoints_as_sqlite_does_by_default(tmp_path: Path) -> None:
    """The CLI and tests that open the database without serving keep SQLite's default (1000 pages)."""
    asyncio.run(_default_checkpoints(tmp_path))


async def _default_checkpoints(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    await upgrade(db)
    try:
        (pages,) = db.direct.conn.execute("PRAGMA wal_autocheckpoint").fetchone()  # type: ignore[union-attr]
        assert pages == 1000
    finally:
        await db.close()


def test_a_checkpoint_that_fails_is_retried_and_does_not_stop_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = Database(f"sqlite:///{path}")
    asyncio.run(upgrade(db))
    asyncio.run(db.close())
    worker = checkpoints.WalCheckpointer(str(path), interval=0.02)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        # An exclusive lock held elsewhere: the checkpoint cannot even read the schema.
        blocker.execute("PRAGMA locking_mode=EXCLUSIVE")
        blocker.execute("BEGIN EXCLUSIVE")
        worker.start()
        time.sleep(0.2)
        assert worker.running
        blocker.execute("COMMIT")
        blocker.close()  # in WAL mode only closing the connection gives up an exclusive locking mode
        runs = worker.runs
        deadline = time.monotonic() + 5
        while worker.runs == runs and time.monotonic() < deadline:
            time.sleep(0.02)
        assert worker.runs > runs
    finally:
        worker.stop()
        blocker.close()
    assert not worker.running


def test_past_the_threshold_the_thread_starts_the_wal_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PASSIVE checkpoint may never catch up with writes that keep coming, and SQLite only starts the
    WAL over after one did: past RESTART_FRAMES the thread makes it start over."""
    monkeypatch.setattr(checkpoints, "RESTART_FRAMES", 64)

    async def main() -> None:
        db, store, checkpointer = await _serving(tmp_path / "c.db")
        try:
            # Writes without a pause, for longer than several of the thread's rounds.
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                await _write(store, 50)
            # Past RESTART_FRAMES a round ends with a RESTART checkpoint: the next commit starts the
            # WAL over (how much a PASSIVE alone leaves behind depends on timing; this does not).
            assert checkpointer.restarts >= 1
        finally:
            await db.close()

    asyncio.run(main())
