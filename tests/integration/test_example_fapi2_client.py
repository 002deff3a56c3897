"""The README's FAPI 2.0 walk-through stays true: examples/fapi2_client.py (keygen, registration
with the CLI, PAR + PKCE + private_key_jwt + DPoP, userinfo) runs against the real server, with
and without server-provided DPoP nonces."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from integration_helpers import dedicated_server
from support.server import free_port
from support.fapi import FAPI_REDIRECT
from support.flow import consent, follow_to_client, login
from support.server import DEMO_PASSWORD, Server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fapi2_client.py"


def _run_example(server: Server, tmp: Path, auth_method: str = "private_key_jwt",
                 ready: Callable[[], None] | None = None) -> str:
    subprocess.run([sys.executable, str(EXAMPLE), "keygen", "--out", str(tmp)], check=True, capture_output=True)
    out = server.add_client("--name", "Example fintech", "--profile", "fapi2", "--auth-method", auth_method,
                            "--jwks-file", str(tmp / "fintech-public-jwks.json"), "--redirect-uri", FAPI_REDIRECT,
                            "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                            "--scope", "openid accounts")
    if ready is not None:
        ready()
    mtls = ["--mtls", "--cert", str(tmp / "fintech-cert.pem"), "--cert-key", str(tmp / "fintech-key.pem")]
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "flow", "--client-id", out["client_id"],
                             "--issuer", server.issuer, "--key", str(tmp / "fintech-private.jwk"),
                             "--cacert", server.ca, *(mtls if auth_method != "private_key_jwt" else [])],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    url = None
    for line in proc.stdout:
        if line.startswith(server.issuer + "/authorize?"):
            url = line.strip()
            break
    assert url, proc.stderr.read() if proc.stderr else "no URL"
    with server.client() as browser:
        resp = follow_to_client(browser, browser.get(url), FAPI_REDIRECT)
        resp = follow_to_client(browser, login(browser, resp, "alice", DEMO_PASSWORD), FAPI_REDIRECT)
        if 'name="decision"' in resp.text:
            resp = consent(browser, resp)
        assert resp.status_code == 303
        stdout, stderr = proc.communicate(resp.headers["location"] + "\n", timeout=60)
    assert proc.returncode == 0, stdout + stderr
    return stdout


def test_example_client_runs_the_fapi2_flow(server: Server, tmp_path: Path) -> None:
    stdout = _run_example(server, tmp_path)
    assert "token_type DPoP" in stdout
    userinfo = json.loads(re.search(r"userinfo: 200 (\{.*\})", stdout).group(1))
    assert userinfo["sub"]


def test_example_client_copes_with_dpop_nonces(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("example-nonce")
    with dedicated_server(tmp, "sqlite", {"FINGRADE_DPOP_NONCE": "true"}) as srv:
        assert "userinfo: 200" in _run_example(srv, tmp)



def test_example_client_with_mutual_tls(tmp_path_factory: pytest.TempPathFactory) -> None:
    """README: the same example with a self-signed certificate (RFC 8705 §2.2) on the mTLS listener;
    the token comes back certificate-bound and works at userinfo over the same connection type."""
    tmp = tmp_path_factory.mktemp("example-mtls")
    port = free_port()
    with dedicated_server(tmp, "sqlite", {"FINGRADE_MTLS_PORT": str(port),
                                          "FINGRADE_CLIENT_CACHE_SECONDS": "1"}) as srv:
        def trusted() -> None:  # the listener's trust store picks up registered certificates (web/server.py)
            ctx = srv.ssl_context()
            ctx.load_cert_chain(str(tmp / "fintech-cert.pem"), str(tmp / "fintech-key.pem"))
            deadline = time.monotonic() + 15
            while True:
                try:
                    httpx.get(f"https://localhost:{port}/healthz", verify=ctx, timeout=2).raise_for_status()
                    return
                except (httpx.HTTPError, ssl.SSLError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
        stdout = _run_example(srv, tmp, "self_signed_tls_client_auth", ready=trusted)
        assert "token_type Bearer" in stdout and "userinfo: 200" in stdout
