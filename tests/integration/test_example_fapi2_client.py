"""The README's FAPI 2.0 walk-through stays true: examples/fapi2_client.py (keygen, registration
with the CLI, PAR + PKCE + private_key_jwt + DPoP, userinfo) runs against the real server, with
and without server-provided DPoP nonces."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from integration_helpers import dedicated_server
from support.fapi import FAPI_REDIRECT
from support.flow import consent, follow_to_client, login
from support.server import DEMO_PASSWORD, Server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fapi2_client.py"


def _run_example(server: Server, tmp: Path) -> str:
    subprocess.run([sys.executable, str(EXAMPLE), "keygen", "--out", str(tmp)], check=True, capture_output=True)
    out = server.add_client("--name", "Example fintech", "--profile", "fapi2", "--auth-method", "private_key_jwt",
                            "--jwks-file", str(tmp / "fintech-public-jwks.json"), "--redirect-uri", FAPI_REDIRECT,
                            "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                            "--scope", "openid accounts")
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "flow", "--client-id", out["client_id"],
                             "--issuer", server.issuer, "--key", str(tmp / "fintech-private.jwk"),
                             "--cacert", server.ca], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
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

