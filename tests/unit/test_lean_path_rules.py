"""The lean path's parts (web/lean_path.py), driven as ASGI calls without a socket: the request the
core endpoint gets is the one `to_core` builds, the answer's header fields and body are the ones
`to_starlette` sends, and every unusual request goes to the application unchanged. The whole path on
a real server, against the application, is tests/integration/test_lean_path.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from fingrade.bank.server import IN_PROCESS
from fingrade.config import load_settings
from fingrade.protocol.asgi import raw_response, to_starlette
from fingrade.protocol.http import HttpRequest, HttpResponse
from fingrade.web import lean_path, oauth_routes
from fingrade.web.app import create_app
from fingrade.web.lean_path import LeanPath

LATIN1 = st.text(alphabet=st.characters(codec="latin-1"), max_size=30)


# -- the answer ---------------------------------------------------------------------------------

responses = st.builds(
    HttpResponse,
    status=st.sampled_from([200, 201, 204, 302, 304, 400, 401, 413, 500, 503]),
    headers=st.dictionaries(
        st.sampled_from(
            ["Cache-Control", "Pragma", "WWW-Authenticate", "DPoP-Nonce", "Content-Type", "content-length", "X-A"]
        ),
        LATIN1,
        max_size=4,
    ),
    json=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=10), st.integers()))),
    body=st.binary(max_size=40),
    content_type=st.one_of(
        st.none(),
        st.sampled_from(["text/html", "text/plain; charset=latin-1", "application/jwt", "TEXT/x; Charset=a", "text/"]),
    ),
)


def _starlette(resp: HttpResponse) -> tuple[list[tuple[bytes, bytes]], bytes]:
    answer = to_starlette(resp)
    return answer.raw_headers, bytes(answer.body)


def _outcome(build: Any, resp: HttpResponse) -> Any:
    try:
        return build(resp)
    except Exception as exc:  # noqa: BLE001 - compared: both must fail alike
        return type(exc)


@given(responses)
@settings(max_examples=300)
def test_raw_answer_is_what_starlette_sends(resp: HttpResponse) -> None:
    """Also when it cannot be sent: a header value Latin-1 cannot carry, an integer JSON cannot."""
    assert _outcome(raw_response, resp) == _outcome(_starlette, resp)


def test_failures_to_encode_are_the_same() -> None:
    for resp in (HttpResponse(headers={"X": "€"}), HttpResponse(json={"n": 2**64})):
        assert _outcome(raw_response, resp) == _outcome(_starlette, resp) != (_outcome(raw_response, HttpResponse()))
        assert isinstance(_outcome(raw_response, resp), type)


# -- the request --------------------------------------------------------------------------------


def _fronts(**overrides: Any) -> tuple[Starlette, LeanPath]:
    """The application (not started: the recording endpoints below need no core) and the lean path."""
    settings = load_settings(overrides={"issuer": "https://as.example.com", **overrides}, environ={})
    app = create_app(settings)
    app.state.core = None
    return app, LeanPath(app, settings)


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]], query: bytes = b"", **extra: Any) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "server": ("127.0.0.1", 8000),
        "client": ("192.0.2.7", 50000),
        **extra,
    }


async def _call(app: Any, scope: dict, pieces: list[bytes]) -> list[dict]:
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]
    messages = messages or [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


class Recorder:
    """Stands in for the token endpoint of both paths: records the request, answers 200."""

    def __init__(self) -> None:
        self.seen: list[HttpRequest] = []

    async def __call__(self, core: Any, request: HttpRequest) -> tuple[HttpResponse, None]:
        self.seen.append(request)
        return HttpResponse(json={"ok": True}), None


NAMES = st.sampled_from(
    [
        b"authorization",
        b"content-type",
        b"dpop",
        b"accept",
        b"x-client-cert",
        b"x-forwarded-for",
        b"user-agent",
        b"host",
    ]
)
HEADERS = st.lists(st.tuples(NAMES, st.binary(max_size=20)), max_size=8)


@given(
    headers=HEADERS,
    body=st.lists(st.binary(max_size=50), max_size=4),
    query=st.text(max_size=20).map(str.encode),
    framing=st.sampled_from(["length", "chunked", "none"]),
)
@settings(max_examples=200, deadline=None)
def test_core_request_is_the_one_to_core_builds(headers: list, body: list[bytes], query: bytes, framing: str) -> None:
    """Header fields as sent (the proxy's certificate header dropped, a repeated one joined with
    ", "), the query, the body however it is framed, the client's address: the same HttpRequest, and
    the same answer."""
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(oauth_routes, "token_endpoint", recorder)
        patch.setattr(lean_path, "token_endpoint", recorder)
        app, front = _fronts()
        size = sum(map(len, body))
        framed = [(b"content-length", str(size).encode())] if framing == "length" else []
        framed += [(b"transfer-encoding", b"chunked")] if framing == "chunked" else []
        full = asyncio.run(_call(app, _scope("POST", "/token", headers + framed, query), list(body)))
        lean = asyncio.run(_call(front, _scope("POST", "/token", headers + framed, query), list(body)))
    assert len(recorder.seen) == 2, (full, lean)
    assert recorder.seen[0] == recorder.seen[1]
    assert full == lean


# -- what goes to the application ---------------------------------------------------------------


class Behind:
    """The application behind the lean path, recording what it is handed."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state
        self.handed: list[str] = []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self.handed.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 299, "headers": []})
            await send({"type": "http.response.body", "body": b""})


BASIC = [(b"authorization", b"Basic eDp5"), (b"content-type", b"application/x-www-form-urlencoded")]


@pytest.mark.parametrize(
    ("what", "scope", "settings"),
    [
        ("an Origin (CORS)", _scope("POST", "/token", [*BASIC, (b"origin", b"https://a.example")]), {}),
        ("an empty Origin", _scope("POST", "/token", [*BASIC, (b"origin", b"")]), {}),
        ("OPTIONS", _scope("OPTIONS", "/token", BASIC), {}),
        ("HEAD", _scope("HEAD", "/userinfo", BASIC), {}),
        ("another method", _scope("PATCH", "/par", BASIC), {}),
        ("another path", _scope("POST", "/register", BASIC), {}),
        ("a trailing slash", _scope("POST", "/token/", BASIC), {}),
        ("the bank's call from inside the process", _scope("POST", "/introspect", BASIC, **{IN_PROCESS: True}), {}),
        ("the mutual-TLS listener", _scope("POST", "/token", BASIC, extensions={"tls": {"client_cert_chain": []}}), {}),
        ("a mounted scope", _scope("POST", "/token", BASIC, root_path="/as"), {}),
        ("a query that is not UTF-8", _scope("POST", "/token", BASIC, b"x=\xff"), {}),
        ("a trusted proxy", _scope("POST", "/token", BASIC), {"trusted_proxies": ["192.0.2.0/24"]}),
        (
            "plain HTTP behind proxies (ProxyOnly)",
            _scope("POST", "/token", BASIC),
            {"tls": "off", "trusted_proxies": ["10.0.0.1"]},
        ),
        ("a page request with an Origin", _scope("GET", "/authorize", [(b"origin", b"https://a.example")]), {}),
        ("a websocket", {**_scope("GET", "/token", []), "type": "websocket"}, {}),
        ("lifespan", {"type": "lifespan", "asgi": {"version": "3.0"}}, {}),
    ],
)
def test_unusual_requests_go_to_the_application(what: str, scope: dict, settings: dict) -> None:
    app, front = _fronts(**settings)
    behind = Behind(app)
    front.app = behind  # type: ignore[assignment]
    asyncio.run(_call(front, scope, [b"grant_type=client_credentials"]))
    assert behind.handed == [scope["type"]], what


def test_direct_client_behind_configured_proxies_is_served_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """With TLS here and trusted proxies configured, a client that is not one of them is served by the
    lean path, with its own address (X-Forwarded-For means nothing from it)."""
    recorder = Recorder()
    monkeypatch.setattr(lean_path, "token_endpoint", recorder)
    app, front = _fronts(trusted_proxies=["10.0.0.0/8"])
    behind = Behind(app)
    front.app = behind  # type: ignore[assignment]
    headers = [*BASIC, (b"x-forwarded-for", b"10.1.1.1, 203.0.113.9"), (b"x-client-cert", b":AAAA:")]
    sent = asyncio.run(_call(front, _scope("POST", "/token", headers), [b"grant_type=client_credentials"]))
    assert behind.handed == [] and sent[0]["status"] == 200
    (seen,) = recorder.seen
    assert seen.client_ip == "192.0.2.7" and seen.client_cert is None and "x-client-cert" not in seen.headers


# -- the bank's account reads -------------------------------------------------------------------

SEGMENTS = st.sampled_from(
    ["accounts", "balances", "transactions", "acc_1", "a\nb", "", "payments", "x y", "%2F", "\n"]
)


@given(st.lists(SEGMENTS, min_size=1, max_size=4), st.booleans())
@settings(max_examples=300)
def test_account_reads_are_the_routes_the_routers_choose(segments: list[str], newline: bool) -> None:
    """AccountReads.match finds the route function and path parameters the host application's router
    and then the bank API's router choose for a GET, and nothing for a path they give another route."""
    from starlette.routing import Match, Mount

    from fingrade.bank.context import PREFIX
    from fingrade.bank.routes import AccountReads

    app, _front = _fronts()
    path = PREFIX + "/" + "/".join(segments) + ("\n" if newline else "")
    scope = _scope("GET", path, [])
    chosen = None
    host_route = next((r for r in app.routes if r.matches(scope)[0] is Match.FULL), None)
    if isinstance(host_route, Mount) and host_route.path == PREFIX:
        _match, child = host_route.matches(scope)
        inner = {**scope, **child}
        api = app.state.bank_api
        route = next((r for r in api.routes if r.matches(inner)[0] is Match.FULL), None)
        if route is not None and route.path.startswith("/accounts"):
            chosen = (route.endpoint, route.matches(inner)[1]["path_params"])
    assert AccountReads(app.state.bank_api).match(path) == chosen


def test_account_reads_serve_the_account_routes_only() -> None:
    from fingrade.bank.routes import AccountReads

    app, _front = _fronts()
    reads = AccountReads(app.state.bank_api)
    assert reads.match("/bank/v1/accounts") is not None
    assert reads.match("/bank/v1/accounts/acc_1")[1] == {"account_id": "acc_1"}  # type: ignore[index]
    assert reads.match("/bank/v1/accounts/acc_1/balances")[1] == {"account_id": "acc_1"}  # type: ignore[index]
    assert reads.match("/bank/v1/accounts/acc_1/transactions") is not None
    for other in (
        "/bank/v1/payments",
        "/bank/v1/account-access-consents/c",
        "/bank/v1/accounts/a/b/c",
        "/bank/v1/openapi.json",
    ):
        assert reads.match(other) is None, other
