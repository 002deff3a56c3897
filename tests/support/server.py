"""Start the real server (`fingrade serve`) in a subprocess on a free loopback port; dedicated
servers with settings the shared one must not have; PostgreSQL databases of their own."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

DEMO_PASSWORD = "demo-password-for-tests"
DEMO_SECRET = "demo-backend-secret-for-tests-0123456789abcdef"
# The demo users' authenticator app (base32, 160 bits): tests compute its codes (support/sca.py).
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PG_ADMIN_URL = os.environ.get("FINGRADE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FINGRADE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    backend: str
    base_url: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None
    ca: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return self.base_url

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "fingrade.cli", *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(), timeout=20, **kw)

    def add_client(self, *args: str) -> dict:
        return json.loads(self.cli("clients", "add", *args).stdout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _pg_admin(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _create_pg_database() -> str:
    """A fresh PostgreSQL database per test session, so runs never see each other's rows."""
    name = "fingrade_t_" + secrets.token_hex(6)
    _pg_admin(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    _pg_admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def server_env(data_dir: Path, issuer: str) -> dict[str, str]:
    """The environment of a test server and of the command line run on its configuration: this
    process's environment without the developer's FINGRADE_* variables, plus the test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINGRADE_")}
    env.update(
        {
            "FINGRADE_DATA_DIR": str(data_dir),
            "FINGRADE_ISSUER": issuer,
            "FINGRADE_DEMO_PASSWORD": DEMO_PASSWORD,
            "FINGRADE_DEMO_CLIENT_SECRET": DEMO_SECRET,
            "FINGRADE_DEMO_TOTP_SECRET": DEMO_TOTP_SECRET,
            # Strong customer authentication is off unless a test turns it on: each TOTP code signs
            # in once (RFC 6238 §5.2), and most tests sign alice in many times a minute. The tests
            # of SCA itself (tests/**/test_sca_*.py, the Chromium journey) run with the default,
            # `required` (support/sca.py SCA_ON).
            "FINGRADE_SCA": "off",
            # Cheap password hashing keeps the suite fast; the benchmark uses the production default.
            "FINGRADE_ARGON2_MEMORY_KIB": "8192",
            "FINGRADE_ARGON2_TIME_COST": "1",
            "FINGRADE_ARGON2_PARALLELISM": "1",
            "FINGRADE_JANITOR_INTERVAL": "2",
            # Every test logs in from 127.0.0.1: the per-address limit gets its own server in
            # tests/integration/test_login_throttling.py.
            "FINGRADE_LOGIN_MAX_FAILURES_PER_ADDRESS": "100000",
        }
    )
    return env


def start_server(
    tmp: Path,
    backend: str = "sqlite",
    extra_env: dict[str, str] | None = None,
    database_url: str | None = None,
    port: int | None = None,
    secrets_from: Server | None = None,
    plain_http: bool = False,
    serve_args: tuple[str, ...] = ("--demo",),
    prepare: Callable[[dict[str, str]], None] | None = None,
) -> Server:
    """`plain_http`: `serve --http` behind a TLS-terminating proxy (set FINGRADE_ISSUER and
    FINGRADE_TRUSTED_PROXIES in extra_env); base_url is then the plain-HTTP address. `serve_args`:
    the options of `fingrade serve` (e.g. `--role bank`). `prepare(env)`: run before the server
    starts (and seeds the demo data), with the server's environment, e.g. command-line set-up."""
    port = port or free_port()
    data_dir = tmp / f"data-{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = server_env(data_dir, f"https://localhost:{port}")
    env.update({"FINGRADE_PORT": str(port), "FINGRADE_HOST": "127.0.0.1"})
    if backend == "postgres":
        env["FINGRADE_DATABASE_URL"] = database_url or _create_pg_database()
        env["FINGRADE_ONETIME_BACKEND"] = "redis"
        env["FINGRADE_REDIS_URL"] = REDIS_URL
        env["FINGRADE_REDIS_PREFIX"] = "fgtest:" + env["FINGRADE_DATABASE_URL"].rsplit("/", 1)[1] + ":"
    if secrets_from is not None:  # a second node of the same deployment shares its secrets
        shared = json.loads((secrets_from.data_dir / "secrets.json").read_text())
        env["FINGRADE_SECRET_KEY"] = shared["secret_key"]
        env["FINGRADE_KEY_ENCRYPTION_KEY"] = shared["key_encryption_key"]
    env.update(extra_env or {})
    if prepare is not None:
        prepare(env)
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 -- the server process writes to it while it runs
    args = [sys.executable, "-m", "fingrade.cli", "serve", *serve_args] + (["--http"] if plain_http else [])
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}" if plain_http else f"https://localhost:{port}"
    server = Server(
        backend=backend,
        base_url=base_url,
        data_dir=data_dir,
        env=env,
        process=proc,
        ca=str(data_dir / "dev-tls-cert.pem"),
    )
    try:
        if _wait_until_serving(server, proc, plain_http):
            return server
    except BaseException:
        server.stop()  # never leave a half-started server behind a failed start
        raise
    server.stop()
    raise RuntimeError(f"server did not start: {(data_dir / 'server.log').read_text()[-3000:]}")


def _wait_until_serving(server: Server, proc: subprocess.Popen, plain_http: bool) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(server.data_dir / 'server.log').read_text()[-3000:]}")
        try:
            if plain_http:
                if httpx.get(server.base_url + "/healthz", timeout=2).status_code == 200:
                    return True
            elif (
                Path(server.ca).exists()
                and httpx.get(server.base_url + "/healthz", verify=server.ssl_context(), timeout=2).status_code == 200
            ):
                return True
        except (httpx.HTTPError, ssl.SSLError, OSError):
            pass  # not listening yet, or (before the certificate was written whole) not readable yet
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def dedicated_server(
    tmp: Path, backend: str, extra_env: dict[str, str], prepare: Callable[[dict[str, str]], None] | None = None
) -> Iterator[Server]:
    """A server of our own with settings the shared one must not have."""
    srv = start_server(tmp, backend=backend, extra_env=extra_env, prepare=prepare)
    try:
        yield srv
    finally:
        srv.stop()
        if srv.backend == "postgres":
            drop_pg_database(srv.env["FINGRADE_DATABASE_URL"])


def uncached_bank_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, label: str
) -> contextlib.AbstractContextManager[Server]:
    """A dedicated server (backend = the fixture's param) whose bank introspects on every call, so a
    revocation shows at the bank API at once."""
    return dedicated_server(
        tmp_path_factory.mktemp(f"{label}-{request.param}"),
        request.param,
        {"FINGRADE_BANK_INTROSPECTION_CACHE_SECONDS": "0"},
    )
