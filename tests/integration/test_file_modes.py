"""The data directory holds password hashes, personal data, the ledger, signing keys (sealed) and the
secrets that unseal them: only the server's own user may read it. The directory is 0700 and every file
in it 0600 (the SQLite database with its -wal/-shm/-journal files, secrets.json, the development TLS
key), whatever the umask; an existing installation with looser modes is fixed at start."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from support.flow import CSRF
from support.server import DEMO_PASSWORD, Server, free_port, start_server

PRIVATE = ("fingrade.db", "fingrade.db-wal", "fingrade.db-shm", "secrets.json", "dev-tls-key.pem")


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sign_in(server: Server) -> None:
    """Some writes (a session, audit rows), so the database's WAL files exist."""
    with server.client(follow_redirects=False) as browser:
        page = browser.get("/account/login")
        resp = browser.post(
            "/account/login",
            data={"username": "alice", "password": DEMO_PASSWORD, "csrf_token": CSRF.search(page.text).group(1)},
        )
        assert resp.status_code == 303


def check_private(data_dir: Path) -> None:
    assert mode(data_dir) == 0o700, oct(mode(data_dir))
    present = {p.name for p in data_dir.iterdir()}
    assert {"fingrade.db", "secrets.json", "dev-tls-key.pem"} <= present, present
    for name in PRIVATE + ("fingrade.db-journal",):
        if name in present:
            assert mode(data_dir / name) == 0o600, (name, oct(mode(data_dir / name)))


def test_data_directory_and_database_files_are_private(tmp_path: Path) -> None:
    port = free_port()
    with umask(0o022):  # the usual default, under which new files would be world-readable
        server = start_server(tmp_path, port=port)
    try:
        sign_in(server)
        check_private(server.data_dir)
        assert "fingrade.db-wal" in {p.name for p in server.data_dir.iterdir()}
    finally:
        server.stop()
    # An installation made before (or by hand) with loose modes: fixed when the server starts.
    os.chmod(server.data_dir, 0o755)
    for name in PRIVATE:
        if (server.data_dir / name).exists():
            os.chmod(server.data_dir / name, 0o644)
    with umask(0o022):
        again = start_server(tmp_path, port=port)
    try:
        assert again.data_dir == server.data_dir
        check_private(again.data_dir)
        sign_in(again)
        check_private(again.data_dir)
    finally:
        again.stop()


def test_cli_creates_a_private_database(tmp_path: Path) -> None:
    """`fingrade migrate` on a new installation (before any server ran) creates it private too."""
    import subprocess
    import sys

    data_dir = tmp_path / "fresh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINGRADE_")}
    env["FINGRADE_DATA_DIR"] = str(data_dir)
    with umask(0o022):
        subprocess.run(
            [sys.executable, "-m", "fingrade.cli", "migrate"], env=env, check=True, capture_output=True, timeout=120
        )
    assert mode(data_dir) == 0o700
    for name in ("fingrade.db", "secrets.json"):
        assert mode(data_dir / name) == 0o600, name
