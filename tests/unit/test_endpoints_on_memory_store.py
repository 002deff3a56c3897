"""The endpoints as functions of (Core, request), on the in-memory stores and a clock the test moves:
PAR (RFC 9126), the authorization endpoint (RFC 6749 §4.1.1) and the token endpoint (RFC 6749
§4.1.3, RFC 7636 §4.6). No server, no database, no waiting: each lifetime rule is checked by moving
the clock past it, one second short of it and one second beyond."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from support.memory_core import Clock, memory_core

from fingrade.demo import DEMO_CLIENTS
from fingrade.oauth import interaction as flow
from fingrade.oauth.authorize import PageError, parse_request
from fingrade.oauth.context import Core
from fingrade.oauth.models import Session, User
from fingrade.oauth.par import par_endpoint
from fingrade.oauth.token_endpoint import token_endpoint
from fingrade.protocol.crypto import keyed_hash
from fingrade.protocol.http import HttpRequest, HttpResponse

pytestmark = [pytest.mark.par, pytest.mark.pkce, pytest.mark.refresh]

CLIENT = next(c for c in DEMO_CLIENTS if c.client_id == "demo-backend")  # confidential, client_secret_basic
SECRET = "s3cret-for-the-memory-store-tests"
REDIRECT = CLIENT.redirect_uris[0]
FORM = {"content-type": "application/x-www-form-urlencoded"}


@dataclasses.dataclass
class World:
    core: Core
    clock: Clock
    user: User
    session: Session

    def run(self, coro: Any) -> Any:
        return _LOOP.run_until_complete(coro)


_LOOP = asyncio.new_event_loop()


@pytest.fixture
def world(tmp_path: Any) -> Iterator[World]:
    clock = Clock()
    core = memory_core(tmp_path, clock)
    store = core.store
    run = _LOOP.run_until_complete
    run(core.keys.ensure_keys())
    client = dataclasses.replace(CLIENT, created_at=clock.now, updated_at=clock.now)
    client.secret_hash = keyed_hash(core.server_key, SECRET)
    run(store.save_client(client))
    user = User(id="u_alice", username="alice", password_hash="x", name="Alice", created_at=clock.now)
    run(store.save_user(user))
    # Signed in with password and an authenticator app: strong customer authentication (docs/sca.md).
    session = Session(
        id_hash="h" * 43,
        user_id=user.id,
        auth_time=clock.now,
        expires_at=clock.now + 3600,
        amr=["pwd", "otp", "mfa"],
    )
    run(store.create_session(session))
    run(store.save_consent(user.id, CLIENT.client_id, frozenset({"openid"}), clock.now))
    yield World(core, clock, user, session)


def _basic() -> dict[str, str]:
    raw = f"{CLIENT.client_id}:{SECRET}".encode()
    return {**FORM, "authorization": "Basic " + base64.b64encode(raw).decode()}


def _post(path: str, params: dict[str, str]) -> HttpRequest:
    return HttpRequest("POST", path, _basic(), body=urlencode(params).encode())


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _par(w: World, challenge: str) -> HttpResponse:
    params = {
        "response_type": "code",
        "client_id": CLIENT.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return w.run(par_endpoint(w.core, _post("/par", params)))


def _authorize(w: World, request_uri: str) -> str:
    query = urlencode({"client_id": CLIENT.client_id, "request_uri": request_uri}).encode()
    req, _client = w.run(parse_request(w.core, query))
    outcome = w.run(flow.start(w.core, req, w.session, "browser-hash"))
    assert isinstance(outcome, flow.Redirect), outcome  # remembered consent, live session
    assert outcome.url.startswith(REDIRECT + "?")
    answer = parse_qs(urlsplit(outcome.url).query)
    assert answer["iss"] == ["https://as.example.com"] and answer["state"] == ["st"]  # RFC 9207 §2
    return answer["code"][0]


def _token(w: World, code: str, verifier: str) -> HttpResponse:
    params = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    resp, _client = w.run(token_endpoint(w.core, _post("/token", params)))
    return resp


def test_par_authorize_token_on_the_memory_store(world: World) -> None:
    verifier, challenge = _pkce()
    pushed = _par(world, challenge)
    assert pushed.status == 201 and pushed.json["expires_in"] == world.core.settings.par_ttl  # RFC 9126 §2.2
    code = _authorize(world, pushed.json["request_uri"])
    resp = _token(world, code, verifier)
    assert resp.status == 200, resp.json
    assert resp.json["token_type"] in ("Bearer", "DPoP") and resp.json["access_token"] and resp.json["id_token"]
    assert resp.headers["Cache-Control"] == "no-store"  # RFC 6749 §5.1


def test_rfc6749_4_1_2_a_code_is_redeemed_once_and_reuse_after_the_retry_grace_fails(world: World) -> None:
    """Within `token_retry_grace_seconds` the same client with the same verifier gets the same answer
    (a lost answer retried); after it, the code is spent: invalid_grant (RFC 6749 §4.1.2, RFC 9700
    §4.5.3)."""
    verifier, challenge = _pkce()
    code = _authorize(world, _par(world, challenge).json["request_uri"])
    first = _token(world, code, verifier)
    assert first.status == 200
    world.clock.now += world.core.settings.token_retry_grace_seconds - 1
    retried = _token(world, code, verifier)
    assert retried.status == 200 and retried.json["access_token"] == first.json["access_token"]
    world.clock.now += 2
    again = _token(world, code, verifier)
    assert again.status == 400 and again.json["error"] == "invalid_grant"


def test_rfc7636_4_6_wrong_verifier_is_invalid_grant(world: World) -> None:
    _verifier, challenge = _pkce()
    code = _authorize(world, _par(world, challenge).json["request_uri"])
    resp = _token(world, code, secrets.token_urlsafe(48))
    assert resp.status == 400 and resp.json["error"] == "invalid_grant"


@pytest.mark.parametrize("late", [False, True], ids=["last_second", "one_second_late"])
def test_fapi2_sp_5_3_2_1_code_lifetime_on_the_clock(world: World, late: bool) -> None:
    """FAPI 2.0 SP 5.3.2.1-14 / RFC 6749 §4.1.2: a code lives at most `code_ttl` (≤ 60 s)."""
    verifier, challenge = _pkce()
    code = _authorize(world, _par(world, challenge).json["request_uri"])
    world.clock.now += world.core.settings.code_ttl + (1 if late else -1)
    resp = _token(world, code, verifier)
    if late:
        assert resp.status == 400 and resp.json["error"] == "invalid_grant"
    else:
        assert resp.status == 200, resp.json


@pytest.mark.parametrize("late", [False, True], ids=["last_second", "one_second_late"])
def test_rfc9126_2_2_request_uri_lifetime_on_the_clock(world: World, late: bool) -> None:
    _verifier, challenge = _pkce()
    request_uri = _par(world, challenge).json["request_uri"]
    world.clock.now += world.core.settings.par_ttl + (1 if late else -1)
    if late:
        query = urlencode({"client_id": CLIENT.client_id, "request_uri": request_uri}).encode()
        with pytest.raises(PageError) as info:
            world.run(parse_request(world.core, query))
        assert info.value.error == "invalid_request_uri"
    else:
        assert _authorize(world, request_uri)


def test_rfc9126_2_2_request_uri_is_used_once(world: World) -> None:
    _verifier, challenge = _pkce()
    request_uri = _par(world, challenge).json["request_uri"]
    assert _authorize(world, request_uri)
    query = urlencode({"client_id": CLIENT.client_id, "request_uri": request_uri}).encode()
    with pytest.raises(PageError) as info:
        world.run(parse_request(world.core, query))
    assert info.value.error == "invalid_request_uri"
