"""SQLite WAL checkpoints on a thread of their own, off the event loop.

In WAL mode a commit appends pages to the `-wal` file, and a checkpoint copies them back into the
database. With `synchronous=NORMAL` a commit does not fsync; a checkpoint fsyncs twice (the WAL, then
the database). SQLite runs it inside whichever commit crosses `wal_autocheckpoint` pages: on the
server that is the event loop, which then waits on the disk and serves nobody (a FAPI flow writes
~30 pages, so under load that was several checkpoints a second and 7-11 % of the server core idle).

So the server checkpoints here instead: a thread with its own connection runs a PASSIVE checkpoint
every `interval` seconds. PASSIVE never waits for, nor blocks, the writer or the readers (sqlite3
releases the GIL while SQLite works), so the loop keeps serving while the pages are copied and
synced. Durability is unchanged: what a commit made durable is in the WAL either way.

Under steady writes a PASSIVE checkpoint never catches up with the last commit, and SQLite only
starts the WAL over from its beginning after one did: the file would grow until the safety net below.
So once the WAL holds `RESTART_FRAMES`, the thread follows its PASSIVE checkpoint with a RESTART one,
which holds the writer back only while it copies the few pages committed since (milliseconds), and the
next commit starts the WAL over.

The loop's connection keeps an automatic checkpoint, at a much higher threshold, as the safety net:
if this thread stops or falls behind, the WAL still does not grow without bound.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("fingrade.store")

INTERVAL_SECONDS = 0.25
# WAL size (in pages) at which the thread makes the WAL start over (about 16 MiB at 4 KiB pages).
RESTART_FRAMES = 4_000
# The loop's own automatic checkpoint, in pages: only reached when the thread cannot keep up.
FALLBACK_AUTOCHECKPOINT_PAGES = 16_000
# After a checkpoint the WAL is reused from its start; a file that grew past this is cut back.
JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


class WalCheckpointer:
    def __init__(self, path: str, interval: float = INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # checkpoints made (tests, diagnostics)
        self.restarts = 0  # of which the WAL was started over

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sqlite-wal-checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the thread after a last checkpoint (what the loop committed is copied back)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=10)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=5)
        except sqlite3.Error as exc:
            log.error("WAL checkpoints: cannot open the database (%s); the server's own checkpoints take over", exc)
            return
        try:
            while not self._stop.wait(self.interval):
                self._checkpoint(conn)
            self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= RESTART_FRAMES:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                self.restarts += 1
            self.runs += 1
        except sqlite3.Error as exc:
            # Transient (the database locked by a schema change, a full disk): the next round retries,
            # and the loop's automatic checkpoint bounds the WAL meanwhile.
            log.warning("WAL checkpoint failed: %s", exc)


def tune_loop_connection(conn: sqlite3.Connection) -> None:
    """The serving connection's checkpoint settings while a WalCheckpointer runs beside it."""
    conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_AUTOCHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
