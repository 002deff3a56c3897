"""The authorization server's OpenAPI 3.1 document (src/fingrade/web/openapi.json, served at
GET /openapi.json) is valid, describes exactly the routes the AS serves (and nothing else: other methods
get 405), and the live server conforms to it: schemathesis generates requests for every operation, valid
and invalid, with real credentials where they reach deeper code (a confidential client's secret, a
resource server's, a DPoP-bound access token with a fresh proof per request, an initial access token,
a registration access token, a parked interaction with its browser cookie, a signed-in session), and
checks that no response is a 5xx and that every status code, content type, documented header
(the security headers included) and body matches the document. Like the bank's document test
(test_bank_openapi.py): bounded and deterministic, no example database."""

from __future__ import annotations

import base64
import copy
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode, checks
from starlette.routing import Mount, Route
from support.bank import Fintech, account_information
from support.dpop import DPoPKey
from support.flow import CSRF, pkce_pair
from support.operator import new_user
from support.pages import authorize_query, browser_form, interaction
from support.sca import code as sca_code
from support.server import DEMO_PASSWORD, DEMO_SECRET, Server

from fingrade.bank.context import PREFIX as BANK_PREFIX
from fingrade.bank.openapi import route_template
from fingrade.config import load_settings
from fingrade.oauth import totp
from fingrade.web.app import create_app
from fingrade.web.openapi import openapi_document

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 25
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
DOC = openapi_document()
BACKEND = "demo-backend"
BACKEND_REDIRECT = "https://localhost:9443/callback"


def _app_routes() -> dict[str, frozenset[str]]:
    """route template -> methods, for every route of the AS application (the bank's mount has its own
    document, test_bank_openapi.py; a mounted file directory is one GET route)."""
    app = create_app(load_settings(overrides={}, environ={}))
    out: dict[str, frozenset[str]] = {}
    for r in app.routes:
        if isinstance(r, Route):
            out[route_template(r.path)] = frozenset(r.methods or ())
        elif isinstance(r, Mount) and r.path != BANK_PREFIX:
            out[route_template(r.path + "/{path}")] = frozenset({"GET", "HEAD"})
    return out


ROUTES = _app_routes()


def _documented(path: str) -> frozenset[str]:
    return frozenset(m.upper() for m in DOC["paths"][path] if m != "parameters")


def test_openapi_document_is_valid_openapi_3_1() -> None:
    """The document validates against the OpenAPI 3.1 meta-schema (openapi-spec-validator)."""
    assert DOC["openapi"].startswith("3.1.")
    validate(DOC)


def test_openapi_document_describes_exactly_the_served_routes() -> None:
    """Every route of the AS is documented and every documented path is served; a route that lists its
    methods lists exactly the documented ones (HEAD comes with GET). A route that takes every method
    answers the undocumented ones itself with 405 (checked live below). A 500 is never documented."""
    documented = {route_template(p): p for p in DOC["paths"]}
    assert set(documented) == set(ROUTES)
    for template, methods in ROUTES.items():
        doc_methods = _documented(documented[template])
        assert doc_methods <= methods, template
        if methods != frozenset(METHODS):
            assert methods - {"HEAD"} == doc_methods - {"HEAD"}, template
    for path in DOC["paths"]:
        for method, operation in DOC["paths"][path].items():
            if method != "parameters":
                assert "500" not in operation["responses"], f"{method} {path}"


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_undocumented_methods_get_405_with_allow_rfc9110_15_5_6(http: httpx.Client) -> None:
    """RFC 9110 §15.5.6: a method the resource does not support is 405 with an Allow header listing
    the supported ones; never a 5xx, never served."""
    for path in DOC["paths"]:
        documented = _documented(path) | ({"HEAD"} if "GET" in _documented(path) else set())
        for method in set(METHODS) - documented:
            resp = http.request(method, _concrete(path))
            assert resp.status_code == 405, (method, path, resp.status_code, resp.text[:200])
            allowed = {m.strip() for m in resp.headers.get("allow", "").split(",") if m.strip()}
            assert allowed and allowed <= documented | {"HEAD", "OPTIONS"}, (method, path, allowed)
            assert documented - {"HEAD", "OPTIONS"} <= allowed, (method, path, allowed)


def test_openapi_served_publicly_and_cacheable(http: httpx.Client, server: Server) -> None:
    """GET /openapi.json: public like discovery (no credentials, CORS `*`, cacheable), `servers` is the
    issuer, and the paths are the document's."""
    resp = http.get("/openapi.json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["access-control-allow-origin"] == "*"
    assert resp.headers["cache-control"] == "public, max-age=300"
    served = resp.json()
    assert served["servers"] == [{"url": server.issuer}]
    assert served["paths"] == DOC["paths"]
    assert served["components"] == DOC["components"]


# -- real credentials ----------------------------------------------------------------------------------


# The passkey steps of strong customer authentication, with the form fields beside the CSRF token. A
# passkey's answer needs a real authenticator: here they are checked for documented answers on a
# real interaction, never a 5xx; their successful answers are checked in Chromium
# (tests/browser/test_sca_passkeys.py) and tests/unit/test_passkey_interaction.py.
SCA_STEPS: dict[str, dict[str, str]] = {
    "/interaction/{iid}/passkey-login": {"credential": "{}"},
    "/interaction/{iid}/passkey": {"credential": "{}"},
    "/interaction/{iid}/enrol-passkey": {"credential": "{}"},
}


@dataclass
class Credentials:
    """What an operation's requests carry: headers (Authorization), a browser's cookies (they replace
    generated ones: a CSRF token is bound to them), a fresh DPoP proof for `dpop_token` (or for the
    token and PAR endpoints themselves), and the values of real resources that generation mixes in
    (path parameters, query, body)."""

    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    dpop: DPoPKey | None = None
    dpop_token: str | None = None
    real: dict[str, Any] = field(default_factory=dict)


class Apply(requests.auth.AuthBase):
    """Adds the credentials to each request as it is sent; a generated DPoP header is kept (fuzzed)."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.update(self.creds.headers)
        if self.creds.cookies:
            r.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.creds.cookies.items())
        if self.creds.dpop is not None and "DPoP" not in r.headers:
            parts = urlsplit(r.url)
            htu = f"{parts.scheme}://{parts.netloc}{parts.path}"
            r.headers["DPoP"] = self.creds.dpop.proof(r.method, htu, token=self.creds.dpop_token)
        return r


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture(scope="module")
def resource_server(server: Server) -> str:
    out = server.add_client(
        "--name",
        "OpenAPI resource server",
        "--profile",
        "confidential",
        "--grant-type",
        "client_credentials",
        "--scope",
        "accounts",
        "--resource-server",
    )
    return _basic(out["client_id"], out["client_secret"])


@pytest.fixture(scope="module")
def fintech(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(server, tmp_path_factory.mktemp("as-openapi-fintech"))


@pytest.fixture(scope="module")
def dpop_token(fintech: Fintech) -> str:
    return fintech.token(account_information())


@pytest.fixture(scope="module")
def initial_access_token(server: Server) -> str:
    return server.cli("registration-token", "create", "--label", "openapi-test", "--expires-in", "3600").stdout.strip()


REGISTRATION = {
    "client_name": "OpenAPI test client",
    "redirect_uris": ["https://openapi.example/cb"],
    "token_endpoint_auth_method": "client_secret_basic",
}


def _register(server: Server, initial_access_token: str) -> dict[str, Any]:
    with server.client() as http:
        resp = http.post("/register", json=REGISTRATION, headers={"Authorization": f"Bearer {initial_access_token}"})
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def consent(server: Server, resource_server: str, fintech: Fintech) -> dict[str, Any]:
    with server.client() as http:
        resp = http.post(
            "/consent-resources",
            headers={"Authorization": resource_server},
            json={"client_id": fintech.client.client_id, "authorization_details": [account_information()]},
        )
    assert resp.status_code == 201, resp.text
    return resp.json()


def _cc_token(server: Server) -> str:
    with server.client() as http:
        resp = http.post(
            "/token", auth=(BACKEND, DEMO_SECRET), data={"grant_type": "client_credentials", "scope": "accounts"}
        )
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def _credentials(path: str, method: str, request: pytest.FixtureRequest) -> Credentials:
    """The credentials and real values for one operation."""
    server: Server = request.getfixturevalue("server")
    backend = _basic(BACKEND, DEMO_SECRET)
    if path == "/token":
        if method == "OPTIONS":
            return Credentials(real={"headers": {"Origin": "https://localhost:3000"}})  # demo-spa's origin
        return Credentials(
            {"Authorization": backend},
            dpop=DPoPKey(),
            real={"body": {"grant_type": "client_credentials", "scope": "accounts"}},
        )
    if path == "/par":
        _, challenge = pkce_pair()
        return Credentials(
            {"Authorization": backend},
            dpop=DPoPKey(),
            real={
                "body": {
                    "response_type": "code",
                    "redirect_uri": BACKEND_REDIRECT,
                    "scope": "openid accounts",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                    "state": "s",
                }
            },
        )
    if path == "/userinfo":
        fintech: Fintech = request.getfixturevalue("fintech")
        token = request.getfixturevalue("dpop_token")
        return Credentials(
            {"Authorization": f"DPoP {token}"},
            dpop=fintech.client.dpop,
            dpop_token=token,
            real={"body": {}} if method == "POST" else {"query": {}},
        )
    if path in ("/introspect", "/revoke"):
        # /revoke: the resource server revokes only its own tokens; another client's stays valid.
        return Credentials(
            {"Authorization": request.getfixturevalue("resource_server")}, real={"body": {"token": _cc_token(server)}}
        )
    if path == "/register":
        iat = request.getfixturevalue("initial_access_token")
        return Credentials({"Authorization": f"Bearer {iat}"}, real={"body": REGISTRATION})
    if path == "/register/{client_id}":
        reg = _register(server, request.getfixturevalue("initial_access_token"))
        real: dict[str, Any] = {"path_parameters": {"client_id": reg["client_id"]}}
        if method == "PUT":
            real["body"] = {**REGISTRATION, "client_id": reg["client_id"]}
        return Credentials({"Authorization": f"Bearer {reg['registration_access_token']}"}, real=real)
    if path.startswith("/consent-resources"):
        rs = request.getfixturevalue("resource_server")
        lodged = request.getfixturevalue("consent")
        if path == "/consent-resources":
            return Credentials(
                {"Authorization": rs},
                real={"body": {"client_id": lodged["client_id"], "authorization_details": [account_information()]}},
            )
        return Credentials(
            {"Authorization": rs},
            real={"path_parameters": {"consent_id": lodged["consent_id"]}, "query": {"client_id": lodged["client_id"]}},
        )
    if path == "/interaction/{iid}":
        iid, form = interaction(server)
        return Credentials(cookies=form.cookies, real={"path_parameters": {"iid": iid}})
    if path == "/interaction/{iid}/login":
        iid, form = interaction(server)
        return Credentials(
            cookies=form.cookies,
            real={
                "path_parameters": {"iid": iid},
                "body": {"csrf_token": form.csrf, "username": "alice", "password": DEMO_PASSWORD},
            },
        )
    if path in ("/interaction/{iid}/second-factor", "/interaction/{iid}/enrol"):
        # Signed in as alice (password only: the test servers run with SCA off), who has the demo
        # authenticator app: her current code is a real second factor (a step-up), and enrolment
        # without an offered key answers with the page the interaction is at.
        iid, form = interaction(server, signed_in=True)
        return Credentials(
            cookies=form.cookies,
            real={
                "path_parameters": {"iid": iid},
                "body": {"csrf_token": form.csrf, "code": sca_code(int(time.time()))},
            },
        )
    if path == "/interaction/{iid}/consent":
        iid, form = interaction(server, signed_in=True)
        return Credentials(
            cookies=form.cookies,
            real={"path_parameters": {"iid": iid}, "body": {"csrf_token": form.csrf, "decision": "deny"}},
        )
    if path in SCA_STEPS:
        iid, form = interaction(server)
        body = {"csrf_token": form.csrf, **SCA_STEPS[path]}
        return Credentials(cookies=form.cookies, real={"path_parameters": {"iid": iid}, "body": body})
    if path == "/logout":
        form = browser_form(server, "/logout")
        return Credentials(cookies=form.cookies, real={"body": {"csrf_token": form.csrf}} if method == "POST" else {})
    if path == "/account/login":
        form = browser_form(server, "/account/login")
        return Credentials(
            cookies=form.cookies,
            real={"body": {"csrf_token": form.csrf, "username": "bob", "password": DEMO_PASSWORD}}
            if method == "POST"
            else {},
        )
    if path in ("/account/second-factor", "/account/enrol"):
        # The shared server runs with SCA off: a password signs in at once, so no sign-in ever waits
        # for its second factor here and these answer 303 to /account/login (test_sca_account.py has
        # them with SCA on).
        return Credentials()
    if path.startswith("/account/security"):
        return _security_credentials(server, path, method)
    if path.startswith("/account/connections"):
        form = browser_form(server, "/account/connections", sign_in=True)
        return Credentials(
            cookies=form.cookies,
            real={"body": {"csrf_token": form.csrf, "client_id": "openapi-no-app"}} if method == "POST" else {},
        )
    if path == "/authorize":
        return Credentials(real={"query": authorize_query()} if method == "GET" else {"body": authorize_query()})
    if path == "/static/{path}":
        return Credentials(real={"path_parameters": {"path": "style.css"}})
    return Credentials()


def _security_credentials(server: Server, path: str, method: str) -> Credentials:
    """A customer of their own (nobody else's factors change) signed in to the security page, with an
    authenticator app added there; for adding another, a fresh offer and its current code; for
    removing, a second app to remove."""
    username, password = new_user(server)
    with server.client(follow_redirects=False) as browser:
        page = browser.get("/account/login")
        signed = browser.post(
            "/account/login",
            data={"username": username, "password": password, "csrf_token": CSRF.search(page.text).group(1)},
        )
        assert signed.status_code == 303, signed.text

        def add_app() -> dict[str, str]:
            offer = browser.get("/account/security/add-app")
            key = re.search(r'<code id="totp-key">([A-Z2-7 ]+)</code>', offer.text).group(1).replace(" ", "")
            secret = base64.b32decode(key + "=" * (-len(key) % 8))
            return {
                "csrf_token": CSRF.search(offer.text).group(1),
                "enrolment": re.search(r'name="enrolment" value="([^"]+)"', offer.text).group(1),
                "code": totp.code_at(secret, int(time.time())),
                "password": password,
            }

        assert browser.post("/account/security/add-app", data=add_app()).status_code == 200  # recovery codes
        body: dict[str, str] = {}
        if path == "/account/security/add-app" and method == "POST":
            body = add_app()
        elif path == "/account/security/remove":
            before = set(re.findall(r'name="factor_id" value="([^"]+)"', browser.get("/account/security").text))
            assert browser.post("/account/security/add-app", data=add_app()).status_code == 303
            page = browser.get("/account/security")
            (added,) = set(re.findall(r'name="factor_id" value="([^"]+)"', page.text)) - before
            body = {"csrf_token": CSRF.search(page.text).group(1), "factor_id": added, "password": password}
        elif path == "/account/security/recovery-codes":
            page = browser.get("/account/security")
            body = {"csrf_token": CSRF.search(page.text).group(1), "password": password}
        return Credentials(cookies=dict(browser.cookies.items()), real={"body": body} if method == "POST" else {})


# -- schemathesis against the live server ------------------------------------------------------------


@pytest.fixture(scope="module")
def api_schema(server: Server):
    doc = copy.deepcopy(DOC)
    doc["servers"] = [{"url": server.base_url}]
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_dict(doc, config=config)


@pytest.fixture
def session(server: Server) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.verify = server.ca
        yield s


OPERATIONS = [
    (path, method.upper()) for path, item in DOC["paths"].items() for method in item if method != "parameters"
]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


def _inputs(path: str, method: str) -> bool:
    """Whether the operation takes anything but path parameters (a body, query, header or cookie)."""
    item = DOC["paths"][path]
    op = item[method.lower()]
    params = [
        DOC["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
        for p in item.get("parameters", []) + op.get("parameters", [])
    ]
    return "requestBody" in op or any(p["in"] != "path" for p in params)


def _run(
    api_schema, path: str, method: str, mode: GenerationMode, creds: Credentials, call: Callable[[Any], None]
) -> int:
    """Runs `call(case)` on generated cases of one operation; returns how many were sent. Cases built on
    the real values are mixed in: in positive mode all of them, in negative mode the real path
    parameters (so that invalid bodies reach a real resource)."""
    operation = api_schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)
    real = (
        creds.real
        if mode is GenerationMode.POSITIVE
        else {k: v for k, v in creds.real.items() if k == "path_parameters" and _inputs(path, method)}
    )
    if real:
        strategy = st.one_of(strategy, operation.as_strategy(generation_mode=mode, **real))
    sent = []

    @given(case=strategy)
    @BOUNDED
    def run(case) -> None:
        call(case)
        sent.append(1)

    run()
    return len(sent)


def _cases() -> list[Any]:
    """Every operation in positive mode; in negative mode those that take something to make invalid."""
    return [
        pytest.param(path, method, mode, id=f"{method} {path}-{mode.value}")
        for path, method in OPERATIONS
        for mode in MODES
        if mode is GenerationMode.POSITIVE or _inputs(path, method) or any(p for p in re.findall(r"\{[^}]+\}", path))
    ]


@pytest.mark.parametrize(("path", "method", "mode"), _cases())
def test_openapi_conformance(
    api_schema,
    session: requests.Session,
    server: Server,
    request: pytest.FixtureRequest,
    path: str,
    method: str,
    mode: GenerationMode,
) -> None:
    """With real credentials for the operation: no 5xx, and every response as documented. In positive
    mode the real values reach the successful answers, not only errors."""
    creds = _credentials(path, method, request)
    session.auth = Apply(creds)
    statuses: set[int] = set()

    def call(case) -> None:
        response = case.call_and_validate(
            base_url=server.base_url, session=session, verify=server.ca, checks=CHECKS, timeout=20
        )
        statuses.add(response.status_code)

    sent = _run(api_schema, path, method, mode, creds, call)
    assert sent >= (MAX_EXAMPLES // 2 if _inputs(path, method) or "{" in path else 1)
    if mode is GenerationMode.POSITIVE and path not in SCA_STEPS:
        assert any(s < 400 for s in statuses), statuses  # the real values reach the successful answers


def test_openapi_conformance_without_credentials(api_schema, session: requests.Session, server: Server) -> None:
    """The protected operations without credentials: 401 (or 400 for a malformed request, 413/414/431
    over the size limits; 303 to sign-in for the customer's pages), as documented, never a 5xx."""
    for path, method in OPERATIONS:
        security = DOC["paths"][path][method.lower()].get("security", DOC["security"])
        if {} in security:
            continue  # credentials are optional (or sent in the body)

        def call(case) -> None:
            response = case.call_and_validate(
                base_url=server.base_url, session=session, verify=server.ca, checks=CHECKS, timeout=20
            )
            assert response.status_code in (400, 401, 413, 414, 431), (
                method,
                path,
                response.status_code,
                response.text[:200],
            )

        _run(api_schema, path, method, GenerationMode.NEGATIVE, Credentials(), call)
        _run(api_schema, path, method, GenerationMode.POSITIVE, Credentials(), call)
