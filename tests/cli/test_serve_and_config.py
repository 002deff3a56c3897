"""`fingrade serve` with no configuration at all, and configuration errors: clear message, exit
code 2, no traceback (configuration is validated at start, with clear errors)."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import sqlite3
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from support.flow import authorize_url, pkce_pair, query_of
from support.sca import Authenticator, walk
from support.server import free_port

from fingrade.oauth.authn_level import ACR_PASSWORD, ACR_SCA

FINGRADE = str(Path(sys.executable).parent / "fingrade")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a newcomer: no FINGRADE_* settings at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINGRADE_")}
    env.update(extra)
    return env


def _fingrade(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FINGRADE, *args], cwd=cwd, env=_clean_env(**env), capture_output=True, text=True, timeout=120
    )


# -- configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "toml,expected",
    [
        ("[server\nport = 8443\n", r"config\.toml.*line 1"),  # not TOML
        ("[server]\nprot = 8443\n", r"unknown setting 'prot'"),
        ("[tokens]\ncode_ttl = 120\n", r"code_ttl: must be 1-60 seconds"),  # FAPI 2.0 SP 5.3.2.1-11 / RFC 6749 §4.1.2
        ('port = "eighty"\n', r"port: expected int"),
        ("access_token_ttl = 5\n", r"access_token_ttl: must be"),
        ('issuer = "http://bank.example"\n', r"issuer"),  # RFC 8414 §2: https (http only on loopback)
        ('issuer = "https://bank.example/?q=1"\n', r"issuer"),
        ('tls = "maybe"\n', r"tls: must be"),
        ('signing_alg = "RS256"\n', r"signing_alg"),  # FAPI 2.0 SP 5.4.1-1
        ('onetime_backend = "memcached"\n', r"onetime_backend"),
        ('database_url = "mysql://root@db/fingrade"\n', r"database_url"),
        ('scopes = ["profile"]\n', r"scopes: must include openid"),
    ],
)
def test_configuration_errors_are_clear(tmp_path: Path, toml: str, expected: str) -> None:
    (tmp_path / "config.toml").write_text(toml)
    proc = _fingrade(tmp_path, "--config", "config.toml", "serve")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("configuration error: ")
    assert re.search(expected, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "fingrade-data").exists()  # nothing was created by a refused start


def test_environment_errors_are_clear(tmp_path: Path) -> None:
    """FINGRADE_* variables are validated like the file, for every command."""
    proc = _fingrade(tmp_path, "migrate", FINGRADE_CODE_TTL="120")
    assert proc.returncode == 2 and "code_ttl: must be 1-60 seconds" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_configuration_file(tmp_path: Path) -> None:
    proc = _fingrade(tmp_path, "--config", "nowhere.toml", "serve")
    assert proc.returncode == 2 and "nowhere.toml does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_valid_configuration_file_with_sections(tmp_path: Path) -> None:
    """Sections are only for readability; a valid file is accepted."""
    (tmp_path / "config.toml").write_text('[server]\ndata_dir = "state"\n[tokens]\ncode_ttl = 30\n')
    proc = _fingrade(tmp_path, "--config", "config.toml", "migrate")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "state" / "fingrade.db").exists()


# -- serve with no configuration --------------------------------------------------------------


def _tls(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _start(cwd: Path, port: int) -> tuple[subprocess.Popen, Path]:
    out = cwd / f"serve-{time.monotonic_ns()}.log"
    proc = subprocess.Popen(
        [FINGRADE, "serve", "--port", str(port), "--demo"],
        cwd=cwd,
        env=_clean_env(),
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
    )
    ca = cwd / "fingrade-data" / "dev-tls-cert.pem"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(out.read_text())
        try:
            if (
                ca.exists()
                and httpx.get(f"https://localhost:{port}/healthz", verify=_tls(ca), timeout=2).status_code == 200
            ):
                return proc, out
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start: " + out.read_text())


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _sign_in(browser: httpx.Client, password: str, app: Authenticator) -> dict[str, str]:
    """alice's authorization of the native demo app: password, authenticator-app code, consent."""
    _, challenge = pkce_pair()
    first = browser.get(authorize_url("demo-native", REDIRECT, challenge, "openid"))
    seen: list[str] = []
    end = walk(browser, first, REDIRECT, lambda: int(time.time()), app, "alice", password, seen=seen)
    assert seen[:2] == ["login", "second_factor"] and end.status_code == 303, (seen, end.status_code)
    return query_of(end.headers["location"])


REDIRECT = "http://127.0.0.1:7000/callback"


def test_serve_in_an_empty_directory(tmp_path: Path) -> None:
    """`fingrade serve` with no configuration starts HTTPS with a self-signed certificate,
    SQLite and signing keys in the data directory; `--demo` seeds alice and bob with a generated
    password and authenticator-app key printed once; strong customer authentication is on."""
    port = free_port()
    proc, out = _start(tmp_path, port)
    try:
        first = out.read_text()
        data = tmp_path / "fingrade-data"
        with contextlib.closing(sqlite3.connect(data / "fingrade.db")) as db:  # the default: SQLite, WAL mode
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cert = x509.load_pem_x509_certificate((data / "dev-tls-cert.pem").read_bytes())
        assert cert.issuer == cert.subject  # self-signed, for localhost
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in names.get_values_for_type(x509.DNSName)
        # Secrets and the TLS key are readable by the owner only.
        for name in ("secrets.json", "dev-tls-key.pem"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
        printed = re.findall(r"demo users alice, bob created; password: (\S+)", first)
        assert len(printed) == 1, first
        password = printed[0]
        assert len(password) >= 12
        [key] = re.findall(r"have an authenticator app \(TOTP, RFC 6238\); key: ([A-Z2-7]+)", first)
        app = Authenticator(base64.b32decode(key + "=" * (-len(key) % 8)), wait=True)
        with httpx.Client(
            base_url=f"https://localhost:{port}",
            verify=_tls(data / "dev-tls-cert.pem"),
            follow_redirects=False,
            timeout=30,
        ) as browser:
            meta = browser.get("/.well-known/openid-configuration").json()
            assert meta["issuer"] == f"https://localhost:{port}"
            assert meta["acr_values_supported"] == [ACR_PASSWORD, ACR_SCA]
            got = _sign_in(browser, password, app)
            assert got["code"] and got["iss"] == meta["issuer"]
            # HTTPS only: the port does not speak plain HTTP.
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        _stop(proc)

    proc, out = _start(tmp_path, port)
    try:
        second = out.read_text()
        assert "password" not in second and password not in second
        assert "demo users" not in second
        with httpx.Client(
            base_url=f"https://localhost:{port}",
            verify=_tls(data / "dev-tls-cert.pem"),
            follow_redirects=False,
            timeout=30,
        ) as browser:
            # The password and the key printed on the first start still work.
            assert _sign_in(browser, password, app)["code"]
    finally:
        _stop(proc)
