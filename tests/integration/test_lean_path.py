"""The lean path (web/lean_path.py) answers exactly as the application behind it: the same requests,
valid and not, go on real sockets to two fronts of one clocked server (support/inprocess.py
`listen`): the application alone, and the lean path in front of it. Status, every header field (name,
value and order; not Date) and the body must be equal, once the values that are random by design
(tokens, request_uris, interaction ids, the browser cookie) are masked. The clock is frozen, so
times and DPoP nonces are equal too.

Requests that need fresh one-time values (client assertions, DPoP proofs, codes) are built once
for each front. The cases run with the default body limit (equal to the limit of the routes' own
reads, protocol/asgi.py MAX_BODY), a lower one and a higher one, so that each of the three 413
paths (declared length, chunked body cut off, the route's own limit) is compared."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import exc as sa
from support.bank import PREFIX, Fintech, account_information
from support.demo import BACKEND, BACKEND_REDIRECT, NATIVE, NATIVE_REDIRECT
from support.fapi import ASSERTION_TYPE, FapiClient
from support.flow import pkce_pair
from support.inprocess import InProcessServer
from support.server import DEMO_SECRET
from support.tokens import backend_tokens, client_credentials

from fingrade.protocol.asgi import MAX_BODY

pytestmark = [
    pytest.mark.dpop,
    pytest.mark.client_auth,
    pytest.mark.par,
    pytest.mark.introspection,
    pytest.mark.revocation,
    pytest.mark.fuzz,
]

FORM = "application/x-www-form-urlencoded"

# -- a raw HTTP/1.1 client ----------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


class _Parsed:
    def __init__(self, head: bool) -> None:
        self.head = head  # the answer to HEAD has no body
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done = False

    def on_headers_complete(self) -> None:
        self.done = self.head

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


def exchange(base: str, raw: bytes) -> Reply:
    """Send `raw` (a whole request) on a new connection and read one answer."""
    host, port = base.split("://", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        with contextlib.suppress(OSError):  # answered early and closed (an oversized body): read below
            sock.sendall(raw)
        parsed = _Parsed(raw.startswith(b"HEAD "))
        parser = httptools.HttpResponseParser(parsed)
        while not parsed.done:
            data = sock.recv(65536)
            if not data:
                break
            parser.feed_data(data)
        assert parsed.done, "no complete answer"
        return Reply(parser.get_status_code(), parsed.headers, b"".join(parsed.body))


def request(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    length: bool = True,
    raw_headers: bytes = b"",
) -> bytes:
    """A request as bytes: Host, the header fields in order, Content-Length (unless `length` is
    False or the method is GET without a body), then `raw_headers` as given, then the body."""
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: as.example.com"]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in headers or []]
    if length and (body or method != "GET"):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n" + raw_headers + b"\r\n" + body


def chunked(method: str, target: str, headers: list[tuple[str, str]], pieces: list[bytes]) -> bytes:
    head = request(method, target, headers, length=False, raw_headers=b"Transfer-Encoding: chunked\r\n")
    return head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


def form(**params: str) -> bytes:
    return urlencode(params).encode()


def basic(client_id: str = BACKEND, secret: str = DEMO_SECRET) -> tuple[str, str]:
    import base64

    return ("Authorization", "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode())


# -- comparison ---------------------------------------------------------------------------------

RANDOM = [
    re.compile(rb'("(?:access_token|refresh_token|id_token)":")[^"]+'),
    re.compile(rb"(urn:ietf:params:oauth:request_uri:)[A-Za-z0-9_-]+"),
    re.compile(rb"(/interaction/)[A-Za-z0-9_-]+"),
    re.compile(rb"(__Host-fg_browser=)[A-Za-z0-9_-]+"),
    re.compile(rb"([?&]code=)[A-Za-z0-9_-]+"),
    # The bank's x-fapi-interaction-id: a new UUID unless the client sent one.
    re.compile(rb"^()[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"),
]


JWS = re.compile(rb"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+")


def masked(value: bytes) -> bytes:
    if JWS.fullmatch(value):  # a signed answer (RFC 9701): its claims; an ECDSA signature is random
        value = JWS.sub(rb"\1.\2.<signature>", value)
    for pattern in RANDOM:
        value = pattern.sub(rb"\1<random>", value)
    return value


def differences(full: Reply, lean: Reply) -> list[str]:
    """What differs between the two answers ([] if nothing)."""
    out = []
    if full.status != lean.status:
        out.append(f"status {full.status} != {lean.status}")
    exact = full.body == lean.body
    if not exact and masked(full.body) != masked(lean.body):
        out.append(f"body {full.body[:300]!r} != {lean.body[:300]!r}")

    def fields(reply: Reply) -> list[tuple[bytes, bytes]]:
        return [
            (k, masked(v))
            for k, v in reply.headers
            if k != b"date" and not (k == b"content-length" and not exact)  # a random value's length
        ]

    if fields(full) != fields(lean):
        out.append(f"headers {fields(full)} != {fields(lean)}")
    return out


class Counted:
    """An ASGI application that counts its HTTP requests (and passes on its state)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls = 0

    @property
    def state(self) -> Any:
        return self.app.state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += scope["type"] == "http"
        await self.app(scope, receive, send)


@dataclass
class Fronts:
    """One clocked server on two loopback ports: the application alone, and behind the lean path."""

    srv: InProcessServer
    full: str
    lean: str
    tmp: Path
    front: Counted  # the lean path
    behind: Counted  # the application behind it: what the lean path hands over
    ctx: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)  # case -> "lean", "handed over" or "protocol"

    def both(self, make: Callable[[], bytes]) -> tuple[Reply, Reply]:
        return exchange(self.full, make()), exchange(self.lean, make())

    def compare(self, name: str, make: Callable[[], bytes]) -> list[str]:
        before = (self.front.calls, self.behind.calls)
        full, lean = self.both(make)
        if self.front.calls == before[0]:
            self.outcomes[name] = "protocol"  # refused by the HTTP protocol before any application
        else:
            self.outcomes[name] = "handed over" if self.behind.calls > before[1] else "lean"
        return [f"{name}: {d}" for d in differences(full, lean)]


def start_fronts(start_clocked: Callable[..., InProcessServer], tmp: Path, env: dict[str, str] | None = None) -> Fronts:
    # The janitor sleeps through the test: it would change state between the two requests of a case.
    srv = start_clocked({"FINGRADE_JANITOR_INTERVAL": "3600", **(env or {})})
    srv.clock.freeze()
    behind = srv.app.app = Counted(srv.app.app)
    front = Counted(srv.app)
    return Fronts(srv=srv, full=srv.listen(behind.app), lean=srv.listen(front), tmp=tmp, front=front, behind=behind)


@pytest.fixture
def fronts(start_clocked: Callable[..., InProcessServer], tmp_path: Path) -> Iterator[Fronts]:
    yield start_fronts(start_clocked, tmp_path)


# -- the cases ----------------------------------------------------------------------------------

Case = tuple[str, Callable[[], bytes]]


def body_limit_cases(limit: int) -> list[Case]:
    """Bodies at and around the route's limit and the routes' own read limit, declared and chunked."""
    cc = form(grant_type="client_credentials", scope="accounts")
    auth = [basic(), ("Content-Type", FORM)]
    cases: list[Case] = []
    for size in sorted({limit, limit + 1, MAX_BODY, MAX_BODY + 1}):
        padded = cc + b"&pad=" + b"x" * max(0, size - len(cc) - 5)
        cases += [
            (f"declared {size}", lambda p=padded: request("POST", "/token", auth, p)),
            (
                f"chunked {size}",
                lambda p=padded: chunked("POST", "/token", auth, [p[i : i + 4000] for i in range(0, len(p), 4000)]),
            ),
            (f"declared {size} at /par", lambda p=padded: request("POST", "/par", auth, p)),
            (f"declared {size} at /userinfo GET", lambda p=padded: request("GET", "/userinfo", auth, p)),
            (f"declared {size} at /authorize GET", lambda p=padded: request("GET", "/authorize", [], p)),
        ]
    cases += [
        (
            "declared only, body not sent",
            lambda: request("POST", "/token", auth, length=False, raw_headers=b"Content-Length: %d\r\n" % (limit + 1)),
        ),
        ("chunked, empty", lambda: chunked("POST", "/token", auth, [])),
        ("chunked, one byte pieces", lambda: chunked("POST", "/token", auth, [bytes([b]) for b in cc])),
        ("chunked GET /userinfo", lambda: chunked("GET", "/userinfo", auth, [b"x" * (limit + 10)])),
        (
            "two equal lengths",
            lambda: request(
                "POST",
                "/token",
                auth,
                cc,
                length=False,
                raw_headers=b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(cc), len(cc)),
            ),
        ),
        (
            "length and chunked",
            lambda: request(
                "POST",
                "/token",
                auth,
                b"5\r\nhello\r\n0\r\n\r\n",
                length=False,
                raw_headers=b"Content-Length: 17\r\nTransfer-Encoding: chunked\r\n",
            ),
        ),
        (
            "length with a sign",
            lambda: request("POST", "/token", auth, cc, length=False, raw_headers=b"Content-Length: +%d\r\n" % len(cc)),
        ),
        (
            "expect 100-continue over the limit",
            lambda: request(
                "POST",
                "/token",
                [*auth, ("Expect", "100-continue")],
                length=False,
                raw_headers=b"Content-Length: %d\r\n" % (limit + 1),
            ),
        ),
    ]
    return cases


def token_cases(f: Fronts) -> list[Case]:
    cc = form(grant_type="client_credentials", scope="accounts")
    ok = [basic(), ("Content-Type", FORM)]
    fapi: FapiClient = f.ctx["fapi"]
    iss = f.srv.issuer

    def fapi_cc(dpop: bool = True, htu: str = iss + "/token", **over: Any) -> bytes:
        params = {"grant_type": "client_credentials", "scope": "accounts", **fapi.auth_params(**over)}
        headers = [("Content-Type", FORM)]
        if dpop:
            headers.append(("DPoP", fapi.dpop.proof("POST", htu)))
        return request("POST", "/token", headers, urlencode(params).encode())

    return [
        ("client credentials", lambda: request("POST", "/token", ok, cc)),
        (
            "client credentials, unknown scope",
            lambda: request("POST", "/token", ok, form(grant_type="client_credentials", scope="nope")),
        ),
        ("wrong secret", lambda: request("POST", "/token", [basic(secret="wrong"), ("Content-Type", FORM)], cc)),
        ("unknown client", lambda: request("POST", "/token", [basic("nobody", "x"), ("Content-Type", FORM)], cc)),
        ("no client authentication", lambda: request("POST", "/token", [("Content-Type", FORM)], cc)),
        (
            "secret in the body",
            lambda: request(
                "POST",
                "/token",
                [("Content-Type", FORM)],
                cc + b"&" + form(client_id=BACKEND, client_secret=DEMO_SECRET),
            ),
        ),
        (
            "malformed basic",
            lambda: request("POST", "/token", [("Authorization", "Basic !!!"), ("Content-Type", FORM)], cc),
        ),
        (
            "bearer scheme",
            lambda: request("POST", "/token", [("Authorization", "Bearer x"), ("Content-Type", FORM)], cc),
        ),
        ("authorization twice", lambda: request("POST", "/token", [basic(), basic(), ("Content-Type", FORM)], cc)),
        (
            "json body",
            lambda: request(
                "POST",
                "/token",
                [basic(), ("Content-Type", "application/json")],
                b'{"grant_type":"client_credentials"}',
            ),
        ),
        ("no content type", lambda: request("POST", "/token", [basic()], cc)),
        (
            "content type twice",
            lambda: request("POST", "/token", [basic(), ("Content-Type", FORM), ("Content-Type", FORM)], cc),
        ),
        (
            "form with charset",
            lambda: request("POST", "/token", [basic(), ("Content-Type", FORM + "; charset=UTF-8")], cc),
        ),
        ("empty body", lambda: request("POST", "/token", ok, b"")),
        ("repeated parameter", lambda: request("POST", "/token", ok, cc + b"&grant_type=client_credentials")),
        ("not UTF-8", lambda: request("POST", "/token", ok, b"grant_type=client_credentials&scope=\xff\xfe")),
        ("bad percent-encoding", lambda: request("POST", "/token", ok, b"grant_type=%zzclient_credentials")),
        ("NUL", lambda: request("POST", "/token", ok, cc + b"&x=%00")),
        ("too many parameters", lambda: request("POST", "/token", ok, b"&".join(b"p%d=1" % i for i in range(70)))),
        ("long parameter", lambda: request("POST", "/token", ok, cc + b"&state=" + b"a" * 9000)),
        ("json-ish form", lambda: request("POST", "/token", ok, b'{"grant_type": "client_credentials"}')),
        ("missing grant type", lambda: request("POST", "/token", ok, form(scope="accounts"))),
        (
            "password grant",
            lambda: request("POST", "/token", ok, form(grant_type="password", username="alice", password="x")),
        ),
        (
            "bogus code",
            lambda: request(
                "POST",
                "/token",
                ok,
                form(
                    grant_type="authorization_code", code="nope", redirect_uri=BACKEND_REDIRECT, code_verifier="v" * 43
                ),
            ),
        ),
        (
            "bogus refresh token",
            lambda: request("POST", "/token", ok, form(grant_type="refresh_token", refresh_token="nope")),
        ),
        ("query string", lambda: request("POST", "/token?foo=bar&foo=baz", ok, cc)),
        ("query string not UTF-8", lambda: request("POST", "/token?x=\xff", ok, cc)),
        (
            "forwarded headers from a client",
            lambda: request("POST", "/token", [*ok, ("X-Forwarded-For", "10.9.8.7"), ("X-Client-Cert", ":AAAA:")], cc),
        ),
        ("text/html accepted", lambda: request("POST", "/token", [*ok, ("Accept", "text/html")], form(grant_type="x"))),
        ("origin (CORS)", lambda: request("POST", "/token", [*ok, ("Origin", "https://localhost:3000")], cc)),
        ("GET", lambda: request("GET", "/token", ok)),
        ("PUT", lambda: request("PUT", "/token", ok, cc)),
        ("HEAD", lambda: request("HEAD", "/token", ok)),
        (
            "OPTIONS preflight",
            lambda: request(
                "OPTIONS", "/token", [("Origin", "https://localhost:3000"), ("Access-Control-Request-Method", "POST")]
            ),
        ),
        ("trailing slash", lambda: request("POST", "/token/", ok, cc)),
        ("FAPI client, private_key_jwt and DPoP", lambda: fapi_cc()),
        ("FAPI client without DPoP", lambda: fapi_cc(dpop=False)),
        ("DPoP proof for another URL", lambda: fapi_cc(htu=iss + "/par")),
        ("assertion for another audience", lambda: fapi_cc(aud="https://elsewhere.example")),
        ("assertion of an unknown client", lambda: fapi_cc(iss="nobody", sub="nobody")),
        ("expired assertion", lambda: fapi_cc(exp=1000)),
        (
            "DPoP header twice",
            lambda: request(
                "POST",
                "/token",
                [
                    ("Content-Type", FORM),
                    ("DPoP", fapi.dpop.proof("POST", iss + "/token")),
                    ("DPoP", fapi.dpop.proof("POST", iss + "/token")),
                ],
                urlencode({"grant_type": "client_credentials", "scope": "accounts", **fapi.auth_params()}).encode(),
            ),
        ),
        (
            "DPoP not a JWT",
            lambda: request(
                "POST",
                "/token",
                [("Content-Type", FORM), ("DPoP", "not-a-jwt")],
                urlencode({"grant_type": "client_credentials", **fapi.auth_params()}).encode(),
            ),
        ),
        (
            "assertion type only",
            lambda: request(
                "POST",
                "/token",
                [("Content-Type", FORM)],
                form(grant_type="client_credentials", client_assertion_type=ASSERTION_TYPE),
            ),
        ),
    ]


def other_cases(f: Fronts) -> list[Case]:
    fapi: FapiClient = f.ctx["fapi"]
    iss = f.srv.issuer
    user_token: str = f.ctx["user_token"]
    cc_token: str = f.ctx["cc_token"]
    dpop_token: str = f.ctx["dpop_token"]
    ok = [basic(), ("Content-Type", FORM)]

    def par(dpop: bool = True, auth: dict[str, str] | None = None, **extra: str) -> bytes:
        params, _verifier = fapi.request_params(state="s", nonce="n", **extra)
        headers = [("Content-Type", FORM)]
        if dpop:
            headers.append(("DPoP", fapi.dpop.proof("POST", iss + "/par")))
        return request(
            "POST",
            "/par",
            headers,
            urlencode({**params, **(auth if auth is not None else fapi.auth_params())}).encode(),
        )

    def revoke_fresh() -> bytes:
        token = f.ctx["tokens"].pop()
        return request("POST", "/revoke", ok, form(token=token))

    def userinfo_dpop(proof: bool = True, scheme: str = "DPoP") -> bytes:
        headers = [("Authorization", f"{scheme} {dpop_token}")]
        if proof:
            headers.append(("DPoP", fapi.dpop.proof("GET", iss + "/userinfo", token=dpop_token)))
        return request("GET", "/userinfo", headers)

    verifier, challenge = pkce_pair()
    native = {
        "response_type": "code",
        "client_id": NATIVE,
        "redirect_uri": NATIVE_REDIRECT,
        "scope": "openid profile",
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    cookies: str = f.ctx["cookies"]

    def authorize(params: dict[str, str], headers: list[tuple[str, str]] | None = None) -> Callable[[], bytes]:
        return lambda: request("GET", "/authorize?" + urlencode(params), headers)

    return [
        ("PAR", lambda: par()),
        ("PAR without DPoP", lambda: par(dpop=False)),
        ("PAR without client authentication", lambda: par(auth={})),
        ("PAR with a bad redirect URI", lambda: par(redirect_uri="https://evil.example/cb")),
        ("PAR with request_uri", lambda: par(request_uri="urn:x")),
        ("PAR GET", lambda: request("GET", "/par")),
        ("introspect", lambda: request("POST", "/introspect", ok, form(token=cc_token))),
        ("introspect a user token", lambda: request("POST", "/introspect", ok, form(token=user_token))),
        (
            "introspect with a hint",
            lambda: request("POST", "/introspect", ok, form(token=cc_token, token_type_hint="refresh_token")),
        ),
        ("introspect an unknown token", lambda: request("POST", "/introspect", ok, form(token="nope"))),
        ("introspect without a token", lambda: request("POST", "/introspect", ok, b"")),
        (
            "introspect, wrong secret",
            lambda: request("POST", "/introspect", [basic(secret="x"), ("Content-Type", FORM)], form(token=cc_token)),
        ),
        (
            "introspect, JWT answer asked",
            lambda: request(
                "POST", "/introspect", [*ok, ("Accept", "application/token-introspection+jwt")], form(token=cc_token)
            ),
        ),
        ("revoke", revoke_fresh),
        ("revoke an unknown token", lambda: request("POST", "/revoke", ok, form(token="nope"))),
        (
            "revoke, wrong secret",
            lambda: request("POST", "/revoke", [basic(secret="x"), ("Content-Type", FORM)], form(token="nope")),
        ),
        ("revoke without a token", lambda: request("POST", "/revoke", ok, b"")),
        ("userinfo", lambda: request("GET", "/userinfo", [("Authorization", f"Bearer {user_token}")])),
        (
            "userinfo POST",
            lambda: request(
                "POST", "/userinfo", [("Authorization", f"Bearer {user_token}"), ("Content-Type", FORM)], b""
            ),
        ),
        (
            "userinfo, token in the body",
            lambda: request("POST", "/userinfo", [("Content-Type", FORM)], form(access_token=user_token)),
        ),
        ("userinfo, token in the query", lambda: request("GET", "/userinfo?access_token=" + user_token)),
        ("userinfo without a token", lambda: request("GET", "/userinfo")),
        (
            "userinfo with a client token",
            lambda: request("GET", "/userinfo", [("Authorization", f"Bearer {cc_token}")]),
        ),
        ("userinfo with a bad token", lambda: request("GET", "/userinfo", [("Authorization", "Bearer abc.def.ghi")])),
        (
            "userinfo, two authorization headers",
            lambda: request(
                "GET",
                "/userinfo",
                [("Authorization", f"Bearer {user_token}"), ("Authorization", f"Bearer {user_token}")],
            ),
        ),
        ("userinfo with DPoP", lambda: userinfo_dpop()),
        ("userinfo, DPoP token without proof", lambda: userinfo_dpop(proof=False)),
        ("userinfo, DPoP token as bearer", lambda: userinfo_dpop(scheme="Bearer")),
        ("userinfo DELETE", lambda: request("DELETE", "/userinfo", [("Authorization", f"Bearer {user_token}")])),
        ("authorize", authorize(native)),
        ("authorize, signed in", authorize(native, [("Cookie", cookies)])),
        ("authorize, signed in, prompt=login", authorize({**native, "prompt": "login"}, [("Cookie", cookies)])),
        ("authorize, unknown client", authorize({**native, "client_id": "nobody"})),
        ("authorize, wrong redirect URI", authorize({**native, "redirect_uri": "https://evil.example/cb"})),
        ("authorize, no PKCE", authorize({k: v for k, v in native.items() if not k.startswith("code_")})),
        ("authorize, bad response type", authorize({**native, "response_type": "token"})),
        ("authorize, repeated parameter", lambda: request("GET", "/authorize?" + urlencode(native) + "&state=again")),
        ("authorize, no parameters", lambda: request("GET", "/authorize")),
        (
            "authorize, unknown request_uri",
            authorize({"client_id": fapi.client_id, "request_uri": "urn:ietf:params:oauth:request_uri:nope"}),
        ),
        ("authorize, oversized cookie", authorize(native, [("Cookie", "__Host-fg_browser=" + "b" * 200)])),
        ("authorize, query not UTF-8", lambda: request("GET", "/authorize?client_id=\xff")),
        ("authorize POST", lambda: request("POST", "/authorize", [("Content-Type", FORM)], urlencode(native).encode())),
        ("authorize with an origin", authorize(native, [("Origin", "https://localhost:3000")])),
    ]


def bank_cases(f: Fronts) -> list[Case]:
    """The bank API's account reads (bank/routes.py AccountReads) and calls next to them."""
    fintech: Fintech = f.ctx["fintech"]
    token: str = f.ctx["bank_token"]
    account: str = f.ctx["account"]
    bank = f.srv.issuer + PREFIX

    def get(
        path: str, query: str = "", scheme: str = "DPoP", proof: str | None = None, **extra: str
    ) -> Callable[[], bytes]:
        def make() -> bytes:
            headers = [("Authorization", f"{scheme} {token}")]
            headers.append(
                ("DPoP", proof if proof is not None else fintech.client.dpop.proof("GET", bank + path, token=token))
            )
            headers += list(extra.items())
            return request("GET", PREFIX + path + query, headers)

        return make

    uuid = "5a3f2a2e-8c1b-4d3e-9f00-1234567890ab"
    return [
        ("accounts", get("/accounts")),
        ("account", get(f"/accounts/{account}")),
        ("balances", get(f"/accounts/{account}/balances")),
        ("transactions", get(f"/accounts/{account}/transactions")),
        ("transactions, a page", get(f"/accounts/{account}/transactions", "?limit=2")),
        (
            "transactions, a date range",
            get(f"/accounts/{account}/transactions", "?fromBookingDateTime=2020-01-01&toBookingDateTime=2020-01-02"),
        ),
        ("transactions, a bad limit", get(f"/accounts/{account}/transactions", "?limit=0")),
        ("transactions, a bad cursor", get(f"/accounts/{account}/transactions", "?cursor=zzz")),
        ("transactions, a repeated parameter", get(f"/accounts/{account}/transactions", "?limit=2&limit=3")),
        ("balances with a query", get(f"/accounts/{account}/balances", "?x=1")),
        ("an unknown account", get("/accounts/acc_nope/balances")),
        ("an account id with a newline", get("/accounts/a%0Ab/balances")),
        ("balances, trailing newline", get(f"/accounts/{account}/balances%0A")),
        ("an interaction id", get("/accounts", **{"x-fapi-interaction-id": uuid})),
        ("a malformed interaction id", get("/accounts", **{"x-fapi-interaction-id": "nope"})),
        ("a customer address", get("/accounts", **{"x-fapi-customer-ip-address": "2001:db8::1"})),
        ("a malformed customer address", get("/accounts", **{"x-fapi-customer-ip-address": "1.2.3"})),
        ("a malformed auth date", get("/accounts", **{"x-fapi-auth-date": "yesterday"})),
        ("no DPoP proof", lambda: request("GET", PREFIX + "/accounts", [("Authorization", f"DPoP {token}")])),
        (
            "a proof for another URL",
            get("/accounts", proof=fintech.client.dpop.proof("GET", bank + "/payments", token=token)),
        ),
        ("a bearer scheme", get("/accounts", scheme="Bearer")),
        ("no token", lambda: request("GET", PREFIX + "/accounts")),
        ("a bad token", lambda: request("GET", PREFIX + "/accounts", [("Authorization", "DPoP abc")])),
        ("bank, with a body", lambda: get("/accounts")()[:-2] + b"Content-Length: 2\r\n\r\nxy"),
        ("bank, with an origin", get("/accounts", origin="https://localhost:3000")),
        ("bank, HEAD", lambda: request("HEAD", PREFIX + "/accounts", [("Authorization", f"DPoP {token}")])),
        (
            "bank, POST payments",
            lambda: request(
                "POST",
                PREFIX + "/payments",
                [("Authorization", f"DPoP {token}"), ("Content-Type", "application/json")],
                b"{}",
            ),
        ),
        ("bank, unknown path", get("/accountsx")),
        ("bank, openapi", lambda: request("GET", PREFIX + "/openapi.json")),
        ("bank, consents", get("/account-access-consents/c1")),
    ]


def prepare(f: Fronts) -> None:
    """Clients and tokens the cases use: a FAPI 2.0 client, a client token, a user's bearer and DPoP
    tokens, the cookies of a signed-in browser, and a fintech's token for alice's bank accounts."""
    srv = f.srv
    f.ctx["fapi"] = fapi = FapiClient.register(srv, f.tmp)
    f.ctx["fintech"] = fintech = Fintech(srv, f.tmp)
    f.ctx["bank_token"] = fintech.token(account_information())
    with srv.client() as http:
        resp = fintech.get(http, "/accounts", f.ctx["bank_token"])
        assert resp.status_code == 200, resp.text
        f.ctx["account"] = resp.json()["Data"]["Account"][0]["AccountId"]
    with srv.client() as http, srv.client(follow_redirects=False) as browser:
        f.ctx["cc_token"] = client_credentials(http, "accounts")["access_token"]
        f.ctx["tokens"] = [client_credentials(http, "accounts")["access_token"] for _ in range(4)]
        f.ctx["user_token"] = backend_tokens(browser, scope="openid profile")["access_token"]
        f.ctx["cookies"] = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
        resp = fapi.flow(http, browser, scope="openid profile")
        assert resp.status_code == 200, resp.text
        f.ctx["dpop_token"] = resp.json()["access_token"]


# What the lean path hands over, and what the HTTP protocol refuses before any application runs (a
# raw byte above 0x7f in the request target; a Content-Length twice, with a sign, or with chunked).
HANDED_OVER = {
    "origin (CORS)",
    "GET",
    "PUT",
    "HEAD",
    "OPTIONS preflight",
    "trailing slash",
    "PAR GET",
    "userinfo DELETE",
    "authorize POST",
    "authorize with an origin",
    "bank, with a body",
    "bank, with an origin",
    "bank, HEAD",
    "bank, POST payments",
    "bank, unknown path",
    "bank, openapi",
    "bank, consents",
}
PROTOCOL = {
    "query string not UTF-8",
    "authorize, query not UTF-8",
    "two equal lengths",
    "length and chunked",
    "length with a sign",
}


def run_cases(f: Fronts, cases: list[Case]) -> None:
    found: list[str] = []
    for name, make in cases:
        found += f.compare(name, make)
    assert not found, "\n".join(found)
    for name, outcome in f.outcomes.items():
        expected = "handed over" if name in HANDED_OVER else "protocol" if name in PROTOCOL else "lean"
        assert outcome == expected, (name, outcome)


# -- the tests ----------------------------------------------------------------------------------


def test_the_lean_path_answers_as_the_application(fronts: Fronts) -> None:
    prepare(fronts)
    run_cases(fronts, token_cases(fronts) + other_cases(fronts) + bank_cases(fronts) + body_limit_cases(64 * 1024))


@pytest.mark.parametrize("limit", [4096, 128 * 1024])
def test_the_lean_path_keeps_the_body_limits(
    start_clocked: Callable[..., InProcessServer], tmp_path: Path, limit: int
) -> None:
    """A route limit below, and above, the limit of the routes' own reads (asgi.MAX_BODY)."""
    f = start_fronts(start_clocked, tmp_path, {"FINGRADE_HTTP_MAX_BODY_BYTES": str(limit)})
    run_cases(f, body_limit_cases(limit))


def test_failures_get_the_same_answer_and_one_log_line(
    fronts: Fronts, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A store outage (503 with Retry-After) and a bug (500) at the token endpoint, at the
    authorization endpoint and at the bank's account reads: the same answer (JSON, a page for
    Accept: text/html, the bank's format with its interaction id) and the same one log line."""
    from fingrade.oauth import token_endpoint
    from fingrade.web import interaction_routes

    prepare(fronts)
    fintech: Fintech = fronts.ctx["fintech"]
    token, account = fronts.ctx["bank_token"], fronts.ctx["account"]
    ledger = fronts.srv.app.app.state.bank_api.state.bank.ledger

    def balances() -> bytes:
        proof = fintech.proof(f"/accounts/{account}/balances", token)
        path = f"{PREFIX}/accounts/{account}/balances"
        return request("GET", path, [("Authorization", f"DPoP {token}"), ("DPoP", proof)])

    outage = sa.OperationalError("SELECT secret", ("secret",), Exception("database is locked"))
    cc = form(grant_type="client_credentials", scope="accounts")
    ok = [basic(), ("Content-Type", FORM)]
    handed = fronts.behind.calls
    for failure in (outage, ValueError("a bug")):

        async def fail(*args: Any, **kwargs: Any) -> Any:
            raise failure

        monkeypatch.setattr(token_endpoint, "_client_credentials", fail)
        monkeypatch.setattr(interaction_routes, "parse_request", fail)
        monkeypatch.setattr(ledger, "get_balances", fail)
        for name, make in [
            ("token", lambda: request("POST", "/token", ok, cc)),
            ("token, page asked", lambda: request("POST", "/token", [*ok, ("Accept", "text/html")], cc)),
            ("authorize", lambda: request("GET", "/authorize?client_id=x", [("Accept", "text/html")])),
            ("authorize, JSON", lambda: request("GET", "/authorize?client_id=x")),
            ("bank balances", balances),
        ]:
            logs = []
            replies = []
            for base in (fronts.full, fronts.lean):
                caplog.clear()
                with caplog.at_level(logging.ERROR):
                    replies.append(exchange(base, make()))
                logs.append(
                    [
                        (r.name, r.getMessage(), r.exc_info is not None)
                        for r in caplog.records
                        if r.name.startswith("fingrade")
                    ]
                )
            full, lean = replies
            assert full.status == (503 if failure is outage else 500), (name, full)
            assert differences(full, lean) == [], (name, differences(full, lean))
            assert len(logs[0]) == 1 and logs[0] == logs[1], (name, logs)
    assert fronts.behind.calls == handed  # every one of these was the lean path's


# Header values the HTTP protocol lets through (no control characters; Latin-1 above 0x7f is).
FIELD = st.text(alphabet=st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=40)
PARAM = st.sampled_from(
    ["grant_type", "scope", "client_id", "client_secret", "token", "code", "redirect_uri", "client_assertion", "x"]
)
VALUE = st.one_of(
    st.sampled_from(["client_credentials", "accounts", BACKEND, DEMO_SECRET, "authorization_code", "", "%", "%00"]),
    st.text(max_size=20),
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["form", "bytes", "json"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    pairs = draw(st.lists(st.tuples(PARAM, VALUE), max_size=6))
    if kind == "json":
        return json.dumps(dict(pairs)).encode()
    return "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")


@given(
    method=st.sampled_from(["POST", "POST", "GET"]),
    path=st.sampled_from(["/token", "/par", "/introspect", "/revoke", "/userinfo"]),
    ctype=st.one_of(st.sampled_from([FORM, FORM + "; charset=utf-8", "application/json", "text/plain", ""]), FIELD),
    auth=st.one_of(
        st.sampled_from([basic(), basic(secret="x"), ("Authorization", "Bearer x"), ("Authorization", "DPoP x")]),
        FIELD.map(lambda v: ("Authorization", v)),
        st.none(),
    ),
    extra=st.lists(
        st.tuples(st.sampled_from(["DPoP", "Accept", "X-Forwarded-For", "Cookie", "Authorization"]), FIELD), max_size=3
    ),
    body=bodies(),
    query=st.sampled_from(["", "?a=1", "?a=1&a=2", "?%zz", "?token=x"]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_requests_get_the_same_answer(
    fronts: Fronts,
    method: str,
    path: str,
    ctype: str,
    auth: tuple[str, str] | None,
    extra: list[tuple[str, str]],
    body: bytes,
    query: str,
) -> None:
    headers = ([("Content-Type", ctype)] if ctype else []) + ([auth] if auth else []) + extra
    assert fronts.compare("generated", lambda: request(method, path + query, headers, body)) == []
    served = method == "POST" or path == "/userinfo"
    assert fronts.outcomes["generated"] == ("lean" if served else "handed over")
