"""Strong customer authentication against the real server on each backend (SQLite; PostgreSQL with
the Redis one-time store): a code signs in once across the shared store, a payment approved with
dynamic linking is executed by the bank, the bank's RFC 9470 step-up challenge, and the operator's
reset (docs/sca.md)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.backends import BACKENDS
from support.bank import Fintech, payment_body, payment_initiation
from support.database import audit_events, user_id
from support.demo import NATIVE, NATIVE_REDIRECT
from support.flow import authorize_url, follow_to_client, login, pkce_pair, query_of
from support.operator import new_user
from support.sca import SCA_ON, Authenticator, code, is_enrolment_page, submit_code, walk
from support.server import Server, dedicated_server

from fingrade.oauth.authn_level import ACR_SCA

pytestmark = [pytest.mark.sca, pytest.mark.login, pytest.mark.payments]


@pytest.fixture(scope="module", params=BACKENDS)
def sca_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with dedicated_server(tmp_path_factory.mktemp(f"sca-{request.param}"), request.param, SCA_ON) as srv:
        yield srv


def _id_token(srv: Server, token: str) -> dict:
    with srv.client() as http:
        return jwt.decode(token, KeySet.import_key_set(http.get("/jwks").json())).claims


def test_rfc6238_5_2_a_code_signs_in_once_on_every_node(sca_server: Server) -> None:
    """The time step is claimed in the shared one-time store (SQL, or Redis with PostgreSQL)."""
    username, password = new_user(sca_server)
    app = Authenticator()
    with sca_server.client(follow_redirects=False) as browser:
        verifier, challenge = pkce_pair()
        first = browser.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid"))
        seen: list[str] = []
        end = walk(browser, first, NATIVE_REDIRECT, lambda: int(time.time()), app, username, password, seen=seen)
        assert seen[:3] == ["login", "enrol", "recovery_codes"] and end.status_code == 303, seen
        tokens = browser.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": query_of(end.headers["location"])["code"],
                "redirect_uri": NATIVE_REDIRECT,
                "code_verifier": verifier,
                "client_id": NATIVE,
            },
        ).json()
    claims = _id_token(sca_server, tokens["id_token"])
    assert claims["acr"] == ACR_SCA and claims["amr"] == ["pwd", "otp", "mfa"]
    # Two browsers, one code: the second is refused.
    pages = []
    for _ in range(2):
        b = sca_server.client(follow_redirects=False)
        _, challenge = pkce_pair()
        page = follow_to_client(b, b.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid")), "http:")
        pages.append((b, follow_to_client(b, login(b, page, username, password), "http:")))
    now = int(time.time())
    typed = code(now + 30, app.secret)  # the next step's code: not used by the sign-in above
    assert submit_code(pages[0][0], pages[0][1], typed).status_code == 303
    replayed = submit_code(pages[1][0], pages[1][1], typed)
    assert replayed.status_code == 401 and "used already" in replayed.text


def test_psd2_rts_art_5_the_bank_executes_the_payment_that_was_strongly_authenticated(
    sca_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    fintech = Fintech(
        sca_server, tmp_path_factory.mktemp("sca-fintech"), "--authorization-details-type", "payment_initiation"
    )
    detail = payment_initiation("12.34")
    token = fintech.token(detail, username="alice", scope="openid payments", app=Authenticator())
    with sca_server.client() as http:
        paid = fintech.post(http, "/payments", token, payment_body(detail), key=str(uuid.uuid4()))
        assert paid.status_code == 201, paid.text
        # Another payment on the same token: not the one the customer authenticated.
        other = payment_body({**detail, "instructedAmount": {"currency": "EUR", "amount": "99.00"}})
        refused = fintech.post(http, "/payments", token, other, key=str(uuid.uuid4()))
        assert refused.status_code == 403
    events = audit_events(sca_server, "payment_authenticated", user_id=user_id(sca_server, "alice"))
    assert events and json.loads(events[-1][4])["amr"] == ["pwd", "otp", "mfa"]


def test_rfc9470_the_bank_asks_for_sca_when_a_token_lacks_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An authorization server without SCA in front of a bank that requires it: the bank answers
    insufficient_user_authentication with the acr_values to ask for (RFC 9470 §3)."""
    env = {"FINGRADE_SCA": "off", "FINGRADE_BANK_PAYMENT_ACR": ACR_SCA}
    with dedicated_server(tmp_path_factory.mktemp("sca-stepup"), "sqlite", env) as srv:
        fintech = Fintech(
            srv, tmp_path_factory.mktemp("stepup-fintech"), "--authorization-details-type", "payment_initiation"
        )
        detail = payment_initiation("3.00")
        token = fintech.token(detail, scope="openid payments")
        with srv.client() as http:
            resp = fintech.post(http, "/payments", token, payment_body(detail), key=str(uuid.uuid4()))
    assert resp.status_code == 401
    assert resp.json()["error"] == "insufficient_user_authentication"
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith("DPoP ") and f'acr_values="{ACR_SCA}"' in challenge
    assert 'error="insufficient_user_authentication"' in challenge


def test_operator_reset_sends_the_customer_through_enrolment_again(sca_server: Server) -> None:
    username, password = new_user(sca_server)
    with sca_server.client(follow_redirects=False) as browser:
        _, challenge = pkce_pair()
        first = browser.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid"))
        walk(browser, first, NATIVE_REDIRECT, lambda: int(time.time()), Authenticator(), username, password)
    listed = sca_server.cli("users", "mfa", "list", username).stdout
    assert "totp" in listed and "10 recovery codes left" in listed
    out = sca_server.cli("users", "mfa", "reset", username).stdout
    assert "1 second factor(s)" in out
    assert audit_events(sca_server, "factors_reset", user_id=user_id(sca_server, username))
    with sca_server.client(follow_redirects=False) as browser:
        _, challenge = pkce_pair()
        page = follow_to_client(
            browser, browser.get(authorize_url(NATIVE, NATIVE_REDIRECT, challenge, "openid")), "http:"
        )
        after = follow_to_client(browser, login(browser, page, username, password), "http:")
        assert is_enrolment_page(after)
    assert sca_server.cli("users", "mfa", "reset", "nobody-" + username, check=False).returncode == 1
