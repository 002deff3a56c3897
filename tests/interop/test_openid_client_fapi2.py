"""openid-client (npm, panva; certified as a FAPI 2.0 client) runs a FAPI 2.0 Security Profile flow
against the real server with a `fapi2` client registered with private_key_jwt: discovery, PAR with a
DPoP proof and PKCE S256, the browser leg (done here: login and consent), the code grant with
private_key_jwt and DPoP, userinfo and refresh with DPoP, introspection, and replays of DPoP proofs
it already used. The Node side is `node/fapi2-flow.mjs`."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from interop.helpers import NODE_DIR, NodeRun, converse
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from support.fapi import FAPI_REDIRECT, FapiClient
from support.flow import query_of
from support.server import Server

pytestmark = [pytest.mark.interop, pytest.mark.par, pytest.mark.dpop]

TIMEOUT = 90


class FapiRun(NodeRun):
    @property
    def log(self) -> list[dict[str, Any]]:
        return self.result.get("log", [])

    def requests_to(self, server: Server, path: str) -> list[dict[str, Any]]:
        return [e for e in self.log if e["url"].split("?")[0] == server.issuer + path]


def run_fapi2(
    node: str, server: Server, browser: httpx.Client, fapi: FapiClient, tamper: Callable[[str], str] | None = None
) -> FapiRun:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OIDC_")}
    env["NODE_EXTRA_CA_CERTS"] = server.ca
    env["OIDC_CLIENT_JWK"] = json.dumps(fapi.key.as_dict(private=True))  # never on the command line
    proc = subprocess.Popen(
        [
            node,
            str(NODE_DIR / "fapi2-flow.mjs"),
            server.issuer,
            fapi.client_id,
            FAPI_REDIRECT,
            "openid profile offline_access accounts",
        ],
        cwd=NODE_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = converse(proc, browser, FAPI_REDIRECT, TIMEOUT, tamper)
    return FapiRun(**dataclasses.asdict(run))


@pytest.fixture
def fapi(server: Server, tmp_path: Path) -> FapiClient:
    """A fresh fapi2 client per test (`fingrade clients add --profile fapi2 --auth-method private_key_jwt`)."""
    return FapiClient.register(server, tmp_path)


def _access_claims(server: Server, token: str) -> dict[str, Any]:
    with server.client() as c:
        return jwt.decode(token, KeySet.import_key_set(c.get("/jwks").json())).claims


def asked_for_nonce(run: FapiRun) -> list[dict[str, Any]]:
    """Requests the server answered with `use_dpop_nonce` (RFC 9449 §8 in the body, §9 in the challenge)."""
    return [
        e
        for e in run.log
        if e.get("error") == "use_dpop_nonce" or 'error="use_dpop_nonce"' in e.get("www_authenticate", "")
    ]


def _check_fapi2_flow(run: FapiRun, server: Server, fapi: FapiClient) -> None:
    result = run.result
    assert result["step"] == "done", (result, run.stderr)
    # Whether this server asks for DPoP nonces (a setting, or a later default): the checks below
    # allow for the extra round trips then.
    nonces = bool(asked_for_nonce(run))
    issuer = server.issuer
    jkt = run.authorize["dpop_jkt"]
    # The thumbprint the Node side computed is the RFC 7638 thumbprint of the public key it printed.
    assert ECKey.import_key(run.authorize["dpop_jwk"]).thumbprint() == jkt

    # FAPI 2.0 SP 5.3.2.2-3 / RFC 9126 §4: the front channel carries only client_id and request_uri.
    assert run.authorize["url"].startswith(issuer + "/authorize?")
    assert set(query_of(run.authorize["url"])) == {"client_id", "request_uri"}
    pars = run.requests_to(server, "/par")
    # One push; with nonces, a first attempt refused with use_dpop_nonce and the retry (RFC 9449 §8).
    assert [e["status"] for e in pars] == ([400, 201] if nonces else [201]), pars
    par = pars[-1]
    # RFC 9449 §10.1: a DPoP proof at PAR, by the key the tokens are later bound to.
    assert par["dpop"]["header"]["typ"] == "dpop+jwt" and par["dpop"]["claims"]["htu"] == issuer + "/par"
    assert ECKey.import_key(par["dpop"]["header"]["jwk"]).thumbprint() == jkt

    # FAPI 2.0 SP 5.3.2.1-8: every assertion openid-client sent had aud = the issuer, a single string.
    assertions = [e["client_assertion"] for e in run.log if "client_assertion" in e]
    assert len(assertions) >= 5  # PAR, code, refresh, introspection, refresh replay
    for a in assertions:
        assert a["claims"]["aud"] == issuer
        assert a["claims"]["iss"] == a["claims"]["sub"] == fapi.client_id
        assert a["header"]["alg"] == "ES256" and a["header"]["kid"] == fapi.key.kid

    # RFC 9207 §2: the callback carried iss; openid-client checked it (the tamper test shows it does).
    assert run.authorize["server"]["authorization_response_iss_parameter_supported"] is True
    assert query_of(run.callback)["iss"] == issuer

    # RFC 9449 §5: DPoP-bound tokens, cnf.jkt = the thumbprint of the key openid-client generated.
    tokens = result["tokens"]
    assert tokens["token_type"].lower() == "dpop"
    assert _access_claims(server, tokens["access_token"])["cnf"] == {"jkt": jkt}
    claims = result["claims"]
    assert claims["iss"] == issuer and claims["aud"] == fapi.client_id and claims["nonce"] == run.authorize["nonce"]
    token_reqs = run.requests_to(server, "/token")
    assert all(e["dpop"]["claims"]["htu"] == issuer + "/token" for e in token_reqs)

    # RFC 9449 §7: userinfo with the DPoP scheme and a proof carrying ath.
    assert result["userinfo"]["sub"] == claims["sub"]
    info_req = next(e for e in run.requests_to(server, "/userinfo") if e["status"] == 200)
    assert "ath" in info_req["dpop"]["claims"]

    # FAPI 2.0 SP 5.3.2.1-9: refresh with DPoP; the new access token is bound to the same key.
    refreshed = result["refreshed"]
    assert refreshed["token_type"].lower() == "dpop"
    assert _access_claims(server, refreshed["access_token"])["cnf"] == {"jkt": jkt}
    assert refreshed.get("refresh_token", tokens["refresh_token"]) == tokens["refresh_token"]

    # RFC 7662 §2.2 / RFC 9449 §6.2: introspection by the client of its own token shows the binding.
    intro = result["introspection"]
    assert intro["active"] is True and intro["client_id"] == fapi.client_id
    assert intro["token_type"] == "DPoP" and intro["cnf"] == {"jkt": jkt}

    # RFC 9449 §11.1: each proof is accepted once. openid-client sent the userinfo request again with
    # the same proof, and a refresh (fresh assertion) carrying the earlier refresh's proof. A server
    # that requires nonces may refuse the replay for its nonce first; it is refused either way.
    refused = {"invalid_dpop_proof", "use_dpop_nonce"} if nonces else {"invalid_dpop_proof"}
    replays = result["replays"]
    assert replays["userinfo"]["status"] == 401, replays
    assert any(f'error="{e}"' in replays["userinfo"]["www_authenticate"] for e in refused), replays
    uses = [e for e in token_reqs if e["dpop"]["raw"] == replays["token_proof"]]
    assert [e["status"] for e in uses] == [200, 400], uses
    assert uses[1]["error"] in refused, uses
    if not nonces:  # refused as a replay, not for anything else
        assert "already been used" in uses[1]["error_description"], uses
        assert replays["token"]["error"] == "invalid_dpop_proof" and replays["token"]["status"] == 400, replays


def test_openid_client_fapi2_par_private_key_jwt_dpop(
    node: str, server: Server, browser: httpx.Client, fapi: FapiClient
) -> None:
    """FAPI 2.0 SP 5.3.2 with a certified client: PAR + PKCE S256 + private_key_jwt + DPoP end to end,
    userinfo, refresh and introspection; DPoP proof replays refused (RFC 9449 §11.1)."""
    _check_fapi2_flow(run_fapi2(node, server, browser, fapi), server, fapi)


def _replace_param(url: str, name: str, value: str | None) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != name]
    if value is not None:
        query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.mark.parametrize(
    "iss,expected",
    [
        (None, 'response parameter "iss" (issuer) missing'),
        ("https://attacker.example", 'unexpected "iss" (issuer) response parameter value'),
    ],
)
def test_openid_client_fapi2_validates_iss_in_the_authorization_response(
    node: str, server: Server, browser: httpx.Client, fapi: FapiClient, iss: str | None, expected: str
) -> None:
    """RFC 9207 §2.4 / FAPI 2.0 SP 5.3.3.1-2 (mix-up defence): the server advertises
    authorization_response_iss_parameter_supported, and openid-client refuses a callback whose iss is
    missing or is another issuer's, before it redeems the code."""
    run = run_fapi2(node, server, browser, fapi, tamper=lambda url: _replace_param(url, "iss", iss))
    assert run.result["step"] == "error", run.result
    assert run.result["code"] == "OAUTH_INVALID_RESPONSE", run.result
    assert expected in run.result["message"] + str(run.result.get("cause")), run.result
    assert run.requests_to(server, "/token") == []  # the code was never sent


# -- server-provided DPoP nonces (RFC 9449 §8, §9) ------------------------------------------------


def _nonce_setting() -> tuple[str, str] | None:
    """The server setting that makes it require DPoP nonces, and the value that turns it on, if this
    version of the server has one (a boolean `*dpop*nonce*` setting)."""
    from fingrade.config import Settings

    defaults = Settings()
    for f in dataclasses.fields(Settings):
        if "dpop" in f.name and "nonce" in f.name and isinstance(getattr(defaults, f.name), bool):
            return "FINGRADE_" + f.name.upper(), "true"
    return None


@pytest.fixture
def nonce_server(server: Server, tmp_path: Path) -> Iterator[Server]:
    setting = _nonce_setting()
    if setting is None:
        pytest.skip(
            "the server has no DPoP nonce support yet (no boolean *dpop*nonce* setting in fingrade.config.Settings)"
        )
    from support.server import dedicated_server

    with dedicated_server(tmp_path, server.backend, dict([setting])) as srv:
        yield srv


def test_openid_client_fapi2_with_server_dpop_nonces(node: str, nonce_server: Server, tmp_path: Path) -> None:
    """RFC 9449 §8 (authorization server) and §9 (resource server): a server that requires nonces answers
    a proof without one with `use_dpop_nonce` and a DPoP-Nonce header; openid-client retries with the
    nonce and the whole FAPI 2.0 flow still completes, with the same checks as without nonces."""
    fapi = FapiClient.register(nonce_server, tmp_path)
    with nonce_server.client(follow_redirects=False) as browser:
        run = run_fapi2(node, nonce_server, browser, fapi)
    _check_fapi2_flow(run, nonce_server, fapi)
    # The server asked for a nonce at least once (the first PAR carries none) ...
    assert asked_for_nonce(run), run.log
    first = run.log[1] if run.log[0]["url"].endswith("/.well-known/openid-configuration") else run.log[0]
    assert first["url"] == nonce_server.issuer + "/par" and first["status"] == 400 and first["dpop_nonce"]
    # ... and every request the authorization server accepted carried a nonce it had handed out.
    handed_out = {e["dpop_nonce"] for e in run.log if "dpop_nonce" in e}
    for e in run.log:
        if (
            "dpop" in e
            and e["status"] < 300
            and e["url"].split("?")[0] in (nonce_server.issuer + "/par", nonce_server.issuer + "/token")
        ):
            assert e["dpop"]["claims"].get("nonce") in handed_out, e
