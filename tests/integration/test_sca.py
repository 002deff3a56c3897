"""Strong customer authentication end to end on the clocked in-process server (docs/sca.md): sign-in
with a second factor, enrolment, replay and throttling, step-up, acr/amr in the tokens (OIDC Core §2,
RFC 8176), essential acr, max_age, and payments approved with dynamic linking (PSD2 RTS Art. 4-5)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.bank import payment_initiation
from support.database import audit_events
from support.demo import BACKEND, BACKEND_REDIRECT, BASIC, NATIVE, NATIVE_REDIRECT
from support.flow import authorize_url, consent, follow_to_client, login, pkce_pair, query_of
from support.inprocess import InProcessServer
from support.operator import new_user
from support.sca import (
    SCA_ON,
    Authenticator,
    code,
    is_enrolment_page,
    is_factor_page,
    offered_secret,
    recovery_codes,
    submit_code,
    submit_enrolment,
    walk,
)
from support.server import DEMO_PASSWORD

from fingrade.finance.dynamic_linking import details_hash
from fingrade.oauth.authn_level import ACR_PASSWORD, ACR_SCA

pytestmark = [pytest.mark.sca, pytest.mark.login]


def _claims(http: httpx.Client, token: str) -> dict[str, Any]:
    return jwt.decode(token, KeySet.import_key_set(http.get("/jwks").json())).claims


class Customer:
    """A browser of one customer at the clocked server, with their authenticator app."""

    def __init__(self, srv: InProcessServer, username: str = "alice", password: str = DEMO_PASSWORD) -> None:
        self.srv = srv
        self.browser = srv.client()
        self.username, self.password = username, password
        self.app = Authenticator()
        self.seen: list[str] = []

    def authorize(
        self, client_id: str = NATIVE, redirect_uri: str = NATIVE_REDIRECT, scope: str = "openid", **extra: str
    ) -> tuple[httpx.Response, str]:
        verifier, challenge = pkce_pair()
        first = self.browser.get(authorize_url(client_id, redirect_uri, challenge, scope, **extra))
        self.seen = []
        end = walk(
            self.browser, first, redirect_uri, self.srv.clock, self.app, self.username, self.password, seen=self.seen
        )
        return end, verifier

    def tokens(
        self, client_id: str = NATIVE, redirect_uri: str = NATIVE_REDIRECT, auth: Any = None, **extra: str
    ) -> dict[str, Any]:
        end, verifier = self.authorize(client_id, redirect_uri, **extra)
        assert end.status_code == 303, (self.seen, end.status_code, end.text[:300])
        params = query_of(end.headers["location"])
        assert "code" in params, params
        data = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": redirect_uri}
        data["code_verifier"] = verifier
        if auth is None:
            data["client_id"] = client_id
        resp = self.browser.post("/token", data=data, auth=auth)
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture
def sca_server(start_clocked: Callable[..., InProcessServer]) -> InProcessServer:
    return start_clocked(SCA_ON)


def test_psd2_rts_art_4_sign_in_takes_the_password_and_a_code(sca_server: InProcessServer) -> None:
    alice = Customer(sca_server)
    tokens = alice.tokens(scope="openid profile")
    assert alice.seen[:2] == ["login", "second_factor"]
    with sca_server.client() as http:
        id_token = _claims(http, tokens["id_token"])
        access = _claims(http, tokens["access_token"])
    assert id_token["acr"] == ACR_SCA and id_token["amr"] == ["pwd", "otp", "mfa"]
    assert (access["acr"], access["amr"]) == (ACR_SCA, ["pwd", "otp", "mfa"])  # RFC 9068 §2.2.3.1
    # The session is strong now: another request of this browser needs no second factor.
    sca_server.clock.advance(5)
    again = alice.tokens(scope="openid profile")
    assert "second_factor" not in alice.seen and "login" not in alice.seen
    with sca_server.client() as http:
        assert _claims(http, again["id_token"])["amr"] == ["pwd", "otp", "mfa"]


def test_the_password_alone_starts_no_session(sca_server: InProcessServer) -> None:
    browser = sca_server.client()
    _, challenge = pkce_pair()
    page = follow_to_client(browser, browser.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid")), "http:")
    after = follow_to_client(browser, login(browser, page, "alice", DEMO_PASSWORD), "http:")
    assert is_factor_page(after)
    assert "__Host-fg_session" not in "".join(browser.cookies.keys())
    # Another request in the same browser still starts at the password.
    page2 = follow_to_client(browser, browser.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid")), "http:")
    assert 'name="username"' in page2.text


def test_rfc6238_5_2_a_code_signs_in_once(sca_server: InProcessServer) -> None:
    sca_server.clock.freeze()
    used = code(sca_server.clock())
    first, second = sca_server.client(), sca_server.client()
    pages = []
    for browser in (first, second):
        _, challenge = pkce_pair()
        page = browser.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid"))
        page = follow_to_client(browser, page, "http:")
        pages.append(follow_to_client(browser, login(browser, page, "alice", DEMO_PASSWORD), "http:"))
    assert submit_code(first, pages[0], used).status_code == 303
    replayed = submit_code(second, pages[1], used)
    assert replayed.status_code == 401 and "used already" in replayed.text
    assert audit_events(sca_server, "second_factor_failed")


def test_guessing_codes_is_throttled(start_clocked: Callable[..., InProcessServer]) -> None:
    srv = start_clocked({**SCA_ON, "FINGRADE_LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS": "3"})
    srv.clock.freeze()
    browser = srv.client()
    _, challenge = pkce_pair()
    page = follow_to_client(browser, browser.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid")), "http:")
    page = follow_to_client(browser, login(browser, page, "alice", DEMO_PASSWORD), "http:")
    right = code(srv.clock())
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(3):
        page = submit_code(browser, page, wrong)
        assert page.status_code == 401
    throttled = submit_code(browser, page, right)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    srv.clock.advance(int(throttled.headers["retry-after"]))
    assert submit_code(browser, throttled, code(srv.clock())).status_code == 303


def test_a_customer_without_a_second_factor_enrols_one_at_sign_in(sca_server: InProcessServer) -> None:
    username, password = new_user(sca_server)
    bob = Customer(sca_server, username, password)
    end, _ = bob.authorize(scope="openid")
    assert bob.seen[:4] == ["login", "enrol", "recovery_codes", "consent"], bob.seen
    assert end.status_code == 303 and "code=" in end.headers["location"]
    events = [e[0] for e in audit_events(sca_server, "factor_enrolled")]
    assert events == ["factor_enrolled"]


def test_enrolment_shows_the_recovery_codes_once_and_they_sign_in(sca_server: InProcessServer) -> None:
    username, password = new_user(sca_server)
    browser = sca_server.client()
    app = Authenticator()
    _, challenge = pkce_pair()
    page = follow_to_client(browser, browser.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid")), "http:")
    page = follow_to_client(browser, login(browser, page, username, password), "http:")
    assert is_enrolment_page(page)
    app.secret = offered_secret(page)
    wrong = submit_enrolment(browser, page, "000000" if code(sca_server.clock(), app.secret) != "000000" else "111111")
    assert wrong.status_code == 401 and is_enrolment_page(wrong)
    shown = submit_enrolment(browser, wrong, app.next_code(sca_server.clock()))
    codes = recovery_codes(shown)
    assert len(codes) == 10 and shown.headers["cache-control"] == "no-store"
    # A new browser: password, then a recovery code instead of the app's code.
    other = sca_server.client()
    _, challenge = pkce_pair()
    page = follow_to_client(other, other.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid")), "http:")
    page = follow_to_client(other, login(other, page, username, password), "http:")
    assert submit_code(other, page, codes[0].upper()).status_code == 303
    third = sca_server.client()
    page = follow_to_client(third, third.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid")), "http:")
    page = follow_to_client(third, login(third, page, username, password), "http:")
    assert submit_code(third, page, codes[0]).status_code == 401  # each recovery code once


def test_optional_sca_steps_up_when_a_request_asks_for_it(start_clocked: Callable[..., InProcessServer]) -> None:
    srv = start_clocked({"FINGRADE_SCA": "optional"})
    username, password = new_user(srv)  # no second factor: the password is enough ...
    carol = Customer(srv, username, password)
    tokens = carol.tokens(scope="openid")
    with srv.client() as http:
        assert _claims(http, tokens["id_token"])["acr"] == ACR_PASSWORD
    srv.clock.advance(5)
    # ... until a request asks for SCA (OIDC Core §3.1.2.1 acr_values): she enrols, then it is met.
    tokens = carol.tokens(scope="openid", acr_values=ACR_SCA)
    assert "enrol" in carol.seen and "login" not in carol.seen
    with srv.client() as http:
        claims = _claims(http, tokens["id_token"])
    assert claims["acr"] == ACR_SCA and "mfa" in claims["amr"]


def test_prompt_none_without_a_strong_enough_session_is_login_required(
    start_clocked: Callable[..., InProcessServer],
) -> None:
    srv = start_clocked({"FINGRADE_SCA": "optional"})
    username, password = new_user(srv)
    carol = Customer(srv, username, password)
    carol.tokens(scope="openid")
    _, challenge = pkce_pair()
    url = authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid", prompt="none", acr_values=ACR_SCA)
    resp = carol.browser.get(url)
    assert resp.status_code == 303 and query_of(resp.headers["location"])["error"] == "login_required"


def test_oidc_core_5_5_1_1_an_essential_acr_that_cannot_be_met(start_clocked: Callable[..., InProcessServer]) -> None:
    srv = start_clocked({"FINGRADE_SCA": "off"})
    browser = srv.client()
    _, challenge = pkce_pair()
    claims = json.dumps({"id_token": {"acr": {"essential": True, "value": ACR_SCA}}})
    resp = browser.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid", claims=claims))
    assert resp.status_code == 303
    params = query_of(resp.headers["location"])
    assert params["error"] == "unmet_authentication_requirements" and params["iss"] == srv.issuer
    assert srv.client().get("/.well-known/openid-configuration").json()["acr_values_supported"] == [ACR_PASSWORD]


def test_discovery_names_both_acr_values(sca_server: InProcessServer) -> None:
    meta = sca_server.client().get("/.well-known/openid-configuration").json()
    assert meta["acr_values_supported"] == [ACR_PASSWORD, ACR_SCA]


def test_max_age_asks_for_both_factors_again(sca_server: InProcessServer) -> None:
    alice = Customer(sca_server)
    alice.tokens()
    sca_server.clock.advance(120)
    tokens = alice.tokens(max_age="60")
    assert alice.seen[:2] == ["login", "second_factor"]
    with sca_server.client() as http:
        claims = _claims(http, tokens["id_token"])
    assert sca_server.clock() - claims["auth_time"] < 5 and claims["acr"] == ACR_SCA


def _pay(customer: Customer, detail: dict[str, Any]) -> dict[str, Any]:
    return customer.tokens(
        BACKEND,
        BACKEND_REDIRECT,
        auth=BASIC,
        scope="openid payments",
        authorization_details=json.dumps([detail]),
    )


def test_psd2_rts_art_5_a_payment_is_confirmed_by_an_authentication_bound_to_it(sca_server: InProcessServer) -> None:
    alice = Customer(sca_server)
    detail = payment_initiation("12.34", creditor_name="Acme GmbH")
    end, _ = alice.authorize(
        BACKEND, BACKEND_REDIRECT, scope="openid payments", authorization_details=json.dumps([detail])
    )
    # The sign-in takes the password; the payment's own confirmation is the second factor.
    assert alice.seen == ["login", "consent", "confirm_payment"], alice.seen
    assert end.status_code == 303
    sca_server.clock.advance(31)
    tokens = _pay(alice, detail)
    assert alice.seen == ["consent", "confirm_payment"]
    with sca_server.client() as http:
        access = _claims(http, tokens["access_token"])
    assert access["acr"] == ACR_SCA
    assert access["linked_details_hash"] == details_hash(access["authorization_details"])
    [event] = audit_events(sca_server, "payment_authenticated")[-1:]
    assert json.loads(event[4])["details_hash"] == access["linked_details_hash"]


def test_the_confirmation_page_shows_amount_and_payee(sca_server: InProcessServer) -> None:
    alice = Customer(sca_server)
    detail = payment_initiation("1250.50", creditor_name="Acme GmbH")
    browser = alice.browser
    _, challenge = pkce_pair()
    url = authorize_url(
        BACKEND, BACKEND_REDIRECT, challenge, "openid payments", authorization_details=json.dumps([detail])
    )
    page = follow_to_client(browser, browser.get(url), BACKEND_REDIRECT)
    page = follow_to_client(browser, login(browser, page, "alice", DEMO_PASSWORD), BACKEND_REDIRECT)
    confirm = consent(browser, page)
    assert confirm.status_code == 200
    assert "Confirm €1,250.50 to Acme GmbH" in confirm.text
    assert 'name="password"' not in confirm.text  # the password was given in this authorization


def test_an_existing_session_never_approves_a_payment_alone(sca_server: InProcessServer) -> None:
    alice = Customer(sca_server)
    alice.tokens()  # a strong session
    sca_server.clock.advance(31)
    _, challenge = pkce_pair()
    detail = payment_initiation("5.00")
    url = authorize_url(
        BACKEND, BACKEND_REDIRECT, challenge, "openid payments", authorization_details=json.dumps([detail])
    )
    browser = alice.browser
    page = follow_to_client(browser, browser.get(url), BACKEND_REDIRECT)
    assert 'name="decision"' in page.text  # no sign-in page: the session is there
    confirm = consent(browser, page)
    assert 'name="password"' in confirm.text  # both elements again, fresh
    missing = submit_code(browser, confirm, alice.app.next_code(sca_server.clock()), "wrong-password")
    assert missing.status_code == 401
    sca_server.clock.advance(31)
    ok = submit_code(browser, missing, alice.app.next_code(sca_server.clock()), DEMO_PASSWORD)
    assert ok.status_code == 303 and "code=" in ok.headers["location"]


def test_payments_without_sca_when_it_is_off(start_clocked: Callable[..., InProcessServer]) -> None:
    srv = start_clocked({"FINGRADE_SCA": "off"})
    alice = Customer(srv)
    detail = payment_initiation("5.00")
    tokens = _pay(alice, detail)
    assert alice.seen == ["login", "consent"]
    with srv.client() as http:
        access = _claims(http, tokens["access_token"])
    assert access["acr"] == ACR_PASSWORD and "linked_details_hash" not in access


def test_the_customer_can_cancel_at_the_payment_confirmation(sca_server: InProcessServer) -> None:
    alice = Customer(sca_server)
    _, challenge = pkce_pair()
    detail = payment_initiation("7.00")
    url = authorize_url(
        BACKEND, BACKEND_REDIRECT, challenge, "openid payments", authorization_details=json.dumps([detail])
    )
    browser = alice.browser
    page = follow_to_client(browser, browser.get(url), BACKEND_REDIRECT)
    page = follow_to_client(browser, login(browser, page, "alice", DEMO_PASSWORD), BACKEND_REDIRECT)
    confirm = consent(browser, page)
    assert "Cancel the payment" in confirm.text
    cancelled = consent(browser, confirm, "deny")
    assert cancelled.status_code == 303
    assert query_of(cancelled.headers["location"])["error"] == "access_denied"
