"""Files only the server's own user may read: the data directory (0700) and what it holds (0600) -
the SQLite database with its -wal/-shm/-journal files (password hashes, personal data, the ledger),
secrets.json, the development TLS key. Created so whatever the umask, and an installation made
with looser modes (or by an older version) is tightened at start, with a warning."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("fingrade")

DIR_MODE, FILE_MODE = 0o700, 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def tighten(path: Path, wanted: int) -> None:
    """Take away every permission beyond `wanted` (never add one)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~wanted:
        os.chmod(path, current & wanted)
        log.warning("%s was readable by others (mode %o); now %o", path, current, current & wanted)


def private_dir(path: Path) -> None:
    """The directory, created 0700 if missing (with its parents), else tightened to 0700."""
    if not path.exists():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tighten(path, DIR_MODE)


def private_file(path: Path) -> None:
    """The file, created empty 0600 if missing (so that whoever writes it next keeps that mode), else
    tightened to 0600."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        tighten(path, FILE_MODE)


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """`path` holds `data` in full or is as it was: written to a new file (created with `mode`) in the
    same directory, synced, then renamed over it. A reader (the server's TLS set-up, a client given
    the certificate) never sees half a file, nor does the next start after a crash mid-write."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def private_sqlite(database: Path) -> None:
    """Before SQLite opens it: the database file 0600 (SQLite gives the -wal, -shm and -journal files
    it creates the database file's mode) and any companions left by an earlier run tightened too."""
    if not database.parent.exists():
        private_dir(database.parent)
    private_file(database)
    for suffix in SQLITE_COMPANIONS:
        tighten(database.with_name(database.name + suffix), FILE_MODE)


def secure_data_dir(data_dir: Path) -> None:
    """At start: an existing data directory and the secrets in it tightened."""
    if data_dir.exists():
        tighten(data_dir, DIR_MODE)
        for name in ("secrets.json", "dev-tls-key.pem"):
            tighten(data_dir / name, FILE_MODE)
