"""Real store outages for tests: a private redis-server to stop and start, a TCP hop in front of
PostgreSQL to cut (the shared PostgreSQL must stay up for everyone else), a tiny tmpfs to fill or
make read-only for SQLite, and one kept-alive HTTP connection to see whether the server drops it."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.server import PG_ADMIN_URL, Server, free_port


class RedisServer:
    """redis-server on its own port; `persistent` turns the append-only file on (in `workdir`)."""

    def __init__(self, workdir: Path, persistent: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.persistent = persistent
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.workdir),
            "--save",
            "",
        ]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        for _ in range(100):
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: a clean shutdown (the append-only file is complete)
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


class TcpCut:
    """A TCP forwarder to PostgreSQL that the test can cut (existing connections reset, new ones
    refused, as when the database goes down) and restore on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def database_url(self, url: str) -> str:
        """`url` (a database on the real server) reached through this hop."""
        scheme, rest = url.split("://", 1)
        user, hostpath = rest.split("@", 1)
        return f"{scheme}://{user}@127.0.0.1:{self.port}/{hostpath.split('/', 1)[1]}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self._listener is not None
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; new connections: refused
        self._listener.close()
        self._listener = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    conn.close()  # RST
            self._conns.clear()

    def close(self) -> None:
        if self._listener is not None:
            self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def pg_target() -> tuple[str, int]:
    hostport = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    host, _, port = hostport.partition(":")
    return host, int(port or 5432)


@contextlib.contextmanager
def tmpfs(path: Path, size_kib: int) -> Iterator[Path]:
    """A private tmpfs of `size_kib` at `path` (needs root, as the test machine has)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    """mode "ro" or "rw" (root ignores file permissions, so read-only means a read-only mount)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; delete it to free the space again."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 4096)
            except OSError:
                break
    finally:
        os.close(fd)
    return filler


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class KeptConnection:
    """One HTTPS connection, reused for every request: `request` fails if the server closed it."""

    def __init__(self, server: Server) -> None:
        host, port = server.base_url.split("://", 1)[1].split(":")
        self.conn = http.client.HTTPSConnection(host, int(port), context=server.ssl_context(), timeout=20)
        self.conn.connect()
        self.sock = self.conn.sock

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        if self.conn.sock is not self.sock:
            raise AssertionError("the server closed the keep-alive connection")
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
        except (http.client.HTTPException, OSError) as exc:
            raise AssertionError(f"the server dropped the connection: {exc!r}") from None
        reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        if self.conn.sock is not self.sock or reply.headers.get("connection", "").lower() == "close":
            raise AssertionError(f"the server closed the connection after {method} {path} ({resp.status})")
        return reply

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> KeptConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # before the server stops: it waits for open connections


@contextlib.contextmanager
def read_only_bind(path: Path) -> Iterator[Path]:
    """`path` (a file) read-only in place, its directory still writable (root ignores file modes,
    so a read-only bind mount of the file itself)."""
    bound = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)
