"""An error nobody foresaw (here: rows corrupted behind the server's back) is answered, not dropped:
500 `server_error` as JSON with the security headers (the bank's with its x-fapi-interaction-id),
one traceback in the log and no secret in it, and the keep-alive connection stays open."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bank import PREFIX, Fintech, account_information
from support.outage import KeptConnection, Reply
from support.server import Server, start_server

SECURITY_HEADERS = (
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "content-security-policy",
    "strict-transport-security",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("unexpected"))  # SQLite: the test edits rows directly
    yield srv
    srv.stop()


def _db(server: Server) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "fingrade.db", timeout=10, isolation_level=None)


def _log(server: Server) -> str:
    return (server.data_dir / "server.log").read_text()


def assert_server_error(reply: Reply) -> None:
    assert reply.status == 500, (reply.status, reply.body[:300])
    assert json.loads(reply.body)["error"] == "server_error"
    assert reply.headers["content-type"].startswith("application/json")
    assert "no-store" in reply.headers.get("cache-control", "")
    missing = [h for h in SECURITY_HEADERS if h not in reply.headers]
    assert not missing, f"security headers missing: {missing}"


def test_unexpected_error_at_the_as_is_a_complete_500(server: Server) -> None:
    client = server.add_client(
        "--name", "Broken", "--profile", "confidential", "--grant-type", "client_credentials", "--scope", "accounts"
    )
    with _db(server) as db:  # a row the server cannot decode (never read before, so not cached)
        db.execute("UPDATE clients SET grant_types = 'not json' WHERE client_id = ?", (client["client_id"],))
    before = _log(server).count("Traceback")
    with KeptConnection(server) as conn:
        secret = client["client_secret"]
        basic = "Basic " + base64.b64encode(f"{client['client_id']}:{secret}".encode()).decode()
        reply = conn.request(
            "POST",
            "/token",
            b"grant_type=client_credentials",
            {"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert_server_error(reply)
        assert json.loads(reply.body) == {"error": "server_error"}
        assert conn.request("GET", "/healthz").status == 200  # the same connection
        log = _log(server)
        assert log.count("Traceback") == before + 1
        assert secret not in log and basic not in log


def test_unexpected_error_at_the_bank_is_a_complete_500_in_its_format(server: Server, tmp_path: Path) -> None:
    fintech = Fintech(server, tmp_path)
    token = fintech.token(account_information())
    with KeptConnection(server) as conn:

        def accounts() -> Reply:
            return conn.request(
                "GET",
                PREFIX + "/accounts",
                headers={
                    "Authorization": f"DPoP {token}",
                    "DPoP": fintech.proof("/accounts", token),
                    "x-fapi-interaction-id": "93bac548-d2de-4546-b106-880a5018460d",
                },
            )

        assert accounts().status == 200
        with _db(server) as db:
            db.execute(
                "UPDATE bank_accounts SET created_at = 'yesterday' WHERE owner_user_id = "
                "(SELECT id FROM users WHERE username = 'alice')"
            )
        before = _log(server).count("Traceback")
        try:
            reply = accounts()
            assert_server_error(reply)
            assert reply.headers["x-fapi-interaction-id"] == "93bac548-d2de-4546-b106-880a5018460d"
            assert conn.request("GET", "/healthz").status == 200
            log = _log(server)
            assert log.count("Traceback") == before + 1
            assert token not in log
        finally:
            with _db(server) as db:
                db.execute("UPDATE bank_accounts SET created_at = 1700000000 WHERE created_at = 'yesterday'")
