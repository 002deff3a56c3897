"""The README's FAPI 2.0 walk-through stays true: examples/fapi2_client.py (keygen, registration
with the CLI, PAR + PKCE + private_key_jwt + DPoP, userinfo) runs against the real server, with
and without server-provided DPoP nonces. So does docs/banking-api.md "Journey": its commands and its
Python code, run as written."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from support.fapi import FAPI_REDIRECT
from support.flow import checked_choices, consent, follow_to_client, login
from support.server import DEMO_PASSWORD, Server, dedicated_server, free_port

pytestmark = [pytest.mark.par, pytest.mark.dpop]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fapi2_client.py"
DOC = Path(__file__).resolve().parents[2] / "docs" / "banking-api.md"


def _register(
    server: Server, tmp: Path, auth_method: str = "private_key_jwt", *extra: str, scope: str = "openid accounts"
) -> str:
    subprocess.run([sys.executable, str(EXAMPLE), "keygen", "--out", str(tmp)], check=True, capture_output=True)
    out = server.add_client(
        "--name",
        "Example fintech",
        "--profile",
        "fapi2",
        "--auth-method",
        auth_method,
        "--jwks-file",
        str(tmp / "fintech-public-jwks.json"),
        "--redirect-uri",
        FAPI_REDIRECT,
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--scope",
        scope,
        *extra,
    )
    return out["client_id"]


def _flow(
    server: Server,
    tmp: Path,
    client_id: str,
    *args: str,
    choose: Callable[[dict[str, str]], dict[str, str]] | None = None,
) -> str:
    """Run `flow`, play the customer (with httpx: sign in as alice, allow; `choose` turns the account
    choices as ticked on the consent page into those she submits) and paste the callback back."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLE),
            "flow",
            "--client-id",
            client_id,
            "--issuer",
            server.issuer,
            "--key",
            str(tmp / "fintech-private.jwk"),
            "--cacert",
            server.ca,
            *args,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
            resp = consent(browser, resp, choices=choose(checked_choices(resp.text)) if choose else None)
        assert resp.status_code == 303
        stdout, stderr = proc.communicate(resp.headers["location"] + "\n", timeout=60)
    assert proc.returncode == 0, stdout + stderr
    return stdout


def _run_example(
    server: Server, tmp: Path, auth_method: str = "private_key_jwt", ready: Callable[[], None] | None = None
) -> str:
    client_id = _register(server, tmp, auth_method)
    if ready is not None:
        ready()
    mtls = ["--mtls", "--cert", str(tmp / "fintech-cert.pem"), "--cert-key", str(tmp / "fintech-key.pem")]
    return _flow(server, tmp, client_id, *(mtls if auth_method != "private_key_jwt" else []))


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
    with dedicated_server(
        tmp, "sqlite", {"FINGRADE_MTLS_PORT": str(port), "FINGRADE_CLIENT_CACHE_SECONDS": "1"}
    ) as srv:

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


def _doc_python(section: str) -> list[str]:
    """The ```python blocks of a `## section` or `### section` of docs/banking-api.md, pointed at
    this server (the docs assume `make demo` on localhost:8443)."""
    text = DOC.read_text()
    start = re.search(rf"^#+ {re.escape(section)}\n", text, re.M)
    assert start, section
    body = re.split(r"^#+ ", text[start.end() :], maxsplit=1, flags=re.M)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def test_journey_with_the_example_and_the_docs_code(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/banking-api.md "Journey": its registration and `flow` commands, and its Python code
    (with "A client you can paste" and "Paying, pasteable"), run as written against the live server;
    only the addresses and file names differ. The customer shares one account and pays from it."""
    journey = _doc_python("Journey")
    section = DOC.read_text().split("\n## Journey\n", 1)[1].split("\n## ", 1)[0]
    [keygen] = re.findall(r"^python examples/fapi2_client.py (keygen) ", section, re.M)
    [register] = re.findall(r"^fingrade clients add (.*?)\n```", section, re.S | re.M)
    commands = re.findall(r"python examples/fapi2_client.py flow --client-id <client_id> (.*?)\n```", section, re.S)
    assert len(commands) == 2 and len(journey) == 3
    monkeypatch.chdir(tmp_path)  # keygen and --save write here, where the docs' code reads
    subprocess.run([sys.executable, str(EXAMPLE), keygen], check=True, capture_output=True)
    client_id = server.add_client(*shlex.split(register.replace("\\\n", " ")))["client_id"]

    def run_command(command: str, choose: Callable[[dict[str, str]], dict[str, str]]) -> str:
        return _flow(server, tmp_path, client_id, *shlex.split(command.replace("\\\n", " ")), choose=choose)

    def run(code: str, ns: dict) -> str:
        code = code.replace("https://localhost:8443", server.issuer).replace(
            "fingrade-data/dev-tls-cert.pem", server.ca
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(DOC), "exec"), ns)
        return out.getvalue()

    # Steps 2-4: she shares only her second account.
    printed = run_command(commands[0], lambda ticked: {"account_2": ticked["account_2"]})
    [approved] = json.loads(re.search(r"authorization_details: (\[.*\])", printed).group(1))
    shared = approved["accounts"]
    assert len(shared) == 1 and "expires_at" in approved
    assert os.stat(tmp_path / "fintech-accounts.json").st_mode & 0o777 == 0o600
    ns: dict = {}
    run(journey[0], ns)
    [account_code] = _doc_python("A client you can paste (Python, httpx + joserfc)")
    run(account_code, ns)  # step 5
    assert [a["Account"][0]["Identification"] for a in ns["accounts"]] == [shared[0]["iban"]]
    run(journey[1], ns)  # the date range
    assert ns["page"]["Data"]["Transaction"]
    assert all(t["BookingDateTime"][:10] >= ns["since"] for t in ns["page"]["Data"]["Transaction"])
    balances = (
        "with httpx.Client(verify=TLS) as http:\n    booked = get(http, dpop_key, access_token, "
        "f'/accounts/{acc}/balances')['Data']['Balance'][0]['Amount']['Amount']\n"
    )
    run(balances, ns)
    before = Decimal(ns["booked"])

    # Step 6: she pays from the account she shared.
    printed = run_command(commands[1], lambda ticked: {"debtor_account": shared[0]["iban"]})
    assert json.loads(re.search(r"authorization_details: (\[.*\])", printed).group(1))[0]["debtorAccount"] == shared[0]
    run(journey[2], ns)
    [pay_code] = _doc_python("Paying, pasteable")
    assert run(pay_code, ns).strip() == "AcceptedSettlementCompleted"
    assert ns["resp"].json()["Data"]["DebtorAccount"] == shared[0]
    run('access_token, dpop_key = load("fintech-accounts.json")', ns)  # step 6: the account token again
    run(balances, ns)
    assert Decimal(ns["booked"]) == before - Decimal("12.34")
