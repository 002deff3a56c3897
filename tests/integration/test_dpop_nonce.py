"""Server-provided DPoP nonces (RFC 9449 §8 at the token and PAR endpoints, §9 at protected
resources), on a server started with `dpop_nonce = true`; and `dpop_bound_access_tokens` (§5.2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.backends import BACKENDS
from support.demo import NATIVE_REDIRECT, SPA_ORIGIN, SPA_REDIRECT
from support.dpop import DPoPKey
from support.fapi import FapiClient
from support.flow import run_flow
from support.refusals import assert_oauth_error, www_authenticate
from support.server import Server, dedicated_server, start_server
from support.tokens import exchange

pytestmark = pytest.mark.dpop


@pytest.fixture(scope="module", params=BACKENDS)
def nonce_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with dedicated_server(
        tmp_path_factory.mktemp("nonce-" + request.param), request.param, {"FINGRADE_DPOP_NONCE": "true"}
    ) as srv:
        yield srv


@pytest.fixture
def web(nonce_server: Server) -> Iterator[httpx.Client]:
    with nonce_server.client() as c:
        yield c


def _token_with_nonce(server: Server, browser: httpx.Client, key: DPoPKey, **headers: str) -> httpx.Response:
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT)
    first = exchange(
        browser, got, client_id="demo-native", headers={"DPoP": key.proof("POST", server.issuer + "/token"), **headers}
    )
    # §8: 400 use_dpop_nonce and the nonce to use; the code is not spent by this refusal.
    assert_oauth_error(first, "use_dpop_nonce", 400)
    nonce = first.headers["DPoP-Nonce"]
    return exchange(
        browser,
        got,
        client_id="demo-native",
        headers={"DPoP": key.proof("POST", server.issuer + "/token", claims={"nonce": nonce}), **headers},
    )


def test_rfc9449_s8_token_endpoint_asks_for_a_nonce_then_accepts_it(nonce_server: Server, web: httpx.Client) -> None:
    key = DPoPKey()
    resp = _token_with_nonce(nonce_server, web, key)
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "DPoP"
    assert resp.headers["DPoP-Nonce"]  # §8.2: the next nonce travels with every answer


def test_rfc9449_s8_forged_nonce_refused(nonce_server: Server, web: httpx.Client) -> None:
    got = run_flow(web, "demo-native", NATIVE_REDIRECT)
    proof = DPoPKey().proof("POST", nonce_server.issuer + "/token", claims={"nonce": "I-made-this-up"})
    resp = exchange(web, got, client_id="demo-native", headers={"DPoP": proof})
    assert_oauth_error(resp, "use_dpop_nonce", 400)
    assert resp.headers["DPoP-Nonce"] != "I-made-this-up"


def test_rfc9449_s9_resource_asks_for_a_nonce_with_a_dpop_challenge(nonce_server: Server, web: httpx.Client) -> None:
    key = DPoPKey()
    token = _token_with_nonce(nonce_server, web, key).json()["access_token"]
    url = nonce_server.issuer + "/userinfo"
    resp = web.get("/userinfo", headers={"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", url, token=token)})
    # §9: 401 with WWW-Authenticate: DPoP error="use_dpop_nonce" and a DPoP-Nonce header.
    assert resp.status_code == 401
    assert www_authenticate(resp)["scheme"] == "dpop"
    assert www_authenticate(resp)["error"] == "use_dpop_nonce"
    nonce = resp.headers["DPoP-Nonce"]
    resp = web.get(
        "/userinfo",
        headers={"Authorization": f"DPoP {token}", "DPoP": key.proof("GET", url, token=token, claims={"nonce": nonce})},
    )
    assert resp.status_code == 200, resp.text


def test_rfc9449_s8_par_endpoint_asks_for_a_nonce(nonce_server: Server, web: httpx.Client, tmp_path: Path) -> None:
    """FAPI 2.0 SP 5.3.2.1-10: a FAPI client copes with nonces at PAR and at the token endpoint."""
    fapi = FapiClient.register(nonce_server, tmp_path)
    params, verifier = fapi.request_params()
    first = fapi.push(web, params)
    assert_oauth_error(first, "use_dpop_nonce", 400)
    nonce = first.headers["DPoP-Nonce"]
    pushed = fapi.push(
        web,
        params,
        dpop=False,
        headers={"DPoP": fapi.dpop.proof("POST", nonce_server.issuer + "/par", claims={"nonce": nonce})},
    )
    assert pushed.status_code == 201, pushed.text
    got = fapi.authorize(web, pushed.json()["request_uri"], verifier)
    resp = fapi.redeem(
        web,
        got,
        dpop=False,
        headers={
            "DPoP": fapi.dpop.proof(
                "POST", nonce_server.issuer + "/token", claims={"nonce": pushed.headers["DPoP-Nonce"]}
            )
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "DPoP"


def test_rfc9449_s8_browser_app_can_read_the_nonce(nonce_server: Server, web: httpx.Client) -> None:
    """A browser app only sees response headers the server exposes (Fetch standard, CORS)."""
    got = run_flow(web, "demo-spa", SPA_REDIRECT)
    resp = exchange(
        web,
        got,
        client_id="demo-spa",
        headers={"Origin": SPA_ORIGIN, "DPoP": DPoPKey().proof("POST", nonce_server.issuer + "/token")},
    )
    assert_oauth_error(resp, "use_dpop_nonce", 400)
    assert "DPoP-Nonce" in resp.headers["access-control-expose-headers"]


def test_rfc9449_s8_nonce_is_accepted_by_every_node(tmp_path: Path) -> None:
    """Nonces derive from the deployment's shared secret key: a nonce from one node is accepted by
    another (no shared state needed; SQLite nodes here, tests/cluster covers shared stores)."""
    first = start_server(tmp_path / "a", extra_env={"FINGRADE_DPOP_NONCE": "true"})
    second = start_server(tmp_path / "b", extra_env={"FINGRADE_DPOP_NONCE": "true"}, secrets_from=first)
    try:
        with first.client() as one, second.client() as other:
            key = DPoPKey()
            got = run_flow(one, "demo-native", NATIVE_REDIRECT)
            refused = exchange(
                one, got, client_id="demo-native", headers={"DPoP": key.proof("POST", first.issuer + "/token")}
            )
            nonce = refused.headers["DPoP-Nonce"]
            got = run_flow(other, "demo-native", NATIVE_REDIRECT)
            resp = exchange(
                other,
                got,
                client_id="demo-native",
                headers={"DPoP": key.proof("POST", second.issuer + "/token", claims={"nonce": nonce})},
            )
            assert resp.status_code == 200, resp.text
    finally:
        second.stop()
        first.stop()


def test_rfc9449_s5_2_dpop_bound_access_tokens_client_needs_a_proof(server: Server, http: httpx.Client) -> None:
    """RFC 9449 §5.2: a client registered with dpop_bound_access_tokens=true gets no Bearer token."""
    out = server.add_client(
        "--name", "Always DPoP", "--profile", "native", "--redirect-uri", NATIVE_REDIRECT, "--require-dpop"
    )
    assert out["dpop_bound_access_tokens"] is True
    with server.client() as browser:
        got = run_flow(browser, out["client_id"], NATIVE_REDIRECT)
        assert_oauth_error(exchange(browser, got, client_id=out["client_id"]), "invalid_dpop_proof", 400)
        resp = exchange(
            browser,
            got,
            client_id=out["client_id"],
            headers={"DPoP": DPoPKey().proof("POST", server.issuer + "/token")},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["token_type"] == "DPoP"
