"""`onetime_backend = memory`: the one-time store in the server process (the opt-in for a single
process that may forget on restart, docs/performance.md). Every single-use rule holds as with the
durable stores while the process lives; a restart forgets, and the log says so at start."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from support.dpop import DPoPKey
from support.fapi import FapiClient
from support.refusals import assert_oauth_error
from support.server import Server, dedicated_server

pytestmark = [pytest.mark.par, pytest.mark.dpop]


@pytest.fixture(scope="module")
def memory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with dedicated_server(tmp_path_factory.mktemp("memory"), "sqlite", {"FINGRADE_ONETIME_BACKEND": "memory"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def fapi(memory_server: Server, tmp_path_factory: pytest.TempPathFactory) -> FapiClient:
    return FapiClient.register(memory_server, tmp_path_factory.mktemp("fapi"))


def test_start_warns_what_a_restart_forgets(memory_server: Server) -> None:
    log = (memory_server.data_dir / "server.log").read_text()
    assert "onetime_backend = memory" in log and "a restart forgets them" in log


def test_fapi_flow_and_single_use_rules(memory_server: Server, fapi: FapiClient) -> None:
    with memory_server.client() as http, memory_server.client(follow_redirects=False) as browser:
        resp = fapi.flow(http, browser)
        assert resp.status_code == 200, resp.text
        assert resp.json()["token_type"] == "DPoP"
        # RFC 9449 §11.1: a DPoP proof is accepted once.
        proof = fapi.dpop_header("/par")
        params, _ = fapi.request_params()
        first = http.post("/par", data={**params, **fapi.auth_params()}, headers=proof)
        assert first.status_code == 201, first.text
        again = http.post("/par", data={**params, **fapi.auth_params()}, headers=proof)
        assert_oauth_error(again, "invalid_dpop_proof", 400)
        # RFC 7523 §3 / FAPI 2.0 SP 5.3.2.1: a client assertion is accepted once.
        auth = fapi.auth_params()
        assert http.post("/par", data={**params, **auth}, headers=fapi.dpop_header("/par")).status_code == 201
        replayed = http.post("/par", data={**params, **auth}, headers=fapi.dpop_header("/par"))
        assert_oauth_error(replayed, "invalid_client", 401)


def test_rfc9126_s4_a_pushed_request_yields_one_code(memory_server: Server, fapi: FapiClient) -> None:
    with memory_server.client() as http, memory_server.client(follow_redirects=False) as browser:
        params, verifier = fapi.request_params()
        pushed = fapi.push(http, params)
        assert pushed.status_code == 201, pushed.text
        request_uri = pushed.json()["request_uri"]
        got = fapi.authorize(browser, request_uri, verifier)
        assert got.code
        redeemed = fapi.redeem(http, got)
        assert redeemed.status_code == 200, redeemed.text
        # The code is single-use (RFC 6749 §4.1.2): presented again by another key it is refused (the
        # same request again would be a retry and get the kept answer), and the request_uri is used up.
        thief = dataclasses.replace(fapi, dpop=DPoPKey())
        assert_oauth_error(thief.redeem(http, got), "invalid_grant", 400)
        reused = browser.get("/authorize", params={"client_id": fapi.client_id, "request_uri": request_uri})
        assert reused.status_code == 400, reused.text
        assert "invalid_request_uri" in reused.text
