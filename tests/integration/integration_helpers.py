"""Helpers for the integration tests: getting tokens the way real clients do, dedicated servers
with their own settings, and read-only peeks into the server's database (for at-rest checks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from support.fapi import new_key
from support.flow import Authorized, authorize_url, consent, follow_to_client, login, pkce_pair, query_of, run_flow
from support.server import DEMO_PASSWORD, DEMO_SECRET, Server, drop_pg_database, start_server

BACKENDS = os.environ.get("FINGRADE_TEST_BACKENDS", "sqlite,postgres").split(",")
BASIC = ("demo-backend", DEMO_SECRET)
NATIVE_REDIRECT = "http://127.0.0.1:51234/callback"
SPA_REDIRECT = "https://localhost:3000/callback"
SPA_ORIGIN = "https://localhost:3000"
BACKEND_REDIRECT = "https://localhost:9443/callback"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def exchange(
    client: httpx.Client,
    got: Authorized,
    client_id: str | None = None,
    auth: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Redeem the code of a finished authorization (RFC 6749 §4.1.3)."""
    assert got.code, got.params
    data = {
        "grant_type": "authorization_code",
        "code": got.code,
        "redirect_uri": got.redirect_uri,
        "code_verifier": got.verifier,
    }
    if client_id is not None:
        data["client_id"] = client_id
    return client.post("/token", data=data, auth=auth, headers=headers)


def user_tokens(
    browser: httpx.Client,
    client_id: str = "demo-native",
    redirect_uri: str = NATIVE_REDIRECT,
    scope: str = "openid profile",
    auth: Any = None,
    **extra: str,
) -> dict[str, Any]:
    """Run the code flow for a user and return the token response. `auth` for confidential clients."""
    got = run_flow(browser, client_id, redirect_uri, scope=scope, **extra)
    resp = exchange(browser, got, client_id=None if auth else client_id, auth=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


def backend_tokens(
    browser: httpx.Client, scope: str = "openid profile offline_access accounts", **extra: str
) -> dict[str, Any]:
    """Tokens of the confidential demo client (with offline_access, a non-rotating refresh token)."""
    return user_tokens(browser, "demo-backend", BACKEND_REDIRECT, scope, auth=BASIC, **extra)


def client_credentials(http: httpx.Client, scope: str | None = None, auth: Any = BASIC) -> dict[str, Any]:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    resp = http.post("/token", auth=auth, data=data)
    assert resp.status_code == 200, resp.text
    return resp.json()


def introspect(http: httpx.Client, token: str, auth: Any = BASIC, **extra: str) -> httpx.Response:
    return http.post("/introspect", auth=auth, data={"token": token, **extra})


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def new_user(server: Server, password: str | None = None) -> tuple[str, str]:
    """A user nobody else has touched (no session, no consent) via `fingrade users add`."""
    username = "u" + secrets.token_hex(5)
    password = password or DEMO_PASSWORD
    server.cli(
        "users",
        "add",
        username,
        "--name",
        "Test " + username,
        "--email",
        f"{username}@example.test",
        "--password-stdin",
        input=password + "\n",
    )
    return username, password


def new_confidential_client(server: Server, *extra: str) -> tuple[str, str]:
    """A confidential client (client_secret_basic) of our own; returns (client_id, secret)."""
    out = server.add_client(
        "--name",
        "Test fintech " + secrets.token_hex(3),
        "--profile",
        "confidential",
        "--redirect-uri",
        BACKEND_REDIRECT,
        "--scope",
        "openid profile email offline_access accounts payments",
        *extra,
    )
    return out["client_id"], out["client_secret"]


def www_authenticate(resp: httpx.Response) -> dict[str, str]:
    """Parse `Bearer k="v", ...` into {"scheme": "bearer", k: v}."""
    header = resp.headers["www-authenticate"]
    scheme, _, rest = header.partition(" ")
    out = {"scheme": scheme.lower()}
    out.update(dict(re.findall(r'(\w+)="([^"]*)"', rest)))
    return out


# -- private_key_jwt ------------------------------------------------------------------------


def signing_key(alg: str, kid: str | None = None) -> Any:
    return new_key(alg, kid)


def client_assertion(key: Any, alg: str, client_id: str, audience: str, lifetime: int = 60) -> str:
    """RFC 7523 §3 / OIDC Core §9 client assertion."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])


def jwks_client(server: Server, key: Any, tmp: Path, *extra: str) -> str:
    """Register a private_key_jwt client with `key`'s public half; returns its client_id."""
    path = tmp / f"jwks-{key.kid}.json"
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    out = server.add_client(
        "--name",
        "Key client " + key.kid,
        "--profile",
        "confidential",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(path),
        "--redirect-uri",
        BACKEND_REDIRECT,
        "--grant-type",
        "client_credentials",
        "--scope",
        "accounts payments",
        *extra,
    )
    return out["client_id"]


# -- dedicated servers and database peeks ---------------------------------------------------


@contextlib.contextmanager
def dedicated_server(tmp: Path, backend: str, extra_env: dict[str, str]) -> Iterator[Server]:
    """A server of our own with settings the shared one must not have."""
    srv = start_server(tmp, backend=backend, extra_env=extra_env)
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


def db_rows(server: Server, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the server's database directly (SQLite file or PostgreSQL). `?` placeholders."""
    if server.backend == "postgres":
        import asyncpg

        n = iter(range(1, 100))
        pg_sql = re.sub(r"\?", lambda _m: f"${next(n)}", sql)

        async def run() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(server.env["FINGRADE_DATABASE_URL"])
            try:
                return [tuple(r) for r in await conn.fetch(pg_sql, *params)]
            finally:
                await conn.close()

        return asyncio.run(run())
    import sqlite3

    conn = sqlite3.connect(f"file:{server.data_dir / 'fingrade.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def audit_events(server: Server, event: str, **match: str) -> list[tuple[Any, ...]]:
    where = " AND ".join(["event = ?"] + [f"{k} = ?" for k in match])
    return db_rows(
        server, f"SELECT event, client_id, user_id, ip, detail FROM audit_events WHERE {where}", event, *match.values()
    )


def user_id(server: Server, username: str) -> str:
    return db_rows(server, "SELECT id FROM users WHERE username = ?", username)[0][0]


def wait_for(condition: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    """Poll until `condition()` is truthy; return its value or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


# -- the authorization endpoint, step by step -----------------------------------------------


@dataclass
class Steps:
    """What a browser saw on its way through one authorization request."""

    saw_login: bool
    saw_consent: bool
    result: Authorized


def authorize_steps(
    browser: httpx.Client,
    client_id: str,
    redirect_uri: str,
    scope: str = "openid",
    username: str = "alice",
    password: str = DEMO_PASSWORD,
    decision: str = "approve",
    **extra: str,
) -> Steps:
    """Like `run_flow`, but records whether a login form and a consent page were shown."""
    verifier, challenge = pkce_pair()
    resp = browser.get(authorize_url(client_id, redirect_uri, challenge, scope, **extra))
    resp = follow_to_client(browser, resp, redirect_uri)
    saw_login = saw_consent = False
    if resp.status_code == 200 and 'name="password"' in resp.text:
        saw_login = True
        resp = follow_to_client(browser, login(browser, resp, username, password), redirect_uri)
    if resp.status_code == 200 and 'name="decision"' in resp.text:
        saw_consent = True
        resp = consent(browser, resp, decision)
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    location = resp.headers["location"]
    assert location.startswith(redirect_uri), location
    params = query_of(location)
    return Steps(
        saw_login,
        saw_consent,
        Authorized(
            code=params.get("code"), params=params, verifier=verifier, redirect_uri=redirect_uri, location=location
        ),
    )
