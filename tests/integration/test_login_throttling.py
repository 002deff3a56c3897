"""Sign-in throttling on the real server, both backends (NIST SP 800-63B §5.2.2: limit failed
attempts; OWASP device cookies): every password check is counted before it is evaluated, so parallel
requests get no more guesses than the limits allow; counters per address, per account and address,
and per account for browsers that never signed in to it, each with exponential back-off; a browser
that signed in before keeps working whatever strangers do. Addresses come from X-Forwarded-For
(the test client is a trusted proxy), so each test uses addresses and users of its own."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from support.backends import BACKENDS
from support.database import audit_events, user_id
from support.flow import CSRF, authorize_url, login, pkce_pair
from support.inprocess import InProcessServer
from support.operator import new_user
from support.server import DEMO_PASSWORD, Server, dedicated_server

pytestmark = [pytest.mark.login, pytest.mark.throttle]

WRONG = "wrong-password-123"
LIMITS = {
    "FINGRADE_LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS": "3",
    "FINGRADE_LOGIN_MAX_FAILURES_PER_ACCOUNT": "5",
    "FINGRADE_LOGIN_MAX_FAILURES_PER_ADDRESS": "5",
    "FINGRADE_LOGIN_BACKOFF_SECONDS": "3",
    "FINGRADE_LOGIN_FAILURE_WINDOW": "60",
    "FINGRADE_TRUSTED_PROXIES": "127.0.0.1",
}


@pytest.fixture(scope="module", params=BACKENDS)
def strict(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with dedicated_server(tmp_path_factory.mktemp(f"throttle-{request.param}"), request.param, LIMITS) as srv:
        yield srv


def address() -> str:
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


class Browser:
    """A browser at an address: the account sign-in page (/account/login), cookies kept."""

    def __init__(self, server: Server, ip: str) -> None:
        self.http = server.client(follow_redirects=False, headers={"X-Forwarded-For": ip})
        page = self.http.get("/account/login")
        assert page.status_code == 200
        self.csrf = CSRF.search(page.text).group(1)

    def sign_in(self, username: str, password: str) -> httpx.Response:
        return self.http.post(
            "/account/login", data={"username": username, "password": password, "csrf_token": self.csrf}
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attempt(server: Server, ip: str, username: str, password: str) -> httpx.Response:
    """One sign-in from a browser never seen before."""
    browser = Browser(server, ip)
    try:
        return browser.sign_in(username, password)
    finally:
        browser.close()


def burst(server: Server, attempts: list[tuple[str, str]], password: str = WRONG) -> list[int]:
    """(address, username) pairs, all submitted at the same moment from fresh browsers."""
    browsers = [(Browser(server, ip), username) for ip, username in attempts]
    start = threading.Barrier(len(browsers))
    statuses: list[int] = [0] * len(browsers)

    def go(i: int) -> None:
        browser, username = browsers[i]
        start.wait()
        resp = browser.sign_in(username, password)
        statuses[i] = resp.status_code
        if resp.status_code == 429:
            assert int(resp.headers["retry-after"]) >= 1

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(browsers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for browser, _ in browsers:
        browser.close()
    return statuses


def test_parallel_wrong_passwords_are_counted_before_they_are_checked(strict: Server) -> None:
    """15 parallel wrong passwords against a limit of 5: at most 5 passwords are evaluated (each
    evaluation writes one login_failed audit event; a refused attempt writes login_throttled)."""
    username, _ = new_user(strict)
    # One account from 15 addresses: the account's limit (5) for browsers it never signed in on.
    statuses = burst(strict, [(address(), username) for _ in range(15)])
    evaluated = audit_events(strict, "login_failed", user_id=user_id(strict, username))
    assert len(evaluated) <= 5 and statuses.count(401) == len(evaluated), statuses
    assert statuses.count(429) == 15 - len(evaluated)
    # 15 accounts from one address: the address's limit (5).
    ip = address()
    statuses = burst(strict, [(ip, "nobody-" + secrets.token_hex(4)) for _ in range(15)])
    evaluated = audit_events(strict, "login_failed", ip=ip)
    assert len(evaluated) <= 5 and statuses.count(401) == len(evaluated), statuses
    assert len(audit_events(strict, "login_throttled", ip=ip)) == 15 - len(evaluated)


def test_per_account_and_address_limit(strict: Server) -> None:
    username, password = new_user(strict)
    here, elsewhere = address(), address()
    for _ in range(3):
        assert attempt(strict, here, username, WRONG).status_code == 401
    # From this address the right password has to wait now; the page says how long.
    resp = attempt(strict, here, username, password)
    assert resp.status_code == 429 and "Too many failed attempts" in resp.text
    assert 1 <= int(resp.headers["retry-after"]) <= 3
    # The same account elsewhere, and another account here, are not held up.
    assert attempt(strict, elsewhere, username, password).status_code == 303
    assert attempt(strict, here, "alice", DEMO_PASSWORD).status_code == 303


def test_a_strangers_failures_do_not_lock_the_owner_out_of_their_browser(strict: Server) -> None:
    """Anyone can make an account's shared counter run out; the owner's browser, which signed in
    before (device cookie), is not counted on it and signs in as always, also in the authorization flow."""
    username, password = new_user(strict)
    with (
        strict.client(follow_redirects=False, headers={"X-Forwarded-For": address()}) as owner,
        Browser(strict, address()) as bob,
    ):

        def sign_in(pw: str) -> httpx.Response:
            _, challenge = pkce_pair()
            resp = owner.get(authorize_url("demo-native", "http://127.0.0.1:5000/callback", challenge, prompt="login"))
            return login(owner, owner.get(resp.headers["location"]), username, pw)

        assert sign_in(password).status_code == 303
        assert bob.sign_in("bob", DEMO_PASSWORD).status_code == 303  # bob's browser knows bob only
        statuses = [attempt(strict, address(), username, WRONG).status_code for _ in range(5)]  # a stranger
        assert statuses == [401] * 5
        assert attempt(strict, address(), username, password).status_code == 429  # unknown browsers wait
        assert sign_in(password).status_code == 303  # the owner's browser does not
        assert owner.cookies.get("__Host-fg_device")
        # A device cookie is bound to its user: bob's does nothing for another account.
        assert bob.sign_in(username, password).status_code == 429
        # The owner mistyping on their own browser is throttled on that browser alone.
        for _ in range(3):
            assert sign_in(WRONG).status_code == 401
        assert sign_in(password).status_code == 429


def test_per_address_back_off_doubles(start_clocked: Callable[..., InProcessServer]) -> None:
    """One address trying many accounts: after 5 failures each further attempt waits, twice as long
    each time; other addresses are not affected; successes are not counted. The server runs in this
    process with these limits, on a clock the test moves (to the second)."""
    srv = start_clocked(LIMITS)
    srv.clock.freeze()
    ip = address()
    for _ in range(7):  # successful sign-ins are not failures
        assert attempt(srv, ip, "alice", DEMO_PASSWORD).status_code == 303
    for _ in range(5):
        assert attempt(srv, ip, "nobody-" + secrets.token_hex(4), WRONG).status_code == 401
    refused = attempt(srv, ip, "alice", DEMO_PASSWORD)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "3"
    assert attempt(srv, address(), "alice", DEMO_PASSWORD).status_code == 303
    srv.clock.advance(2)
    waiting = attempt(srv, ip, "alice", DEMO_PASSWORD)
    assert waiting.status_code == 429 and waiting.headers["retry-after"] == "1"
    srv.clock.advance(1)
    assert attempt(srv, ip, "nobody-" + secrets.token_hex(4), WRONG).status_code == 401
    again = attempt(srv, ip, "alice", DEMO_PASSWORD)
    assert again.status_code == 429 and again.headers["retry-after"] == "6"


def test_unlock_clears_the_accounts_counters(strict: Server) -> None:
    """`fingrade users unlock` forgets every counter of the account (all addresses and browsers); audited."""
    username, password = new_user(strict)
    here = address()
    for _ in range(3):
        assert attempt(strict, here, username, WRONG).status_code == 401
    for _ in range(2):
        assert attempt(strict, address(), username, WRONG).status_code == 401
    assert attempt(strict, here, username, password).status_code == 429
    assert attempt(strict, address(), username, password).status_code == 429
    out = strict.cli("users", "unlock", username)
    assert out.returncode == 0, out.stderr
    assert attempt(strict, here, username, password).status_code == 303
    assert attempt(strict, address(), username, password).status_code == 303
    assert audit_events(strict, "user_unlocked", user_id=user_id(strict, username))
    assert strict.cli("users", "unlock", "no-such-user", check=False).returncode == 1
