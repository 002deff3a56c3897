"""Real store outages against the real server, at the authorization server (back channel and
pages) and at the bank API: Redis stopped, PostgreSQL cut, the SQLite disk full, a node started on a
read-only database. Every answer is 503 `temporarily_unavailable` with Retry-After (RFC 6749
§4.1.2.1, RFC 9110 §10.2.3) and the security headers, the keep-alive connection stays usable for
the client's retry, nothing is half written, and everything recovers without a restart. `/healthz`
(liveness) stays 200 while `/readyz` (readiness: a write and a read in each store) says 503."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from support.bank import PREFIX, Fintech, account_information, payment_body, payment_initiation
from support.outage import KeptConnection, RedisServer, Reply, TcpCut, fill, pg_target, read_only_bind, tmpfs
from support.server import DEMO_SECRET, Server, _create_pg_database, drop_pg_database, start_server

SECURITY_HEADERS = (
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "content-security-policy",
    "strict-transport-security",
)
BASIC = "Basic " + base64.b64encode(f"demo-backend:{DEMO_SECRET}".encode()).decode()
FORM = {"Authorization": BASIC, "Content-Type": "application/x-www-form-urlencoded"}
# Redeeming a code takes it from the one-time store; an unknown one is invalid_grant (RFC 6749 §5.2).
REDEEM = urlencode(
    {
        "grant_type": "authorization_code",
        "code": "x" * 43,
        "code_verifier": "v" * 43,
        "redirect_uri": "https://localhost:9443/callback",
    }
).encode()
# A browser starting a sign-in: the request is parked in the one-time store before the login page.
AUTHORIZE = "/authorize?" + urlencode(
    {
        "response_type": "code",
        "client_id": "demo-native",
        "redirect_uri": "http://127.0.0.1:8765/callback",
        "scope": "openid",
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
)
# A pushed authorization request is written to the one-time store (RFC 9126 §2.2).
PUSH = urlencode(
    {
        "response_type": "code",
        "redirect_uri": "https://localhost:9443/callback",
        "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
).encode()
PAGE = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def assert_unavailable(reply: Reply) -> None:
    assert reply.status == 503, (reply.status, reply.body[:300])
    assert reply.headers.get("retry-after", "").isdigit(), reply.headers
    assert "no-store" in reply.headers.get("cache-control", ""), reply.headers
    missing = [h for h in SECURITY_HEADERS if h not in reply.headers]
    assert not missing, f"security headers missing: {missing}"


def assert_as_unavailable(reply: Reply) -> None:
    assert_unavailable(reply)
    assert json.loads(reply.body) == {"error": "temporarily_unavailable"}


def assert_page_unavailable(reply: Reply) -> None:
    assert_unavailable(reply)
    assert reply.headers["content-type"].startswith("text/html"), reply.headers
    assert b"temporarily_unavailable" in reply.body or b"try again" in reply.body.lower()


def assert_bank_unavailable(reply: Reply) -> None:
    assert_unavailable(reply)
    assert json.loads(reply.body)["error"] == "temporarily_unavailable"
    assert reply.headers.get("x-fapi-interaction-id"), reply.headers


def bank_call(
    conn: KeptConnection,
    fintech: Fintech,
    token: str,
    path: str = "/accounts",
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    hdrs = {"Authorization": f"DPoP {token}", "DPoP": fintech.proof(path, token, method=method), **(headers or {})}
    return conn.request(method, PREFIX + path, body=body, headers=hdrs)


def readiness(conn: KeptConnection) -> tuple[int, dict]:
    reply = conn.request("GET", "/readyz")
    return reply.status, json.loads(reply.body)


def eventually(check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Recovery without a restart: a pooled PostgreSQL connection is not pinged before use, so the
    first requests after the database is back may still meet a dead one (and get a 503)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "did not recover"
        time.sleep(0.3)


# -- Redis --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def on_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, RedisServer, Fintech, str]]:
    """PostgreSQL + a private Redis (no persistence) that the tests stop and start."""
    tmp = tmp_path_factory.mktemp("redis-outage")
    redis = RedisServer(tmp)
    server = start_server(tmp, backend="postgres", extra_env={"FINGRADE_REDIS_URL": redis.url})
    try:
        fintech = Fintech(server, tmp)
        yield server, redis, fintech, fintech.token(account_information())
    finally:
        server.stop()
        redis.stop()
        drop_pg_database(server.env["FINGRADE_DATABASE_URL"])


def test_redis_outage_gives_503_at_the_as_and_the_bank_then_recovers(on_redis: tuple) -> None:
    server, redis, fintech, token = on_redis
    with KeptConnection(server) as conn:
        assert bank_call(conn, fintech, token).status == 200
        redis.stop()
        try:
            assert_as_unavailable(conn.request("POST", "/token", REDEEM, FORM))
            assert_page_unavailable(conn.request("GET", AUTHORIZE, headers=PAGE))
            # The bank checks the DPoP proof's jti in the shared one-time store (RFC 9449 §11.1).
            assert_bank_unavailable(bank_call(conn, fintech, token))
            assert conn.request("GET", "/healthz").status == 200  # alive ...
            status, body = readiness(conn)  # ... but not ready
            assert status == 503 and "onetime" in body["failed"], body
        finally:
            redis.start()
        assert bank_call(conn, fintech, token).status == 200
        assert json.loads(conn.request("POST", "/token", REDEEM, FORM).body)["error"] == "invalid_grant"
        eventually(lambda: readiness(conn)[0] == 200)
        assert "Traceback" not in (server.data_dir / "server.log").read_text()


def test_first_request_after_a_redis_restart_is_served(on_redis: tuple) -> None:
    """Pooled connections to the Redis that went away are replaced before a command is sent on them,
    so the first requests after a restart are answered, not failed."""
    server, redis, fintech, token = on_redis
    with KeptConnection(server) as conn:
        assert bank_call(conn, fintech, token).status == 200
        assert json.loads(conn.request("POST", "/token", REDEEM, FORM).body)["error"] == "invalid_grant"
        redis.restart()
        reply = bank_call(conn, fintech, token)
        assert reply.status == 200, reply.body
        assert json.loads(conn.request("POST", "/token", REDEEM, FORM).body)["error"] == "invalid_grant"


def test_redis_without_persistence_is_reported_at_start(on_redis: tuple) -> None:
    """Replay caches (DPoP proofs, client assertions, request objects) live in Redis: a Redis
    without an append-only file forgets them on restart, so the server says so when it starts."""
    server = on_redis[0]
    log = (server.data_dir / "server.log").read_text()
    assert "appendonly" in log and "replay" in log, log[-2000:]


def test_a_used_dpop_proof_stays_used_across_a_restart_of_a_persistent_redis(tmp_path: Path) -> None:
    """RFC 9449 §11.1: with the append-only file the README asks for, the replay cache survives a
    Redis restart, and no start-up warning is logged."""
    redis = RedisServer(tmp_path, persistent=True)
    server = start_server(tmp_path, backend="postgres", extra_env={"FINGRADE_REDIS_URL": redis.url})
    try:
        fintech = Fintech(server, tmp_path)
        token = fintech.token(account_information())
        with KeptConnection(server) as conn:
            headers = {"Authorization": f"DPoP {token}", "DPoP": fintech.proof("/accounts", token)}
            assert conn.request("GET", PREFIX + "/accounts", headers=headers).status == 200
            redis.restart()
            replay = conn.request("GET", PREFIX + "/accounts", headers=headers)
            assert replay.status == 401 and json.loads(replay.body)["error"] == "invalid_dpop_proof", replay.body
            assert "appendonly" not in (server.data_dir / "server.log").read_text()
    finally:
        server.stop()
        redis.stop()
        drop_pg_database(server.env["FINGRADE_DATABASE_URL"])


# -- PostgreSQL -----------------------------------------------------------------------------------


def test_postgresql_outage_gives_503_at_the_as_and_the_bank_then_recovers(tmp_path: Path) -> None:
    cut = TcpCut(pg_target())
    database = _create_pg_database()
    # The bank believes a positive introspection for a minute, so with the database gone it gets as
    # far as the ledger; clients are not cached, so the AS reads its database on every request.
    server = start_server(
        tmp_path,
        backend="postgres",
        database_url=cut.database_url(database),
        extra_env={"FINGRADE_BANK_INTROSPECTION_CACHE_SECONDS": "60", "FINGRADE_CLIENT_CACHE_SECONDS": "0"},
    )
    try:
        fintech = Fintech(server, tmp_path)
        token, unused = fintech.token(account_information()), fintech.token(account_information())
        with KeptConnection(server) as conn:
            assert bank_call(conn, fintech, token).status == 200
            cut.cut()
            try:
                assert_bank_unavailable(bank_call(conn, fintech, token))  # the ledger cannot be read
                assert_bank_unavailable(bank_call(conn, fintech, unused))  # introspection: the AS cannot answer
                assert_as_unavailable(conn.request("POST", "/token", REDEEM, FORM))
                assert_page_unavailable(conn.request("GET", AUTHORIZE, headers=PAGE))
                assert conn.request("GET", "/healthz").status == 200
                status, body = readiness(conn)
                assert status == 503 and "database" in body["failed"], body
            finally:
                cut.restore()
            eventually(lambda: bank_call(conn, fintech, token).status == 200)
            eventually(lambda: readiness(conn)[0] == 200)
            log = (server.data_dir / "server.log").read_text()
            # The bank says what failed, not that its credentials may be wrong.
            assert "check bank_client_id" not in log
            assert "temporarily unavailable" in log
            assert "Traceback" not in log
    finally:
        server.stop()
        cut.close()
        drop_pg_database(database)


# -- SQLite ---------------------------------------------------------------------------------------


def test_sqlite_disk_full_gives_503_at_the_as_and_the_bank_then_recovers(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", 16384) as disk:
        server = start_server(tmp_path, extra_env={"FINGRADE_DATABASE_URL": f"sqlite:///{disk}/fingrade.db"})
        try:
            fintech = Fintech(server, tmp_path, "--authorization-details-type", "payment_initiation")
            detail = payment_initiation("3.21")
            token = fintech.token(detail, scope="openid payments")
            with KeptConnection(server) as conn:
                body = json.dumps(payment_body(detail)).encode()
                pay = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
                filler = fill(disk)
                try:
                    assert_bank_unavailable(bank_call(conn, fintech, token, "/payments", "POST", body, pay))
                    assert_as_unavailable(conn.request("POST", "/par", PUSH, FORM))
                    assert_page_unavailable(conn.request("GET", AUTHORIZE, headers=PAGE))
                    assert conn.request("GET", "/healthz").status == 200
                    status, ready = readiness(conn)
                    assert status == 503 and "database" in ready["failed"], ready
                finally:
                    filler.unlink()
                # The client's retry with the same Idempotency-Key pays exactly once.
                paid = bank_call(conn, fintech, token, "/payments", "POST", body, pay)
                assert paid.status == 201, paid.body
                again = bank_call(conn, fintech, token, "/payments", "POST", body, pay)
                assert again.status == 201 and again.body == paid.body
                assert conn.request("POST", "/par", PUSH, FORM).status == 201
                eventually(lambda: readiness(conn)[0] == 200)
                assert "Traceback" not in (server.data_dir / "server.log").read_text()
        finally:
            server.stop()


def test_a_node_started_on_a_read_only_database_is_live_but_not_ready(tmp_path: Path) -> None:
    """The database file is read-only (its directory is not, as after a wrong chown): the node
    starts and reads, but cannot write, so it must not be given traffic."""
    db = tmp_path / "db" / "fingrade.db"
    env = {"FINGRADE_DATABASE_URL": f"sqlite:///{db}"}
    first = start_server(tmp_path, extra_env=env)
    first.stop()
    port = int(first.base_url.rsplit(":", 1)[1])
    with read_only_bind(db):
        server = start_server(tmp_path, extra_env=env, port=port)
        try:
            with KeptConnection(server) as conn:
                assert conn.request("GET", "/healthz").status == 200
                status, body = readiness(conn)
                assert status == 503 and "database" in body["failed"], body
                assert_page_unavailable(conn.request("GET", AUTHORIZE, headers=PAGE))
                assert conn.request("GET", "/jwks").status == 200  # what needs no write still works
        finally:
            server.stop()
