"""the bank API's OpenAPI 3.1 document (src/fingrade/bank/openapi.json, served at
GET /bank/v1/openapi.json) is valid, describes exactly the routes the bank serves, and the live server
conforms to it: schemathesis generates requests for every operation (valid and invalid data, with a
fresh DPoP proof per request for a real DPoP-bound token, and without a token) and checks that no
response is a 5xx, and that every status code, content type, documented header and body matches the
document. Bounded and deterministic for CI: derandomized generation, a fixed number of examples per
operation, no example database."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode, checks
from support.bank import PREFIX, Fintech, account_information
from support.server import Server

from fingrade.bank.openapi import openapi_document, route_template
from fingrade.bank.routes import bank_api

pytestmark = [pytest.mark.bank, pytest.mark.fuzz]

MAX_EXAMPLES = 50
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def _route_paths() -> frozenset[str]:
    api, _ = bank_api()
    return frozenset(route_template(r.path) for r in api.routes) - {"/openapi.json"}


DOC = openapi_document()


def test_openapi_document_is_valid_openapi_3_1() -> None:
    """The document validates against the OpenAPI 3.1 meta-schema (openapi-spec-validator)."""
    assert DOC["openapi"].startswith("3.1.")
    validate(DOC)


def test_openapi_document_describes_exactly_the_served_routes() -> None:
    """Every bank route is documented and every documented path is served: a new endpoint fails here
    until it is documented, and the document never promises a missing one."""
    assert {route_template(p) for p in DOC["paths"]} == _route_paths()
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            if method != "parameters":
                assert "500" not in op["responses"], f"{method} {path}: a 500 is never a documented answer"


def test_openapi_served_publicly_and_cacheable(http) -> None:
    """GET /bank/v1/openapi.json: no token, CORS `*`, cacheable, `servers` = the bank's public URL."""
    resp = http.get(PREFIX + "/openapi.json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["access-control-allow-origin"] == "*"
    assert resp.headers["cache-control"] == "public, max-age=300"
    assert "x-fapi-interaction-id" in resp.headers
    doc = resp.json()
    assert doc["servers"] == [{"url": http.base_url.join(PREFIX).__str__().rstrip("/")}]
    assert doc == {**DOC, "servers": doc["servers"]}
    assert http.post(PREFIX + "/openapi.json").status_code == 405


# -- schemathesis against the live server ------------------------------------------------------------


class DPoPAuth(requests.auth.AuthBase):
    """A fresh DPoP proof for each request as it is sent (htm, htu = the final URL without query)."""

    def __init__(self, fintech: Fintech, token: str) -> None:
        self.fintech, self.token = fintech, token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(r.url)
        htu = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        r.headers["Authorization"] = f"DPoP {self.token}"
        r.headers["DPoP"] = self.fintech.client.dpop.proof(r.method, htu, token=self.token)
        return r


@pytest.fixture(scope="module")
def fintech(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(
        server, tmp_path_factory.mktemp("openapi-fintech"), "--authorization-details-type", "payment_initiation"
    )


@pytest.fixture(scope="module")
def token(fintech: Fintech) -> str:
    return fintech.token(account_information())


@pytest.fixture(scope="module")
def account_ids(fintech: Fintech, token: str, server: Server) -> list[str]:
    with server.client() as http:
        resp = fintech.get(http, "/accounts", token)
    assert resp.status_code == 200, resp.text
    return [a["AccountId"] for a in resp.json()["Data"]["Account"]]


PAYMENT = {
    "instructedAmount": {"currency": "EUR", "amount": "1.23"},
    "creditorName": "OpenAPI Test GmbH",
    "creditorAccount": {"iban": "DE89370400440532013000"},
}
PAYMENT_KEY = "openapi-test-1"


@pytest.fixture(scope="module")
def pay_token(fintech: Fintech) -> str:
    """A token approving PAYMENT (initiate, status); used only when the document has payment paths."""
    detail = {"type": "payment_initiation", "actions": ["initiate", "status"], **PAYMENT}
    return fintech.token(detail, scope="openid payments")


@pytest.fixture(scope="module")
def payment_ids(fintech: Fintech, pay_token: str, server: Server) -> list[str]:
    with server.client() as http:
        resp = http.post(
            PREFIX + "/payments",
            json=PAYMENT,
            headers={
                "Authorization": f"DPoP {pay_token}",
                "Idempotency-Key": PAYMENT_KEY,
                "DPoP": fintech.proof("/payments", pay_token, method="POST"),
            },
        )
    assert resp.status_code == 201, resp.text
    return [resp.json()["Data"]["PaymentId"]]


CONSENTS = "/account-access-consents"
CONSENT = {"Data": {"Permissions": ["ReadAccountsDetail", "ReadBalances"]}, "Risk": {}}


@pytest.fixture(scope="module")
def cc_token(fintech: Fintech) -> str:
    """The TPP's own client credentials token: what the consent operations (UK Open Banking Read/Write
    API account-access-consents) need."""
    return fintech.client_credentials()


@pytest.fixture(scope="module")
def consent_ids(fintech: Fintech, cc_token: str, server: Server) -> list[str]:
    with server.client() as http:
        resp = fintech.post(http, CONSENTS, cc_token, CONSENT)
    assert resp.status_code == 201, resp.text
    return [resp.json()["Data"]["ConsentId"]]


def _token_fixture(path: str) -> str:
    if path.startswith("/payments"):
        return "pay_token"
    return "cc_token" if path.startswith(CONSENTS) else "token"


@pytest.fixture(scope="module")
def api_schema(server: Server):
    doc = copy.deepcopy(DOC)
    doc["servers"] = [{"url": server.base_url + PREFIX}]
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


@pytest.fixture(scope="module")
def real_values(account_ids: list[str], payment_ids: list[str], consent_ids: list[str]) -> dict[str, Any]:
    """Values of the customer's real resources, mixed into generation so that 2xx answers are exercised,
    not only 404s and 403s: path parameters, the approved payment with the key it was made with
    (a retry: the same 201 again), and a consent request the bank serves. Bodies and headers by path."""
    return {
        "path": {"AccountId": account_ids[0], "PaymentId": payment_ids[0], "ConsentId": consent_ids[0]},
        "body": {"/payments": PAYMENT, CONSENTS: CONSENT},
        "headers": {"/payments": {"Idempotency-Key": PAYMENT_KEY}},
    }


@pytest.fixture
def session(server: Server) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.verify = server.ca
        s.base_url = server.base_url + PREFIX
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


def _run(api_schema, path: str, method: str, mode: GenerationMode, call, real: dict[str, Any] | None = None) -> int:
    """Runs `call(case)` on generated cases of one operation; returns how many were sent. In positive
    mode, cases built on `real` values are mixed in."""
    operation = api_schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)
    if real and mode is GenerationMode.POSITIVE:
        names = {p["name"] for p in _parameters(path, method) if p["in"] == "path"}
        kw: dict[str, Any] = {"path_parameters": {k: v for k, v in real["path"].items() if k in names}}
        if method == "POST" and path in real["body"]:
            kw["body"] = real["body"][path]
            if path in real["headers"]:
                kw["headers"] = real["headers"][path]
        strategy = st.one_of(strategy, operation.as_strategy(generation_mode=mode, **kw))
    sent = []

    @given(case=strategy)
    @BOUNDED
    def run(case) -> None:
        call(case)
        sent.append(1)

    run()
    return len(sent)


def _parameters(path: str, method: str) -> list[dict[str, Any]]:
    doc = DOC
    item = doc["paths"][path]
    params = item.get("parameters", []) + item[method.lower()].get("parameters", [])
    return [doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p for p in params]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_openapi_conformance_with_dpop_token(
    api_schema,
    session: requests.Session,
    fintech: Fintech,
    real_values: dict[str, Any],
    request: pytest.FixtureRequest,
    path: str,
    method: str,
    mode: GenerationMode,
) -> None:
    """With a valid DPoP-bound token for the operation (accounts, payments, or the TPP's client
    credentials token for consents) and a fresh proof per request: no 5xx, and every response as
    documented."""
    token = request.getfixturevalue(_token_fixture(path))
    session.auth = DPoPAuth(fintech, token)
    statuses: set[int] = set()

    def call(case) -> None:
        response = case.call_and_validate(
            base_url=session.base_url, session=session, verify=session.verify, checks=CHECKS, timeout=20
        )
        statuses.add(response.status_code)

    assert _run(api_schema, path, method, mode, call, real_values) >= MAX_EXAMPLES // 2
    if mode is GenerationMode.POSITIVE:
        assert statuses & {200, 201, 204}, statuses  # the generated data reaches the real answers, not only errors


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_openapi_conformance_without_token(
    api_schema, session: requests.Session, path: str, method: str, mode: GenerationMode
) -> None:
    """Without a token (RFC 6750 §3.1): no 5xx, and the 400/401 answers as documented."""

    def call(case) -> None:
        response = case.call_and_validate(
            base_url=session.base_url, session=session, verify=session.verify, checks=CHECKS, timeout=20
        )
        assert response.status_code in (400, 401), response.text

    assert _run(api_schema, path, method, mode, call) >= MAX_EXAMPLES // 2


def test_interaction_id_on_paths_with_encoded_newline(http) -> None:
    """a bank path whose account id decodes to a newline was
    not matched by the /bank/v1 mount (Starlette's `.*` stops at a newline), so the AS answered a
    bare 404 without x-fapi-interaction-id or Cache-Control. It is the bank's 404, like any unknown id."""
    for path in ("/accounts/a%0Ab", "/accounts/a%0Ab/transactions", "/accounts/%0A/balances"):
        resp = http.get(PREFIX + path)
        assert resp.status_code in (401, 404), resp.text
        assert "x-fapi-interaction-id" in resp.headers, path
        assert resp.headers["cache-control"] == "no-store", path
