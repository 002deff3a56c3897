"""Helpers for the browser tests: local web sites around the server, and the flow as a person clicks
through it. Fixtures live in conftest.py."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from playwright.sync_api import Browser, Page, Playwright, Response, Route, expect
from support.bank import Fintech
from support.flow import Authorized, authorize_url, pkce_pair, query_of
from support.sca import Authenticator
from support.server import DEMO_PASSWORD, Server

CHROMIUM = os.environ.get("FINGRADE_CHROMIUM", "/usr/bin/chromium")
# Debian's Chromium, never Playwright's downloaded builds; no background traffic, fresh profile.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(p: Playwright) -> Browser:
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# -- local sites ------------------------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    query: dict[str, str]
    method: str
    form: dict[str, str] = field(default_factory=dict)  # a POSTed form body (form_post.jwt responses)
    referer: str | None = None


@dataclass
class _Site:
    pages: dict[str, str] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(site: _Site) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()} if length else {}
            with site.lock:
                site.hits.append(Hit(parts.path, query_of(self.path), self.command, form, self.headers.get("Referer")))
                body = site.pages.get(parts.path)
            if body is None:  # the redirect URI: a plain page that says what arrived
                body = "<!doctype html><title>client</title><h1>client received the response</h1>"
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "site-cert.pem", directory / "site-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Sites:
    def __init__(self, workdir: Path) -> None:
        self.plain, self.tls = _Site(), _Site()
        self._servers: list[http.server.ThreadingHTTPServer] = []
        plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.plain))
        tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.tls))
        cert, key = _self_signed(workdir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        for srv in (plain, tls):
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self._servers.append(srv)
        self.plain_port = plain.server_address[1]
        self.tls_port = tls.server_address[1]

    def callback(self, path: str = "/callback") -> str:
        """A fresh loopback redirect URI (any port is allowed for demo-native, RFC 8252 §7.3)."""
        return f"http://127.0.0.1:{self.plain_port}{path}"

    def cross_site_page(self, html: str) -> str:
        path = "/evil-" + secrets.token_hex(6)
        with self.plain.lock:
            self.plain.pages[path] = html
        return f"http://127.0.0.1:{self.plain_port}{path}"

    def same_site_page(self, html: str) -> str:
        path = "/evil-" + secrets.token_hex(6)
        with self.tls.lock:
            self.tls.pages[path] = html
        return f"https://localhost:{self.tls_port}{path}"

    def hits(self, path: str) -> list[Hit]:
        with self.plain.lock:
            return [h for h in self.plain.hits if h.path == path]

    def close(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()


class Recorder:
    """Every response the page saw (redirect hops included), to check statuses and headers."""

    def __init__(self, page: Page) -> None:
        self.responses: list[Response] = []
        page.on("response", lambda response: self.responses.append(response))

    def find(self, method: str, path_prefix: str) -> list[Response]:
        return [
            r for r in self.responses if r.request.method == method and urlsplit(r.url).path.startswith(path_prefix)
        ]


# -- the flow, as a person clicks through it -------------------------------------------------------


@dataclass
class Started:
    state: str
    verifier: str
    redirect_uri: str
    url: str


def start_authorization(
    page: Page, redirect_uri: str, client_id: str = "demo-native", scope: str = "openid profile email", **extra: str
) -> Started:
    verifier, challenge = pkce_pair()
    url = authorize_url(client_id, redirect_uri, challenge, scope, **extra)
    page.goto(url)
    return Started(state=query_of(url)["state"], verifier=verifier, redirect_uri=redirect_uri, url=url)


@dataclass(frozen=True)
class Person:
    username: str
    password: str
    name: str


ALICE = Person("alice", DEMO_PASSWORD, "Alice Andersen")


# `fingrade users add` for a batch of users in one interpreter (the CLI's own code path, without paying
# Python's start-up once per user).
_ADD_USERS = """
import io, json, sys
from fingrade.cli import main
for u in json.load(sys.stdin):
    sys.stdin = io.StringIO(u["password"] + "\\n")
    if main(["users", "add", u["username"], "--name", u["name"], "--password-stdin"]) != 0:
        sys.exit(1)
"""


class People:
    """Users of the tests' own: consent is remembered per user and client, so a test that must see the
    consent page needs a user nobody else has used."""

    def __init__(self, server: Server, batch: int = 20) -> None:
        self.server, self.batch = server, batch
        self._pool: list[Person] = []
        self._lock = threading.Lock()

    def take(self) -> Person:
        with self._lock:
            if not self._pool:
                tags = [secrets.token_hex(4) for _ in range(self.batch)]
                fresh = [
                    Person("tester-" + t, "pw-" + secrets.token_urlsafe(12), "Tess Tester " + t.upper()) for t in tags
                ]
                subprocess.run(
                    [sys.executable, "-c", _ADD_USERS],
                    env=self.server.env,
                    check=True,
                    timeout=120,
                    input=json.dumps([p.__dict__ for p in fresh]),
                    text=True,
                    capture_output=True,
                )
                self._pool.extend(fresh)
            return self._pool.pop()


def sign_in(page: Page, person: Person = ALICE) -> None:
    page.get_by_label("Username").fill(person.username)
    page.get_by_label("Password").fill(person.password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def decide(page: Page, button: str, redirect_uri: str) -> dict[str, str]:
    """Click Allow or Deny and wait until the browser arrives at the client's redirect URI."""
    page.get_by_role("button", name=button).click()
    page.wait_for_url(redirect_uri + "?**")
    return query_of(page.url)


def on_login_page(page: Page) -> bool:
    return (
        page.get_by_role("heading", name="Sign in").count() == 1 and page.locator('input[name="password"]').count() == 1
    )


def on_factor_page(page: Page) -> bool:
    return page.locator('input[name="code"]').count() == 1


def type_code(page: Page, app: Authenticator, button: str, person: Person = ALICE) -> None:
    """Type the authenticator app's current code into the second-factor page (and the password, when
    it asks: a payment confirmed on a session from before) and submit it."""
    if page.locator('input[name="password"]').count():
        page.get_by_label("Password").fill(person.password)
    page.get_by_label("Code from your authenticator app").fill(app.next_code(int(time.time())))
    page.get_by_role("button", name=button).click()


def on_consent_page(page: Page) -> bool:
    return page.locator('button[name="decision"][value="approve"]').count() == 1


# -- a fintech's authorization, with the customer in Chromium ---------------------------------------


def fintech_connects(
    page: Page,
    fintech: Fintech,
    details: list[dict],
    scope: str,
    person: Person = ALICE,
    choose: Callable[[Page], None] | None = None,
    login: bool | None = None,
    authenticator: Authenticator | None = None,
) -> dict[str, Any]:
    """One authorization of a FAPI 2.0 app: the app pushes its request (PAR with private_key_jwt and a
    DPoP proof), Chromium opens /authorize with only client_id and request_uri (FAPI 2.0 SP 5.3.3.2),
    signs in if asked (`login`: True, the login page must come; False, it must not, the session
    holds; None, either), `choose(page)` picks accounts on the consent page, Allow. The app's redirect
    URI (a stub route: nothing listens there) receives code, state and iss (RFC 9207), and the app
    redeems the code with a DPoP proof. With `authenticator` (the customer's app, on a server with
    strong customer authentication) she types its codes: after the password, and to confirm a
    payment, whose amount and payee the page shows. Returns the token response."""
    fc = fintech.client
    arrived: list[str] = []

    def app(route: Route) -> None:
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="back at the app")

    page.context.route(fc.redirect_uri + "**", app)
    try:
        with fintech.server.client() as http:
            params, verifier = fc.request_params(scope=scope, authorization_details=json.dumps(details))
            pushed = fc.push(http, params)
            assert pushed.status_code == 201, pushed.text
            page.goto(
                "/authorize?" + urlencode({"client_id": fc.client_id, "request_uri": pushed.json()["request_uri"]})
            )
            asked = on_login_page(page)
            assert login is None or asked == login, f"login page shown: {asked}"
            if asked:
                sign_in(page, person)
            if authenticator is not None and on_factor_page(page):
                type_code(page, authenticator, "Continue", person)
            assert on_consent_page(page)
            if choose is not None:
                choose(page)
            page.get_by_role("button", name="Allow").click()
            if authenticator is not None and any(d["type"] == "payment_initiation" for d in details):
                for d in details:
                    amount = d["instructedAmount"]["amount"]
                    expect(page.locator(".payment-confirmation")).to_contain_text(amount)
                    expect(page.locator(".payment-confirmation")).to_contain_text(d["creditorName"])
                type_code(page, authenticator, "Confirm payment", person)
            page.wait_for_url(fc.redirect_uri + "?**")
            back = query_of(arrived[-1])
            assert back["state"] == params["state"] and back["iss"] == fintech.server.issuer, back
            resp = fc.redeem(
                http,
                Authorized(
                    code=back["code"],
                    params=back,
                    verifier=verifier,
                    redirect_uri=fc.redirect_uri,
                    location=arrived[-1],
                ),
            )
    finally:
        page.context.unroute(fc.redirect_uri + "**", app)
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "DPoP"
    return resp.json()
