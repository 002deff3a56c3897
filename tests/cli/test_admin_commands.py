"""`fingrade clients|users|consents|migrate` against the stores of the running server (both backends)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import httpx
import pytest
from support.flow import authorize_url, follow_to_client, login, pkce_pair, run_flow
from support.server import Server

from fingrade import cli
from fingrade.config import load_settings
from fingrade.oauth.models import Grant
from fingrade.runtime import build_core, close_core

REDIRECT = "https://localhost:9443/callback"


def _fresh_browser(server: Server) -> httpx.Client:
    return server.client(follow_redirects=False)


def _exchange(browser: httpx.Client, got, auth: tuple[str, str]) -> httpx.Response:
    return browser.post(
        "/token",
        auth=auth,
        data={
            "grant_type": "authorization_code",
            "code": got.code,
            "redirect_uri": got.redirect_uri,
            "code_verifier": got.verifier,
        },
    )


def _no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


# -- clients ----------------------------------------------------------------------------------


def test_clients_add_list_show(server: Server) -> None:
    """`clients add` prints the client's metadata and, once, its generated secret; `list` and `show`
    display it; nothing ever prints the stored secret hash."""
    name = "CLI fintech " + secrets.token_hex(3)
    added = server.add_client(
        "--name", name, "--profile", "confidential", "--redirect-uri", REDIRECT, "--scope", "openid accounts"
    )
    cid, secret = added["client_id"], added["client_secret"]
    assert added["token_endpoint_auth_method"] == "client_secret_basic" and len(secret) >= 43
    assert added["redirect_uris"] == [REDIRECT] and added["scope"] == "openid accounts"
    listed = server.cli("clients", "list").stdout
    assert f"{cid}\tconfidential\tclient_secret_basic\t{name}" in listed.splitlines()
    shown = server.cli("clients", "show", cid).stdout
    assert secret not in shown and "secret_hash" not in shown
    assert json.loads(shown)["client_id"] == cid
    # The secret printed once is the one that works (RFC 6749 §2.3.1).
    with server.client() as http:
        resp = http.post("/token", auth=(cid, secret), data={"grant_type": "client_credentials", "scope": "accounts"})
    assert resp.status_code == 400 and resp.json()["error"] == "unauthorized_client"  # not registered for it
    with _fresh_browser(server) as browser:
        got = run_flow(browser, cid, REDIRECT, scope="openid accounts")
        assert _exchange(browser, got, (cid, secret)).status_code == 200


def test_clients_add_spa_and_native(server: Server) -> None:
    spa = server.add_client("--name", "CLI spa", "--profile", "spa", "--redirect-uri", "https://app.example/cb")
    assert "client_secret" not in spa and spa["token_endpoint_auth_method"] == "none"
    assert json.loads(server.cli("clients", "show", spa["client_id"]).stdout)["allowed_origins"] == [
        "https://app.example"
    ]
    native = server.add_client(
        "--name",
        "CLI native",
        "--profile",
        "native",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--redirect-uri",
        "org.example.app:/cb",
    )
    assert "client_secret" not in native and native["application_type"] == "native"
    assert "identity_verified" not in native


def test_clients_verify_and_unverify_native_apps_only(server: Server) -> None:
    """RFC 8252 §8.6: an operator vouches for a native app's identity (`--verified`, `clients verify`)
    or withdraws it (`clients unverify`); other profiles prove their identity otherwise and are refused."""
    native = server.add_client(
        "--name", "CLI verified", "--profile", "native", "--redirect-uri", "http://127.0.0.1/cb", "--verified"
    )
    assert native["identity_verified"] is True
    cid = native["client_id"]
    assert "identity_verified" not in json.loads(server.cli("clients", "unverify", cid).stdout)
    assert "identity_verified" not in json.loads(server.cli("clients", "show", cid).stdout)
    assert json.loads(server.cli("clients", "verify", cid).stdout)["identity_verified"] is True
    proc = server.cli(
        "clients",
        "add",
        "--name",
        "CLI spa",
        "--profile",
        "spa",
        "--redirect-uri",
        "https://app.example/cb",
        "--verified",
        check=False,
    )
    assert proc.returncode == 2 and "native" in proc.stderr
    _no_traceback(proc)
    proc = server.cli("clients", "verify", "demo-spa", check=False)
    assert proc.returncode == 2 and "native" in proc.stderr
    assert server.cli("clients", "verify", "no-such-client", check=False).returncode == 1


def test_clients_add_refuses_bad_metadata(server: Server) -> None:
    """The CLI uses the registration validator (RFC 7591 §3.2.2 errors), exit code 2, no traceback."""
    for args, error in (
        (["--redirect-uri", "javascript:alert(1)"], "invalid_redirect_uri"),
        (["--redirect-uri", "http://fintech.example/cb"], "invalid_redirect_uri"),
        # RFC 3986 §3.2.2-§3.2.3: not a host, not a port
        (["--redirect-uri", "https://a.com;x/cb"], "invalid_redirect_uri"),
        (["--redirect-uri", "https://fintech.example:99999/cb"], "invalid_redirect_uri"),
        (["--redirect-uri", REDIRECT, "--scope", "openid admin"], "invalid_client_metadata"),
    ):
        proc = server.cli("clients", "add", "--name", "Bad", "--profile", "confidential", *args, check=False)
        assert proc.returncode == 2, proc
        assert error in proc.stderr
        _no_traceback(proc)
    proc = server.cli(
        "clients",
        "add",
        "--name",
        "Dup",
        "--profile",
        "native",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--client-id",
        "demo-native",
        check=False,
    )
    assert proc.returncode == 1 and "already exists" in proc.stderr


def test_clients_remove_revokes_its_grants(server: Server) -> None:
    """`clients remove`: the client is gone and every grant it held is revoked (its tokens stop working)."""
    added = server.add_client(
        "--name",
        "Short-lived",
        "--profile",
        "confidential",
        "--redirect-uri",
        REDIRECT,
        "--scope",
        "openid offline_access accounts",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "client_credentials",
    )
    cid, secret = added["client_id"], added["client_secret"]
    with _fresh_browser(server) as browser:
        got = run_flow(browser, cid, REDIRECT, scope="openid offline_access accounts")
        tokens = _exchange(browser, got, (cid, secret)).json()
        assert (
            browser.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 200
        )
        cc = browser.post(
            "/token", auth=(cid, secret), data={"grant_type": "client_credentials", "scope": "accounts"}
        ).json()["access_token"]
        # Valid but without openid: 403 at UserInfo (RFC 6750 §3.1), not 401.
        assert browser.get("/userinfo", headers={"Authorization": "Bearer " + cc}).status_code == 403

        removed = server.cli("clients", "remove", cid)
        assert removed.returncode == 0 and "revoked" in removed.stdout

        resp = browser.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
        resp = browser.post(
            "/token", auth=(cid, secret), data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        )
        # invalid_client once the server's short client cache has expired, invalid_grant before: the
        # grant is revoked either way.
        assert resp.status_code in (400, 401) and resp.json()["error"] in ("invalid_grant", "invalid_client")
        # A client_credentials token has no grant: it dies with its client, once the server's client
        # cache (client_cache_seconds, 5 s) has let go of the removed registration.
        deadline = time.monotonic() + 10
        while browser.get("/userinfo", headers={"Authorization": "Bearer " + cc}).status_code != 401:
            assert time.monotonic() < deadline, "client_credentials token still valid after clients remove"
            time.sleep(0.5)
    assert cid not in server.cli("clients", "list").stdout
    assert server.cli("clients", "show", cid, check=False).returncode == 1
    assert server.cli("clients", "remove", cid, check=False).returncode == 1


# -- users ------------------------------------------------------------------------------------


def _can_log_in(server: Server, username: str, password: str) -> bool:
    with _fresh_browser(server) as browser:
        resp = browser.get(authorize_url("demo-native", "http://127.0.0.1:5555/callback", pkce_pair()[1], "openid"))
        page = follow_to_client(browser, resp, "http://127.0.0.1:5555/callback")
        assert 'name="password"' in page.text
        return login(browser, page, username, password).status_code == 303


def test_users_add_list_and_log_in(server: Server) -> None:
    """`users add --password-stdin` creates an argon2id-hashed user who can sign in."""
    username, password = "cli" + secrets.token_hex(4), "correct horse battery staple"
    proc = server.cli(
        "users",
        "add",
        username,
        "--name",
        "Cli User",
        "--email",
        f"{username}@example.test",
        "--password-stdin",
        input=password + "\n",
    )
    assert proc.returncode == 0 and username in proc.stdout
    line = next(row for row in server.cli("users", "list").stdout.splitlines() if row.startswith(username + "\t"))
    assert line.endswith("active") and "Cli User" in line and password not in line
    assert _can_log_in(server, username, password)
    again = server.cli("users", "add", username, "--password-stdin", input=password + "\n", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_users_short_password_is_refused(server: Server) -> None:
    """NIST SP 800-63B §3.1.1.2: at least 12 characters (length, not composition). Exit 2, no user."""
    username = "short" + secrets.token_hex(4)
    proc = server.cli("users", "add", username, "--password-stdin", input="elevenchars\n", check=False)
    assert proc.returncode == 2 and "at least 12 characters" in proc.stderr
    _no_traceback(proc)
    assert username not in server.cli("users", "list").stdout


def test_users_set_password(server: Server) -> None:
    username, old, new = "setpw" + secrets.token_hex(4), "the first password", "the second password"
    server.cli("users", "add", username, "--password-stdin", input=old + "\n")
    proc = server.cli("users", "set-password", username, "--password-stdin", input=new + "\n")
    assert proc.returncode == 0 and "changed" in proc.stdout
    assert _can_log_in(server, username, new)
    assert not _can_log_in(server, username, old)
    short = server.cli("users", "set-password", username, "--password-stdin", input="too short\n", check=False)
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    _no_traceback(short)
    assert _can_log_in(server, username, new)
    missing = server.cli(
        "users", "set-password", "nobody-" + secrets.token_hex(3), "--password-stdin", input=new + "\n", check=False
    )
    assert missing.returncode == 1 and "no such user" in missing.stderr


# -- ids beginning with "-" ------------------------------------------------------------------

# Grant ids are base64url (new_token), so one in 64 begins with "-"; argparse alone would read it as an
# option. Shapes: "-x…", "--x…" (a long option's look) and "-h…" (help's own letter, then more).
DASH_PREFIXES = ["-", "--", "-h"]
ID_COMMANDS = [
    ("consents", "revoke", "grant_id"),
    ("clients", "show", "client_id"),
    ("clients", "remove", "client_id"),
    ("registration-token", "revoke", "label"),
]


def _dash_id(prefix: str) -> str:
    return (prefix + secrets.token_urlsafe(16))[:22]  # the length of new_token(16)


@pytest.mark.parametrize("command", ID_COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize(
    "ident", ["-Xy3_k9Qw2LmN8pR4tV6zA", "--Xy3_k9Qw2LmN8pR4tV6z", "-hXy3_k9Qw2LmN8pR4tV6", "--help-me", "-", "-1234"]
)
def test_id_argument_may_begin_with_a_dash(command: tuple[str, str, str], ident: str) -> None:
    """The id is taken as given, with or without `--` before it, and after global options."""
    action, dest = list(command[:2]), command[2]
    assert getattr(cli.parse_args([*action, ident]), dest) == ident
    assert getattr(cli.parse_args([*action, "--", ident]), dest) == ident
    assert getattr(cli.parse_args(["--config", "f.toml", *action, ident]), dest) == ident


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_flag_in_the_id_place_still_asks_for_help(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(["consents", "revoke", flag])
    assert exited.value.code == 0 and "usage: fingrade consents revoke" in capsys.readouterr().out
    assert cli.parse_args(["consents", "revoke", "--", flag]).grant_id == flag


def test_missing_id_is_still_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(["consents", "revoke"])
    assert exited.value.code == 2 and "grant_id" in capsys.readouterr().err


def _make_grant(server: Server, grant_id: str, user_id: str) -> None:
    """A grant with an id of our choosing, written through the server's own store (a real flow's id
    is random, and begins with "-" only one time in 64)."""

    async def run() -> None:
        core = await build_core(load_settings(environ=server.env), migrate=False)
        try:
            await core.store.create_grant(
                Grant(
                    id=grant_id,
                    client_id="demo-native",
                    user_id=user_id,
                    scope="openid accounts",
                    auth_time=core.clock(),
                    created_at=core.clock(),
                )
            )
        finally:
            await close_core(core)

    asyncio.run(run())


@pytest.mark.parametrize("prefix", DASH_PREFIXES)
def test_consents_revoke_grant_id_beginning_with_a_dash(server: Server, prefix: str) -> None:
    """`fingrade consents revoke <grant_id>` as `consents list` prints it, without `--`."""
    alice = next(
        line.split("\t")[1] for line in server.cli("users", "list").stdout.splitlines() if line.startswith("alice\t")
    )
    grant_id = _dash_id(prefix)
    _make_grant(server, grant_id, alice)
    listed = json.loads(server.cli("consents", "list", "--user", "alice").stdout)
    assert grant_id in [g["grant_id"] for g in listed]
    proc = server.cli("consents", "revoke", grant_id)
    assert proc.stdout.strip() == f"grant {grant_id} of client demo-native revoked"
    listed = json.loads(server.cli("consents", "list", "--user", "alice", "--all").stdout)
    assert [g["state"] for g in listed if g["grant_id"] == grant_id] == ["revoked"]
    missing = server.cli("consents", "revoke", _dash_id(prefix), check=False)
    assert missing.returncode == 1 and "no such grant" in missing.stderr
    _no_traceback(missing)


@pytest.mark.parametrize("prefix", DASH_PREFIXES)
def test_clients_show_and_remove_client_id_beginning_with_a_dash(server: Server, prefix: str) -> None:
    """A client id chosen with `--client-id=-…` is shown and removed without `--`."""
    cid = _dash_id(prefix)
    added = server.add_client(
        "--name", "Dash", "--profile", "native", "--redirect-uri", "http://127.0.0.1/cb", f"--client-id={cid}"
    )
    assert added["client_id"] == cid
    assert json.loads(server.cli("clients", "show", cid).stdout)["client_id"] == cid
    assert server.cli("clients", "remove", cid).returncode == 0
    gone = server.cli("clients", "show", cid, check=False)
    assert gone.returncode == 1 and "no such client" in gone.stderr


# -- migrate ----------------------------------------------------------------------------------


def test_migrate_is_idempotent(server: Server) -> None:
    """`fingrade migrate` on an up-to-date database (the running server's) changes nothing and succeeds."""
    before = server.cli("clients", "list").stdout
    for _ in range(2):
        proc = server.cli("migrate")
        assert proc.returncode == 0 and "latest schema" in proc.stdout
    assert server.cli("clients", "list").stdout == before
    with server.client() as http:
        assert http.get("/healthz").status_code == 200
