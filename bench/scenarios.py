"""The benchmark scenarios. Each scenario prepares what a run needs (pools of
pre-signed assertions, pre-minted tokens, logged-in workers) outside the timed window, then
gives every worker an operation to repeat."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from driver import Connection, CookieJar, HttpError, MakeOp, Op, Target, basic, build_request, form, pkce_pair, query_of

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REDIRECT_URI = "http://127.0.0.1:8765/callback"  # demo-native: loopback redirect, any port (RFC 8252 §7.3)
CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')
LOGIN_ACTION = re.compile(rb'action="(/interaction/[^"]+/login)"')
CONSENT_ACTION = re.compile(rb'action="(/interaction/[^"]+/consent)"')
# The account choices of the consent page as a browser submits them (ticked boxes, the chosen radio).
CHOICE = re.compile(rb'<input type="(?:checkbox|radio)"[^>]*?name="([^"]+)"\s+value="([^"]+)"([^>]*)>', re.S)


@dataclass
class Bench:
    """Everything the scenarios need to know about the server under test."""

    target: Target
    discovery: dict[str, Any]
    demo_secret: str
    demo_password: str
    jwt_client_id: str = ""
    jwt_key: ec.EllipticCurvePrivateKey | None = None
    jwt_kid: str = ""
    rs_client_id: str = ""
    rs_secret: str = ""
    fapi_client_id: str = ""  # profile fapi2, private_key_jwt (same key as the jwt client), DPoP
    fapi_key: ec.EllipticCurvePrivateKey | None = None
    fapi_kid: str = ""
    dpop_key: ec.EllipticCurvePrivateKey | None = None
    dpop_jwk: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # per-scenario state across runs
    # How a worker becomes a returning user of a client ("native" or "fapi"): signed in, consent
    # remembered. Default: Fingrade's login and consent pages (`fingrade_returning_user`); another
    # server under test brings its own (bench/side_by_side.py).
    returning_user: Callable[[Bench, Connection, CookieJar, str, str], Awaitable[None]] | None = None

    @property
    def issuer(self) -> str:
        return self.discovery["issuer"]

    def path(self, endpoint: str) -> str:
        """Endpoint path from the discovery document (the driver talks only to the server's own host)."""
        parts = urlsplit(self.discovery[endpoint])
        return parts.path + (f"?{parts.query}" if parts.query else "")


def _expect(resp: Any, status: int, what: str) -> None:
    if resp.status != status:
        raise HttpError(f"{what}: HTTP {resp.status}: {resp.body[:200]!r}")


# -- static requests --------------------------------------------------------------------------


def cc_basic_request(b: Bench) -> bytes:
    body = form({"grant_type": "client_credentials", "scope": "accounts"})
    return build_request(
        b.target, "POST", b.path("token_endpoint"), {"Authorization": basic("demo-backend", b.demo_secret)}, body
    )


def static(raw: bytes, status: int = 200, must_contain: bytes | None = None) -> MakeOp:
    async def make(i: int, conn: Connection) -> Op:
        async def op(c: Connection, n: int) -> None:
            resp = await c.send(raw)
            _expect(resp, status, "request")
            if must_contain is not None and must_contain not in resp.body:
                raise HttpError(f"unexpected body {resp.body[:200]!r}")

        return op

    return make


async def prepare_null(b: Bench, run: int) -> MakeOp:
    return static(cc_basic_request(b), must_contain=b'"access_token"')


async def prepare_discovery(b: Bench, run: int) -> MakeOp:
    raw = build_request(b.target, "GET", "/.well-known/openid-configuration")
    return static(raw, must_contain=b'"issuer"')


async def prepare_cc_basic(b: Bench, run: int) -> MakeOp:
    return static(cc_basic_request(b), must_contain=b'"access_token"')


# -- client_credentials with private_key_jwt ---------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256(key: ec.EllipticCurvePrivateKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A compact ES256 JWS (RFC 7515 §7.1, RFC 7518 §3.4: r || s, 32 bytes each)."""
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
    r, s = utils.decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    nums = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": _b64(nums.x.to_bytes(32, "big")), "y": _b64(nums.y.to_bytes(32, "big"))}


def sign_assertion(b: Bench, now: int, fapi: bool = False) -> str:
    """RFC 7523 §3: iss = sub = client_id, aud = the issuer string (FAPI 2.0 SP 5.3.2.1-8), unique jti,
    short exp; ES256. `fapi` signs for the fapi2 client instead of the plain private_key_jwt one."""
    client_id, key, kid = (
        (b.fapi_client_id, b.fapi_key, b.fapi_kid) if fapi else (b.jwt_client_id, b.jwt_key, b.jwt_kid)
    )
    assert key is not None
    return es256(
        key,
        {"alg": "ES256", "kid": kid, "typ": "JWT"},
        {
            "iss": client_id,
            "sub": client_id,
            "aud": b.issuer,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 60,
        },
    )


def dpop_proof(b: Bench, method: str, endpoint: str, now: int) -> str:
    """RFC 9449 §4.2: typ dpop+jwt, the public key in the header, a unique jti, htm, htu (the endpoint URL
    from discovery), iat; ES256 with the bench's DPoP key."""
    assert b.dpop_key is not None
    return es256(
        b.dpop_key,
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": b.dpop_jwk},
        {"jti": secrets.token_urlsafe(16), "htm": method, "htu": b.discovery[endpoint], "iat": now},
    )


def jwt_request(b: Bench, assertion: str) -> bytes:
    body = form(
        {
            "grant_type": "client_credentials",
            "scope": "accounts",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
    )
    return build_request(b.target, "POST", b.path("token_endpoint"), None, body)


def _presign(
    b: Bench, name: str, default_rate: float, warmup: float, duration: float, make: Callable[[int], Any]
) -> Callable[[], Any]:
    """A pool of pre-signed items, one per expected operation (the previous run's rate, or
    `default_rate`, x 1.5, plus margin), so the driver signs nothing in the window. Assertions expire
    60 s after signing, so a run must fit in ~55 s. Returns `next_item()`, which signs inline (and
    counts it in state[name_inline]) if the pool runs dry."""
    if warmup + duration > 50:
        raise SystemExit(f"{name}: assertions expire 60 s after signing; keep warmup + duration <= 50 s")
    expected = b.state.get(f"{name}_rate", default_rate) * 1.5
    count = int(expected * (warmup + duration)) + 2000
    now = int(time.time())
    t0 = time.perf_counter()
    pool = [make(now) for _ in range(count)]
    b.state[f"{name}_sign_s"] = time.perf_counter() - t0
    b.state[f"{name}_inline"] = 0
    it = iter(pool)

    def next_item() -> Any:
        item = next(it, None)
        if item is None:
            b.state[f"{name}_inline"] += 1
            item = make(int(time.time()))
        return item

    return next_item


async def prepare_cc_jwt(b: Bench, run: int, warmup: float, duration: float) -> MakeOp:
    """Pre-sign one assertion per expected request, so the driver's signing is outside the window."""
    next_request = _presign(b, "cc_jwt", 3000.0, warmup, duration, lambda now: jwt_request(b, sign_assertion(b, now)))

    async def make(i: int, conn: Connection) -> Op:
        async def op(c: Connection, n: int) -> None:
            resp = await c.send(next_request())
            _expect(resp, 200, "token")

        return op

    return make


# -- client_credentials with private_key_jwt and DPoP (fapi2 client) ---------------------------


def jwt_dpop_request(b: Bench, now: int) -> bytes:
    """A fresh assertion and a fresh DPoP proof (RFC 9449 §5) for one token request."""
    body = form(
        {
            "grant_type": "client_credentials",
            "scope": "accounts",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": sign_assertion(b, now, fapi=True),
        }
    )
    return build_request(
        b.target, "POST", b.path("token_endpoint"), {"DPoP": dpop_proof(b, "POST", "token_endpoint", now)}, body
    )


async def prepare_cc_jwt_dpop(b: Bench, run: int, warmup: float, duration: float) -> MakeOp:
    """As cc_jwt (same pre-signed pool), with a DPoP proof per request, for the fapi2 client
    (FAPI 2.0 SP 5.3.2.1-4: its tokens must be sender-constrained). The response must be a DPoP token."""
    next_request = _presign(b, "cc_jwt_dpop", 1500.0, warmup, duration, lambda now: jwt_dpop_request(b, now))

    async def make(i: int, conn: Connection) -> Op:
        async def op(c: Connection, n: int) -> None:
            resp = await c.send(next_request())
            _expect(resp, 200, "token")
            if b'"token_type":"DPoP"' not in resp.body.replace(b" ", b""):
                raise HttpError(f"not a DPoP token: {resp.body[:200]!r}")

        return op

    return make


# -- introspection ----------------------------------------------------------------------------


async def prepare_introspect(b: Bench, run: int, conn: Connection, pool_size: int = 512) -> MakeOp:
    """A resource server introspects access tokens (RFC 7662) minted just before the run."""
    raw = cc_basic_request(b)
    tokens = []
    for _ in range(pool_size):
        resp = await conn.send(raw)
        _expect(resp, 200, "minting a token to introspect")
        tokens.append(orjson.loads(resp.body)["access_token"])
    auth = {"Authorization": basic(b.rs_client_id, b.rs_secret)}
    path = b.path("introspection_endpoint")
    requests = [
        build_request(b.target, "POST", path, auth, form({"token": t, "token_type_hint": "access_token"}))
        for t in tokens
    ]

    async def make(i: int, c0: Connection) -> Op:
        async def op(c: Connection, n: int) -> None:
            resp = await c.send(requests[(i * 7919 + n) % len(requests)])
            _expect(resp, 200, "introspect")
            if not resp.body.startswith(b'{"active":true'):
                raise HttpError(f"token not active: {resp.body[:200]!r}")

        return op

    return make


# -- browser flows ----------------------------------------------------------------------------


def authorize_path(b: Bench, challenge: str, state: str, nonce: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": "demo-native",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return b.path("authorization_endpoint") + "?" + urlencode(params)


async def _get(b: Bench, conn: Connection, jar: CookieJar, path: str) -> Any:
    resp = await conn.send(build_request(b.target, "GET", path, jar.header()))
    jar.update(resp)
    return resp


async def _post(b: Bench, conn: Connection, jar: CookieJar, path: str, params: dict[str, str]) -> Any:
    resp = await conn.send(build_request(b.target, "POST", path, jar.header(), form(params)))
    jar.update(resp)
    return resp


def _location(resp: Any) -> str:
    loc = resp.header(b"location")
    if resp.status != 303 or loc is None:
        raise HttpError(f"expected a 303 redirect, got HTTP {resp.status}: {resp.body[:200]!r}")
    return loc.decode()


async def password_login(b: Bench, conn: Connection, jar: CookieJar, username: str) -> str:
    """Authorization request -> login page -> POST the password. Returns where the login sends us."""
    verifier, challenge = pkce_pair()
    loc = _location(
        await _get(
            b,
            conn,
            jar,
            authorize_path(b, challenge, secrets.token_urlsafe(12), secrets.token_urlsafe(12), prompt="login"),
        )
    )
    if not loc.startswith("/interaction/"):
        raise HttpError(f"expected the login page, got redirected to {loc[:120]}")
    page = await _get(b, conn, jar, loc)
    _expect(page, 200, "login page")
    csrf, action = CSRF.search(page.body), LOGIN_ACTION.search(page.body)
    if not csrf or not action:
        raise HttpError("no login form on the page")
    resp = await _post(
        b,
        conn,
        jar,
        action.group(1).decode(),
        {"username": username, "password": b.demo_password, "csrf_token": csrf.group(1).decode()},
    )
    return _location(resp)


async def prepare_login(b: Bench, run: int) -> MakeOp:
    """Password logins per second: every op is a fresh sign-in with argon2id verification."""

    async def make(i: int, conn: Connection) -> Op:
        jar = CookieJar()
        username = ("alice", "bob")[i % 2]

        async def op(c: Connection, n: int) -> None:
            await password_login(b, c, jar, username)
            if "__Host-fg_session" not in jar.cookies:
                raise HttpError("login did not set a session cookie")
            jar.cookies.pop("__Host-fg_session")  # the next op signs in again

        return op

    return make


async def sign_in_once(b: Bench, conn: Connection, jar: CookieJar, username: str) -> None:
    """Log in, and consent if asked, so later authorization requests come straight back."""
    loc = await password_login(b, conn, jar, username)
    for _ in range(4):
        if loc.startswith(REDIRECT_URI):
            return
        page = await _get(b, conn, jar, loc)
        if page.status == 303:
            loc = _location(page)
            continue
        _expect(page, 200, "interaction page")
        csrf, action = CSRF.search(page.body), CONSENT_ACTION.search(page.body)
        if not csrf or not action:
            raise HttpError("expected the consent page")
        loc = _location(
            await _post(
                b, conn, jar, action.group(1).decode(), {"decision": "approve", "csrf_token": csrf.group(1).decode()}
            )
        )
    raise HttpError("sign-in did not come back to the client")


async def fingrade_returning_user(b: Bench, conn: Connection, jar: CookieJar, username: str, client: str) -> None:
    """Fingrade's login page, then its consent page for demo-native (`client` "native") or for
    the fapi2 client ("fapi")."""
    await sign_in_once(b, conn, jar, username)
    if client == "fapi":
        await fapi_consent_once(b, conn, jar)


async def returning_user(b: Bench, conn: Connection, jar: CookieJar, username: str, client: str) -> None:
    """Make `jar` a returning user of `client` ("native": demo-native, "fapi": the fapi2 client):
    signed in, consent remembered, so authorization requests come straight back with a code."""
    await (b.returning_user or fingrade_returning_user)(b, conn, jar, username, client)


async def _native_flow(
    b: Bench, jars_key: str, authorize: Callable[[Connection, CookieJar, str, str, str], Awaitable[str]], iss: bool
) -> MakeOp:
    """A returning user of the public native client: `authorize` (challenge, state, nonce) -> where
    /authorize redirects, the code there (`state` checked, and `iss` when `iss`) -> POST /token
    (authorization_code + code_verifier); the answer must hold an id_token."""
    token_path = b.path("token_endpoint")
    jars: dict[int, CookieJar] = b.state.setdefault(jars_key, {})
    # One sign-in at a time: concurrent first consents of one user race in the server's
    # save_consent on PostgreSQL (select-then-insert -> duplicate key -> HTTP 500; reported).
    # Sign-in is argon2-bound on one core anyway, so serialising costs no setup time.
    sign_in_lock = b.state.setdefault("sign_in_lock", asyncio.Lock())

    async def make(i: int, conn: Connection) -> Op:
        # Sessions outlive a run (8 h): later runs reuse the worker's cookie jar, as a returning user would.
        jar = jars.get(i)
        if jar is None:
            jar = jars[i] = CookieJar()
            async with sign_in_lock:
                await returning_user(b, conn, jar, ("alice", "bob")[i % 2], "native")

        async def op(c: Connection, n: int) -> None:
            verifier, challenge = pkce_pair()
            state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
            loc = await authorize(c, jar, challenge, state, nonce)
            if not loc.startswith(REDIRECT_URI + "?"):
                raise HttpError(f"expected the code at the redirect URI, got {loc[:120]}")
            params = query_of(loc)
            if params.get("state") != state or "code" not in params or (iss and params.get("iss") != b.issuer):
                raise HttpError(f"bad authorization response {loc[:200]}")
            # The token request is the app's, not the browser's: no cookies.
            resp = await c.send(
                build_request(
                    b.target,
                    "POST",
                    token_path,
                    None,
                    form(
                        {
                            "grant_type": "authorization_code",
                            "code": params["code"],
                            "redirect_uri": REDIRECT_URI,
                            "code_verifier": verifier,
                            "client_id": "demo-native",
                        }
                    ),
                )
            )
            _expect(resp, 200, "token")
            if b'"id_token"' not in resp.body:
                raise HttpError("no id_token in the token response")

        return op

    return make


async def prepare_code_flow(b: Bench, run: int) -> MakeOp:
    """The returning user: GET /authorize -> 303 with the code -> POST /token (PKCE, public client)."""

    async def authorize(c: Connection, jar: CookieJar, challenge: str, state: str, nonce: str) -> str:
        return _location(await _get(b, c, jar, authorize_path(b, challenge, state, nonce)))

    return await _native_flow(b, "code_flow_jars", authorize, iss=False)


def native_par_request(b: Bench, challenge: str, state: str, nonce: str) -> bytes:
    """PAR (RFC 9126 §2) by the public native client: no client authentication, only client_id."""
    params = {
        "response_type": "code",
        "client_id": "demo-native",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return build_request(b.target, "POST", b.path("pushed_authorization_request_endpoint"), None, form(params))


async def native_authorize(b: Bench, c: Connection, jar: CookieJar, challenge: str, state: str, nonce: str) -> str:
    """PAR, then the front channel with client_id and request_uri; returns where /authorize redirects."""
    resp = await c.send(native_par_request(b, challenge, state, nonce))  # back channel: no cookies
    _expect(resp, 201, "par")
    query = urlencode({"client_id": "demo-native", "request_uri": orjson.loads(resp.body)["request_uri"]})
    return _location(await _get(b, c, jar, b.path("authorization_endpoint") + "?" + query))


async def prepare_code_flow_par(b: Bench, run: int) -> MakeOp:
    """The returning user of the public native client, through PAR: POST /par (client_id, PKCE S256) ->
    GET /authorize?client_id=..&request_uri=.. with the session cookie -> 303 with the code (`state` and
    `iss` checked) -> POST /token (authorization_code + code_verifier); the answer must hold an id_token."""

    async def authorize(c: Connection, jar: CookieJar, challenge: str, state: str, nonce: str) -> str:
        return await native_authorize(b, c, jar, challenge, state, nonce)

    return await _native_flow(b, "code_flow_par_jars", authorize, iss=True)


# -- FAPI 2.0 flow ------------------------------------------------------------------------------

FAPI_REDIRECT = "https://localhost:9443/fapi-callback"  # never followed: the driver reads the Location


@dataclass
class FapiItem:
    """What one fapi_flow needs, signed ahead: the PAR request, and the token request's credentials."""

    par: bytes
    verifier: str
    state: str
    token_assertion: str
    token_proof: str


def fapi_item(b: Bench, now: int, scope: str = "openid accounts") -> FapiItem:
    """PAR (RFC 9126 §2) with private_key_jwt and a DPoP proof (RFC 9449 §10.1), PKCE S256, plus a fresh
    assertion and proof for the token request that will follow."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(12)
    body = form(
        {
            "response_type": "code",
            "client_id": b.fapi_client_id,
            "redirect_uri": FAPI_REDIRECT,
            "scope": scope,
            "state": state,
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": sign_assertion(b, now, fapi=True),
        }
    )
    par = build_request(
        b.target,
        "POST",
        b.path("pushed_authorization_request_endpoint"),
        {"DPoP": dpop_proof(b, "POST", "pushed_authorization_request_endpoint", now)},
        body,
    )
    return FapiItem(
        par, verifier, state, sign_assertion(b, now, fapi=True), dpop_proof(b, "POST", "token_endpoint", now)
    )


async def fapi_authorize(b: Bench, conn: Connection, jar: CookieJar, item: FapiItem) -> str:
    """PAR, then the front channel with only client_id and request_uri (FAPI 2.0 SP 5.3.2.2-3).
    Returns where /authorize redirects the browser."""
    resp = await conn.send(item.par)  # back channel: no cookies
    _expect(resp, 201, "par")
    request_uri = orjson.loads(resp.body)["request_uri"]
    query = urlencode({"client_id": b.fapi_client_id, "request_uri": request_uri})
    return _location(await _get(b, conn, jar, b.path("authorization_endpoint") + "?" + query))


async def fapi_consent_once(b: Bench, conn: Connection, jar: CookieJar) -> None:
    """A signed-in user's first flow with the fapi2 client: consent, so later flows come straight back."""
    loc = await fapi_authorize(b, conn, jar, fapi_item(b, int(time.time())))
    if loc.startswith("/interaction/"):
        page = await _get(b, conn, jar, loc)
        _expect(page, 200, "consent page")
        csrf, action = CSRF.search(page.body), CONSENT_ACTION.search(page.body)
        if not csrf or not action:
            raise HttpError("expected the consent page")
        loc = _location(
            await _post(
                b, conn, jar, action.group(1).decode(), {"decision": "approve", "csrf_token": csrf.group(1).decode()}
            )
        )
    if not loc.startswith(FAPI_REDIRECT + "?"):
        raise HttpError(f"consent did not come back to the fapi2 client: {loc[:120]}")


async def prepare_fapi_flow(b: Bench, run: int, warmup: float, duration: float) -> MakeOp:
    """The returning user with a FAPI 2.0 client: PAR (private_key_jwt + DPoP) -> GET /authorize with
    client_id + request_uri and the session cookie -> 303 with the code -> POST /token (private_key_jwt +
    DPoP + PKCE). The assertions and proofs are pre-signed like cc_jwt's."""
    next_item = _presign(b, "fapi_flow", 400.0, warmup, duration, lambda now: fapi_item(b, now))
    jars: dict[int, CookieJar] = b.state.setdefault("fapi_flow_jars", {})
    sign_in_lock = b.state.setdefault("sign_in_lock", asyncio.Lock())  # see prepare_code_flow

    async def make(i: int, conn: Connection) -> Op:
        jar = jars.get(i)
        if jar is None:
            jar = jars[i] = CookieJar()
            async with sign_in_lock:
                await returning_user(b, conn, jar, ("alice", "bob")[i % 2], "fapi")

        async def op(c: Connection, n: int) -> None:
            await fapi_code_flow(b, c, jar, next_item())

        return op

    return make


async def fapi_code_flow(b: Bench, c: Connection, jar: CookieJar, item: FapiItem) -> dict[str, Any]:
    """One returning-user flow of the fapi2 client (PAR -> authorize -> token), every answer checked;
    returns the token response."""
    loc = await fapi_authorize(b, c, jar, item)
    if not loc.startswith(FAPI_REDIRECT + "?"):
        raise HttpError(f"expected the code at the redirect URI, got {loc[:120]}")
    params = query_of(loc)
    if params.get("state") != item.state or "code" not in params or params.get("iss") != b.issuer:
        raise HttpError(f"bad authorization response {loc[:200]}")
    resp = await c.send(
        build_request(
            b.target,
            "POST",
            b.path("token_endpoint"),
            {"DPoP": item.token_proof},
            form(
                {
                    "grant_type": "authorization_code",
                    "code": params["code"],
                    "redirect_uri": FAPI_REDIRECT,
                    "code_verifier": item.verifier,
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": item.token_assertion,
                }
            ),
        )
    )
    _expect(resp, 200, "token")
    if b'"id_token"' not in resp.body or b'"DPoP"' not in resp.body:
        raise HttpError(f"expected a DPoP token and an id_token: {resp.body[:200]!r}")
    return orjson.loads(resp.body)


# -- the bank API: GET balances with a DPoP-bound token -----------------------------------

BANK_PREFIX = "/bank/v1"


def _ath(token: str) -> str:
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


async def bank_token(
    b: Bench,
    conn: Connection,
    jar: CookieJar,
    details: list[dict[str, Any]] | None = None,
    scope: str = "openid accounts",
) -> str:
    """A DPoP-bound access token for alice with an account_information consent (or `details`, RFC 9396),
    through the real flow: PAR (private_key_jwt + DPoP, authorization_details) -> authorize -> consent
    -> token."""
    now = int(time.time())
    verifier, challenge = pkce_pair()
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 30 * 86400))
    if details is None:
        details = [{"type": "account_information", "actions": ["accounts", "balances"], "expires_at": expires}]
    body = form(
        {
            "response_type": "code",
            "client_id": b.fapi_client_id,
            "redirect_uri": FAPI_REDIRECT,
            "scope": scope,
            "state": "bank",
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "authorization_details": orjson.dumps(details).decode(),
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": sign_assertion(b, now, fapi=True),
        }
    )
    resp = await conn.send(
        build_request(
            b.target,
            "POST",
            b.path("pushed_authorization_request_endpoint"),
            {"DPoP": dpop_proof(b, "POST", "pushed_authorization_request_endpoint", now)},
            body,
        )
    )
    _expect(resp, 201, "par")
    query = urlencode({"client_id": b.fapi_client_id, "request_uri": orjson.loads(resp.body)["request_uri"]})
    loc = _location(await _get(b, conn, jar, b.path("authorization_endpoint") + "?" + query))
    for _ in range(4):
        if loc.startswith(FAPI_REDIRECT + "?"):
            break
        page = await _get(b, conn, jar, loc)
        if page.status == 303:
            loc = _location(page)
            continue
        csrf, action = CSRF.search(page.body), CONSENT_ACTION.search(page.body)
        if not csrf or not action:
            raise HttpError("expected the consent page")
        choices = {n.decode(): v.decode() for n, v, rest in CHOICE.findall(page.body) if b"checked" in rest}
        loc = _location(
            await _post(
                b,
                conn,
                jar,
                action.group(1).decode(),
                {"decision": "approve", "csrf_token": csrf.group(1).decode(), **choices},
            )
        )
    code = query_of(loc).get("code")
    if not code:
        raise HttpError(f"no code: {loc[:200]}")
    resp = await conn.send(
        build_request(
            b.target,
            "POST",
            b.path("token_endpoint"),
            {"DPoP": dpop_proof(b, "POST", "token_endpoint", now)},
            form(
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": FAPI_REDIRECT,
                    "code_verifier": verifier,
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": sign_assertion(b, now, fapi=True),
                }
            ),
        )
    )
    _expect(resp, 200, "token")
    return orjson.loads(resp.body)["access_token"]


def dpop_get(b: Bench, token: str, url: str, path: str, now: int) -> bytes:
    """GET `path` with a DPoP-bound token and a fresh proof (RFC 9449 §7: htu `url`, ath the token hash)."""
    assert b.dpop_key is not None
    proof = es256(
        b.dpop_key,
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": b.dpop_jwk},
        {"jti": secrets.token_urlsafe(16), "htm": "GET", "htu": url, "iat": now, "ath": _ath(token)},
    )
    return build_request(b.target, "GET", path, {"Authorization": f"DPoP {token}", "DPoP": proof})


def bank_request(b: Bench, token: str, path: str, now: int) -> bytes:
    """GET on the bank API with a fresh DPoP proof (htu: the API URL, ath: the token hash)."""
    return dpop_get(b, token, b.issuer + path, path, now)


async def prepare_bank_balances(b: Bench, run: int, warmup: float, duration: float) -> MakeOp:
    """GET /bank/v1/accounts/{id}/balances with alice's DPoP-bound token (a new token per run: they
    live 5 minutes); every request carries a fresh proof, pre-signed like cc_jwt's assertions."""
    conn = Connection(b.target)
    try:
        jar = b.state.get("bank_jar")
        if jar is None:
            jar = b.state["bank_jar"] = CookieJar()
            await sign_in_once(b, conn, jar, "alice")
        token = await bank_token(b, conn, jar)
        resp = await conn.send(bank_request(b, token, BANK_PREFIX + "/accounts", int(time.time())))
        _expect(resp, 200, "bank accounts")
        account = orjson.loads(resp.body)["Data"]["Account"][0]["AccountId"]
    finally:
        conn.close()
    path = f"{BANK_PREFIX}/accounts/{account}/balances"
    next_request = _presign(b, "bank_balances", 1000.0, warmup, duration, lambda now: bank_request(b, token, path, now))

    async def make(i: int, conn: Connection) -> Op:
        async def op(c: Connection, n: int) -> None:
            resp = await c.send(next_request())
            _expect(resp, 200, "balances")
            if b'"InterimAvailable"' not in resp.body:
                raise HttpError(f"not a balances response: {resp.body[:200]!r}")

        return op

    return make


# -- UserInfo with a DPoP-bound token ------------------------------------------------------


async def prepare_userinfo(b: Bench, run: int, warmup: float, duration: float) -> MakeOp:
    """GET the UserInfo endpoint (OIDC Core §5.3) with alice's DPoP-bound access token, obtained per
    run through one fapi2 flow (PAR -> authorize -> token, scope `openid accounts`); every request
    carries a fresh proof (htu the endpoint from discovery, ath), pre-signed like cc_jwt's assertions.
    The answer must hold the subject."""
    conn = Connection(b.target)
    try:
        jar = b.state.get("userinfo_jar")
        if jar is None:
            jar = b.state["userinfo_jar"] = CookieJar()
            await returning_user(b, conn, jar, "alice", "fapi")
        token = (await fapi_code_flow(b, conn, jar, fapi_item(b, int(time.time()))))["access_token"]
    finally:
        conn.close()
    url, path = b.discovery["userinfo_endpoint"], b.path("userinfo_endpoint")
    next_request = _presign(b, "userinfo", 1000.0, warmup, duration, lambda now: dpop_get(b, token, url, path, now))

    async def make(i: int, conn: Connection) -> Op:
        async def op(c: Connection, n: int) -> None:
            resp = await c.send(next_request())
            _expect(resp, 200, "userinfo")
            if b'"sub":"' not in resp.body.replace(b" ", b""):
                raise HttpError(f"not a UserInfo response: {resp.body[:200]!r}")

        return op

    return make


# -- the bank API: payment execution ----------------------------------------------------

PAYMENT = {
    "instructedAmount": {"currency": "EUR", "amount": "0.01"},
    "creditorName": "Bench Payee GmbH",
    "creditorAccount": {"iban": "DE89370400440532013000"},
    "remittanceInformationUnstructured": "bench",
}
PAYMENT_TOKEN_WORKERS = 4


def payment_request(b: Bench, token: str, now: int) -> bytes:
    """POST /bank/v1/payments: the approved payment, a fresh Idempotency-Key and DPoP proof."""
    assert b.dpop_key is not None
    path = BANK_PREFIX + "/payments"
    proof = es256(
        b.dpop_key,
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": b.dpop_jwk},
        {"jti": secrets.token_urlsafe(16), "htm": "POST", "htu": b.issuer + path, "iat": now, "ath": _ath(token)},
    )
    return build_request(
        b.target,
        "POST",
        path,
        {"Authorization": f"DPoP {token}", "DPoP": proof, "Idempotency-Key": secrets.token_urlsafe(16)},
        orjson.dumps(PAYMENT),
    )


async def payment_tokens(b: Bench, count: int) -> list[str]:
    """`count` tokens, each approving one payment (a full PAR + consent + token flow each)."""
    jar = b.state.get("bank_jar")
    if jar is None:
        conn = Connection(b.target)
        try:
            jar = b.state["bank_jar"] = CookieJar()
            await sign_in_once(b, conn, jar, "alice")
        finally:
            conn.close()
    details = [{"type": "payment_initiation", "actions": ["initiate", "status"], **PAYMENT}]
    out: list[str] = []

    async def worker(n: int) -> None:
        conn = Connection(b.target)
        try:
            for _ in range(n):
                out.append(await bank_token(b, conn, jar, details, "openid payments"))
        finally:
            conn.close()

    share = -(-count // PAYMENT_TOKEN_WORKERS)
    await asyncio.gather(*(worker(min(share, count - i * share)) for i in range(PAYMENT_TOKEN_WORKERS)))
    return out


async def prepare_bank_payment(b: Bench, run: int, warmup: float, duration: float) -> MakeOp:
    """POST /bank/v1/payments, execution only: every payment needs its own approval (a token executes
    once), so one token per expected payment (the previous run's rate, or 150/s, x 1.5) is obtained
    through the full flow BEFORE the window, and the requests (proof, key, body) are pre-built after
    it. The window measures payment execution: token verification + DPoP + the ledger transaction with
    its idempotency record. If the pool runs dry, a flow runs inline (counted as signed_inline; such a
    run measures flows, not executions, and must be repeated with a longer pool)."""
    if warmup + duration > 60:
        raise SystemExit(
            "bank_payment: the token pool is obtained before the window and tokens live 5 minutes; "
            "keep warmup + duration <= 60 s"
        )
    name = "bank_payment"
    count = int(b.state.get(f"{name}_rate", 150.0) * 1.5 * (warmup + duration)) + 50
    t0 = time.perf_counter()
    tokens = await payment_tokens(b, count)
    now = int(time.time())
    pool = iter([payment_request(b, t, now) for t in tokens])
    b.state[f"{name}_sign_s"] = time.perf_counter() - t0
    b.state[f"{name}_inline"] = 0

    async def next_request(c: Connection) -> bytes:
        raw = next(pool, None)
        if raw is None:
            b.state[f"{name}_inline"] += 1
            token = (await payment_tokens(b, 1))[0]
            raw = payment_request(b, token, int(time.time()))
        return raw

    async def make(i: int, conn: Connection) -> Op:
        async def op(c: Connection, n: int) -> None:
            resp = await c.send(await next_request(c))
            _expect(resp, 201, "payment")
            if b'"AcceptedSettlementCompleted"' not in resp.body:
                raise HttpError(f"not a payment response: {resp.body[:200]!r}")

        return op

    return make


SCENARIOS = {
    "null": "driver ceiling: the cc_basic request against a do-nothing server",
    "discovery": "GET discovery document (framework + TLS floor of the server)",
    "cc_basic": "client_credentials, client_secret_basic",
    "cc_jwt": "client_credentials, private_key_jwt (ES256, pre-signed)",
    "cc_jwt_dpop": "client_credentials, fapi2 client: private_key_jwt + DPoP proof (both ES256, pre-signed)",
    "code_flow": "returning user: authorize -> 303 with code -> token (PKCE), flows/s",
    "code_flow_par": "returning user, public native client through PAR: PAR -> authorize -> token (PKCE), flows/s",
    "fapi_flow": "returning user, fapi2 client: PAR (private_key_jwt + DPoP) -> authorize -> token (DPoP), flows/s",
    "login": "password logins (argon2id, production parameters), logins/s",
    "introspect": "introspection of access tokens by a resource server",
    "bank_balances": "bank API: GET balances with a DPoP-bound token (fresh pre-signed proof per request)",
    "userinfo": "GET UserInfo with a DPoP-bound token (fresh pre-signed proof per request)",
    "bank_payment": "bank API: POST payments, execution only (one pre-obtained approval token per payment)",
}
