"""The invariants of the fuzz campaign, checked on every request it sends to the live server:

- never a 5xx;
- the security headers on every response (web/security_headers.py; RFC 9700 §4.16, §4.2.4);
- a 4xx from an OAuth endpoint is JSON with an error code its RFC registers, `Cache-Control: no-store`,
  a challenge on 401 and `Allow` on 405; a 4xx from a browser endpoint is an HTML page, never a redirect;
- the keep-alive connection survives: the next, ordinary request goes over the same connection;
- a refused request writes nothing: no new or changed row in the durable store or the one-time store
  (audit events, login throttling, health probes and replay caches aside: those record that a request
  was seen, whatever its fate).
"""

from __future__ import annotations

import asyncio
import base64
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
from support.demo import BACKEND, NATIVE, NATIVE_REDIRECT
from support.server import DEMO_SECRET, Server

# -- registered error codes ---------------------------------------------------------------------------
RFC6749_TOKEN = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
}  # RFC 6749 §5.2
RFC6749_AUTHZ = {
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
}  # RFC 6749 §4.1.2.1
DPOP = {"invalid_dpop_proof", "use_dpop_nonce"}  # RFC 9449 §5, §8, §12.2
RAR = {"invalid_authorization_details"}  # RFC 9396 §5
REQUEST_OBJECTS = {"invalid_request_object", "request_not_supported"}  # RFC 9101 §6.3, OIDC Core §3.1.2.6
BEARER = {"invalid_request", "invalid_token", "insufficient_scope"}  # RFC 6750 §3.1
REGISTRATION = {
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "invalid_software_statement",
    "unapproved_software_statement",
}  # RFC 7591 §3.2.2

REGISTERED_ERRORS: dict[str, frozenset[str]] = {
    "/token": frozenset(RFC6749_TOKEN | DPOP | RAR),
    # RFC 9126 §2.3: the authorization endpoint's errors, and the token endpoint's for client authentication.
    "/par": frozenset(
        (RFC6749_AUTHZ - {"server_error", "temporarily_unavailable"})
        | {"invalid_client"}
        | DPOP
        | RAR
        | REQUEST_OBJECTS
    ),
    "/userinfo": frozenset(BEARER | DPOP),  # OIDC Core §5.3.3, RFC 9449 §7.1
    "/introspect": frozenset({"invalid_request", "invalid_client"}),  # RFC 7662 §2.3
    "/revoke": frozenset({"invalid_request", "invalid_client", "unsupported_token_type"}),  # RFC 7009 §2.2.1
    # RFC 7591 §3.2.2, RFC 7592 §2 (invalid_token, RFC 6750), and invalid_request for 405/413.
    "/register": frozenset(REGISTRATION | {"invalid_token", "invalid_request"}),
    # The bank's consent resources (oauth/consent_resources.py): authenticated as at introspection.
    "/consent-resources": frozenset({"invalid_request", "invalid_client", "access_denied", "not_found"} | RAR),
}
BROWSER_ENDPOINTS = ("/authorize", "/interaction/", "/logout", "/account/")
_DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")  # RFC 6749 §5.2 error_description

# Answers after which the server closes the connection on purpose: 413, 414, 431 (size limits).
CLOSING_STATUSES = (413, 414, 431)


def endpoint_of(path: str) -> str:
    for prefix in ("/register", "/consent-resources"):
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return path


def check_security_headers(resp: httpx.Response, https: bool) -> None:
    """web/security_headers.py: on every response, errors included (RFC 9700 §4.16 clickjacking,
    §4.2.4 Referer leakage; HSTS when served over https)."""
    h = resp.headers
    where = f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}"
    assert h.get("x-frame-options") == "DENY", where
    assert h.get("x-content-type-options") == "nosniff", where
    assert h.get("referrer-policy") == "no-referrer", where
    assert h.get("cross-origin-opener-policy") == "same-origin", where
    assert "frame-ancestors 'none'" in h.get("content-security-policy", ""), where
    if https:
        assert h.get("strict-transport-security", "").startswith("max-age="), where


def check_oauth_error(resp: httpx.Response, endpoint: str) -> dict[str, Any]:
    """A 4xx from an OAuth endpoint: JSON `{"error", "error_description"?}` with a registered code
    (RFC 6749 §5.2 and the endpoint's RFC), never cached; 401 with a challenge; 405 with Allow."""
    where = f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}: {resp.text[:300]!r}"
    assert resp.headers.get("content-type", "").startswith("application/json"), where
    body = orjson.loads(resp.content)
    assert isinstance(body, dict) and set(body) <= {"error", "error_description"}, where
    assert body.get("error") in REGISTERED_ERRORS[endpoint], where
    assert _DESCRIPTION.fullmatch(body.get("error_description", "")), where
    assert "no-store" in resp.headers.get("cache-control", ""), where
    if resp.status_code == 401:
        assert resp.headers.get("www-authenticate"), where
    if resp.status_code == 405:
        assert resp.headers.get("allow"), where
    return body


def check_response(resp: httpx.Response, https: bool) -> None:
    path = resp.request.url.path
    where = f"{resp.request.method} {path} -> {resp.status_code}: {resp.text[:300]!r}"
    assert resp.status_code < 500, where
    check_security_headers(resp, https)
    endpoint = endpoint_of(path)
    if resp.status_code == 404 and resp.content == b'{"error":"not_found"}':
        return  # no such resource (e.g. /register/a%2Fb is /register/a/b: no route), RFC 9110 §15.5.5
    if 400 <= resp.status_code < 500:
        if endpoint in REGISTERED_ERRORS:
            check_oauth_error(resp, endpoint)
        elif path.startswith(BROWSER_ENDPOINTS):
            assert "location" not in resp.headers, where  # RFC 9700 §4.11: an error page, not a redirect
            assert resp.headers.get("content-type", "").startswith("text/html"), where
    if resp.status_code in (301, 302, 303, 307, 308):
        assert resp.headers.get("location"), where


def is_refusal(resp: httpx.Response) -> bool:
    """An error answer: a 4xx, or an authorization error redirected to the client (RFC 6749 §4.1.2.1),
    in the query or in a JARM response JWT."""
    if resp.status_code >= 400:
        return True
    if resp.status_code != 303:
        return False
    query = parse_qs(urlsplit(resp.headers.get("location", "")).query)
    if "error" in query:
        return True
    if "response" in query:  # JARM: the error is in the (signed) payload
        payload = query["response"][0].split(".")[1]
        return "error" in orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return False


# -- what the server has stored ---------------------------------------------------------------------------
# Tables and one-time kinds that record that a request was seen, whatever its outcome (audit events,
# login attempts and throttling, replay caches of proofs and assertions, health probes); and the bank's
# ledger, which the authorization server's endpoints never write (the bank's API is fuzzed on its own).
_NOT_STATE = re.compile(r"audit|login|throttl|lockout|rate_?limit|replay|_jti$|health|^alembic|^bank_")


class Rows:
    """The rows of every table of the server's database, and the keys of its Redis one-time store."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pg: Any = None
        self._redis: Any = None
        if server.backend == "postgres":
            import asyncpg
            import redis

            self._loop = asyncio.new_event_loop()
            self._pg = self._loop.run_until_complete(asyncpg.connect(server.env["FINGRADE_DATABASE_URL"]))
            self._redis = redis.Redis.from_url(server.env["FINGRADE_REDIS_URL"])
            self._prefix = server.env["FINGRADE_REDIS_PREFIX"]
            self._tables = [
                r[0]
                for r in self._loop.run_until_complete(
                    self._pg.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
                if not _NOT_STATE.search(r[0])
            ]
        else:
            self._db = sqlite3.connect(
                f"file:{server.data_dir / 'fingrade.db'}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            self._tables = [
                r[0]
                for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if not _NOT_STATE.search(r[0]) and not r[0].startswith("sqlite_")
            ]

    def close(self) -> None:
        if self._pg is not None:
            assert self._loop is not None
            self._loop.run_until_complete(self._pg.close())
            self._loop.close()
            self._redis.close()
        else:
            self._db.close()

    def _fetch(self, table: str) -> list[tuple[Any, ...]]:
        sql = f'SELECT * FROM "{table}"'
        if self._pg is not None:
            assert self._loop is not None
            return [tuple(r) for r in self._loop.run_until_complete(self._pg.fetch(sql))]
        return self._db.execute(sql).fetchall()

    def snapshot(self) -> dict[str, frozenset[Any]]:
        out: dict[str, frozenset[Any]] = {}
        for table in self._tables:
            rows = self._fetch(table)
            if table == "onetime":  # (kind, key, ...): the kinds that record a request are not state
                rows = [r for r in rows if not _NOT_STATE.search(str(r[0]))]
            out[table] = frozenset(rows)
        if self._redis is not None:
            keys = [k.decode() for k in self._redis.scan_iter(match=self._prefix + "*", count=1000)]
            out["redis"] = frozenset(k for k in keys if not _NOT_STATE.search(k[len(self._prefix) :].split(":")[0]))
        return out

    @staticmethod
    def written(before: dict[str, frozenset[Any]], after: dict[str, frozenset[Any]]) -> dict[str, list[Any]]:
        """Rows that are new or changed (rows that disappeared were purged by the janitor)."""
        return {
            t: sorted(map(repr, after[t] - before.get(t, frozenset())))[:3]
            for t in after
            if after[t] - before.get(t, frozenset())
        }


# -- the probe ---------------------------------------------------------------------------------------------
Headers = Sequence[tuple[bytes, bytes]]


class Probe:
    """Sends requests over ONE keep-alive HTTP/1.1 connection and checks the invariants on each: the
    response (check_response), that an ordinary request afterwards travels over the same connection,
    and that a refused request wrote nothing."""

    def __init__(self, server: Server, *, base_url: str | None = None, rows: bool = True) -> None:
        self.server = server
        self.base_url = base_url or server.base_url
        self.https = server.issuer.startswith("https://")
        verify: Any = server.ssl_context() if self.base_url.startswith("https://") else False
        self.client = httpx.Client(
            base_url=self.base_url,
            verify=verify,
            timeout=30,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self.rows = Rows(server) if rows else None
        self._state = self.rows.snapshot() if self.rows else None
        self.client.get("/.well-known/openid-configuration")  # opens the connection

    def close(self) -> None:
        self.client.close()
        if self.rows is not None:
            self.rows.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        query: bytes | None = None,
        headers: Headers = (),
        content: bytes | None = None,
        must_refuse: bool = False,
    ) -> httpx.Response:
        """One request and its invariants; `must_refuse`: the request is invalid, so a success fails.
        `query` is sent as it is (bytes outside visible ASCII percent-encoded, as HTTP/1.1 requires)."""
        self.client.cookies.clear()  # each example stands alone
        target: Any = url
        if query is not None:
            raw = url.encode() + b"?" + re.sub(rb"[^\x21-\x7e]", lambda m: b"%%%02X" % m.group()[0], query)
            target = httpx.URL(self.base_url).copy_with(raw_path=raw)
            url = raw.decode()
        # What h11 will put on the wire: no whitespace around a value (RFC 9110 §5.5), one Host.
        sent = [(name, value.strip(b" \t")) for name, value in headers]
        hosts = [i for i, (name, _) in enumerate(sent) if name.lower() == b"host"]
        sent = [h for i, h in enumerate(sent) if i not in hosts[1:]]
        try:
            resp = self.client.request(method, target, headers=sent, content=content)
        except httpx.LocalProtocolError:
            raise  # the test's own request cannot be sent: not the server's doing
        except httpx.HTTPError as exc:
            self._written()
            raise AssertionError(f"{method} {url[:200]}: no answer, the connection was dropped ({exc!r})") from None
        stream = resp.extensions.get("network_stream")
        failure: AssertionError | None = None
        try:
            check_response(resp, self.https)
            if must_refuse:
                assert is_refusal(resp), (method, url[:200], resp.status_code, resp.text[:300])
        except AssertionError as exc:
            failure = exc
        try:  # the connection and the stored state are checked (and tracked) whatever the answer
            self._after(resp, method, url, stream)
        except AssertionError as exc:
            if failure is None:
                raise
            failure.add_note(f"and: {exc}")
        if failure is not None:
            # The request itself, to replay it (hypothesis shrinks it before it gets here).
            failure.add_note(
                f"request: {method} {url[:1000]}\nheaders: {sent!r}"[:3000]
                + (f"\nbody: {content[:2000]!r}" if content else "")
            )
            raise failure
        return resp

    def _written(self) -> dict[str, list[Any]]:
        """What changed in the stores since the last request (and remember the new state)."""
        if self.rows is None:
            return {}
        before, self._state = self._state, self.rows.snapshot()
        return Rows.written(before or {}, self._state)

    def _after(self, resp: httpx.Response, method: str, url: str, stream: Any) -> None:
        written = self._written()
        try:
            follow = self.client.get("/.well-known/openid-configuration")
        except httpx.HTTPError as exc:
            raise AssertionError(
                f"{method} {url[:200]} -> {resp.status_code}: the next request on the connection failed ({exc!r})"
            ) from None
        assert follow.status_code == 200, follow.status_code
        if resp.status_code in CLOSING_STATUSES:
            # A body or head over the limits is not read: the server announces the close (RFC 9112 §9.6)
            # instead of draining what it refuses; the next request goes on a new connection.
            assert resp.headers.get("connection", "").lower() == "close", (
                f"{method} {url[:200]} -> {resp.status_code} without Connection: close"
            )
        else:
            assert follow.extensions.get("network_stream") is stream, (
                f"{method} {url[:200]} -> {resp.status_code}: the server closed the keep-alive connection"
            )
        if is_refusal(resp):
            assert not written, f"{method} {url[:200]} -> {resp.status_code} wrote {written}"


@contextmanager
def probe(server: Server, **kw: Any) -> Iterator[Probe]:
    p = Probe(server, **kw)
    try:
        yield p
    finally:
        p.close()


# -- real credentials ----------------------------------------------------------------------------------------
def basic(client_id: str, secret: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{client_id}:{secret}".encode())


@dataclass(frozen=True)
class FuzzCredentials:
    backend: bytes  # Basic credentials of demo-backend (confidential, client_secret_basic)
    resource_server: bytes  # Basic credentials of a resource server (introspects every token)
    initial_access_token: str  # RFC 7591 §3
    user_token: str  # alice's Bearer access token with `openid` (native demo app)

    @classmethod
    def create(cls, server: Server, resource_server: tuple[str, str]) -> FuzzCredentials:
        from support.flow import run_flow

        iat = server.cli("registration-token", "create", "--label", "fuzz", "--expires-in", "86400").stdout.strip()
        with server.client(follow_redirects=False) as browser:
            got = run_flow(browser, NATIVE, NATIVE_REDIRECT)
            resp = browser.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": got.code,
                    "redirect_uri": NATIVE_REDIRECT,
                    "client_id": NATIVE,
                    "code_verifier": got.verifier,
                },
            )
        assert resp.status_code == 200, resp.text
        return cls(basic(BACKEND, DEMO_SECRET), basic(*resource_server), iat, resp.json()["access_token"])

    def client_credentials_token(self, server: Server) -> str:
        with server.client() as http:
            resp = http.post(
                "/token",
                data={"grant_type": "client_credentials", "scope": "accounts"},
                headers={"Authorization": self.backend.decode()},
            )
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]
