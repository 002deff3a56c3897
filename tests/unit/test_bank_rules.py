"""The bank resource server's rules without a server: token validation against a stand-in
authorization server (RFC 8414 metadata, JWKS, RFC 7662 introspection served by
httpx.MockTransport — from the bank's point of view the AS is an outside party reached over HTTP),
the consent rules (access.py), the interaction headers and the bank settings."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import secrets
import time
from typing import Any

import httpx
import orjson
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OctKey
from support.clock import Clock, set_clock

from fingrade.bank import access
from fingrade.bank import trust as trust_module
from fingrade.bank.fapi_headers import auth_date, customer_ip, interaction_id
from fingrade.bank.trust import AsTrust
from fingrade.config import ConfigError, load_settings
from fingrade.protocol.errors import OAuthError

pytestmark = pytest.mark.bank

ISSUER = "https://as.example.com"
AUD = "https://bank.example.com/bank/v1"


class StandInAS:
    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", parameters={"kid": "k1", "use": "sig"}, private=True)
        self.published = [self.key]
        self.jwks_fetches = 0
        self.introspections = 0
        self.active = True
        self.meta_issuer = ISSUER
        self.introspection_status = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/oauth-authorization-server":
            return httpx.Response(
                200,
                json={
                    "issuer": self.meta_issuer,
                    "jwks_uri": ISSUER + "/jwks",
                    "introspection_endpoint": ISSUER + "/introspect",
                },
            )
        if path == "/jwks":
            self.jwks_fetches += 1
            return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.published]})
        if path == "/introspect":
            self.introspections += 1
            assert request.headers["authorization"].startswith("Basic ")
            if self.introspection_status != 200:
                return httpx.Response(self.introspection_status, json={"error": "server_error"})
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            if not self.active:
                return httpx.Response(200, json={"active": False})
            token = form["token"]
            claims = orjson.loads(jws.extract_compact(token.encode()).payload)
            return httpx.Response(200, json={"active": True, "jti": claims["jti"], "sub": claims["sub"]})
        return httpx.Response(404)

    def token(self, key: Any = None, header: dict[str, Any] | None = None, **over: Any) -> str:
        key = key or self.key
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUD,
            "sub": "u_1",
            "client_id": "c_1",
            "jti": secrets.token_hex(8),
            "iat": now,
            "exp": now + 300,
            "scope": "accounts",
        }
        claims.update(over)
        claims = {k: v for k, v in claims.items() if v is not None}
        head = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid, **(header or {})}
        return jws.serialize_compact(head, orjson.dumps(claims), key, algorithms=[head["alg"]])


def trust_for(stand_in: StandInAS, cache: float = 0.0, refresh: float = 10.0) -> AsTrust:
    http = httpx.AsyncClient(transport=httpx.MockTransport(stand_in.handler))
    return AsTrust(
        http,
        issuer=ISSUER,
        audience=AUD,
        client_id="rs",
        client_secret="s3cret",
        cache_seconds=cache,
        jwks_refresh_seconds=refresh,
        clock=lambda: int(time.time()),
    )


def verify(trust: AsTrust, token: str) -> dict[str, Any]:
    return asyncio.run(trust.verify(token))


def refused(trust: AsTrust, token: str, error: str = "invalid_token") -> str:
    with pytest.raises(OAuthError) as info:
        verify(trust, token)
    assert info.value.error == error
    return info.value.description


def test_rfc9068_4_valid_token_accepted() -> None:
    s = StandInAS()
    assert verify(trust_for(s), s.token())["sub"] == "u_1"


@pytest.mark.parametrize(
    "over,desc",
    [
        ({"iss": "https://other.example.com"}, "not issued by the trusted"),
        ({"aud": "https://other.example.com"}, "not issued for this API"),
        ({"aud": ["https://x.example", AUD]}, None),
        ({"exp": -10}, "expired"),
        ({"exp": -2}, None),  # within the leeway
        ({"exp": None}, "expired"),
        ({"nbf": 60}, "not valid yet"),
        ({"iat": 60}, "in the future"),
        ({"sub": None}, "no sub"),
        ({"client_id": None}, "no client_id"),
    ],
)
def test_rfc9068_4_claims(over: dict[str, Any], desc: str | None) -> None:
    """RFC 9068 §4; times are seconds from now (made when the test runs, not when it is collected)."""
    s = StandInAS()
    now = int(time.time())
    over = {k: (now + v if k in ("exp", "nbf", "iat") and isinstance(v, int) else v) for k, v in over.items()}
    token = s.token(**over)
    if desc is None:
        verify(trust_for(s), token)
    else:
        assert desc in refused(trust_for(s), token)


def test_rfc9068_4_typ_must_be_at_jwt() -> None:
    s = StandInAS()
    assert "not an access token" in refused(trust_for(s), s.token(header={"typ": "JWT"}))


def test_fapi2_sp_5_4_1_symmetric_and_none_algs_refused() -> None:
    s = StandInAS()
    oct_key = OctKey.generate_key(256, parameters={"kid": "k1"})
    hs = s.token(key=oct_key, header={"alg": "HS256"})
    assert "algorithm" in refused(trust_for(s), hs)
    _head, body, _sig = s.token().split(".")
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt","kid":"k1"}').rstrip(b"=").decode()
    assert refused(trust_for(s), f"{none_head}.{body}.")


def test_signature_by_unknown_key_refused_after_one_refresh() -> None:
    s = StandInAS()
    trust = trust_for(s, refresh=60)
    verify(trust, s.token())
    assert s.jwks_fetches == 1
    stranger = ECKey.generate_key("P-256", parameters={"kid": "k9"}, private=True)
    assert "unknown key" in refused(trust, s.token(key=stranger))
    assert "unknown key" in refused(trust, s.token(key=stranger))
    assert s.jwks_fetches == 1  # rate-limited: the refresh interval has not passed


def test_unknown_kid_refreshes_jwks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new kid is fetched once the refresh limit (jwks_refresh_seconds) has passed; the trust's
    monotonic clock is a test clock, moved instead of waited for."""
    clock = Clock()
    clock.freeze()
    set_clock(monkeypatch, clock, (trust_module,))
    s = StandInAS()
    trust = trust_for(s, refresh=10)
    verify(trust, s.token())
    new = ECKey.generate_key("P-256", parameters={"kid": "k2", "use": "sig"}, private=True)
    s.published = [s.key, new]
    clock.advance(9)
    assert "unknown key" in refused(trust, s.token(key=new))
    assert s.jwks_fetches == 1
    clock.advance(1)
    verify(trust, s.token(key=new))
    assert s.jwks_fetches == 2


def test_forged_kid_with_wrong_key_refused() -> None:
    s = StandInAS()
    attacker = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    assert "signature" in refused(trust_for(s), s.token(key=attacker))


def test_rfc7662_inactive_token_refused_and_not_cached() -> None:
    s = StandInAS()
    trust = trust_for(s, cache=30)
    token = s.token()
    verify(trust, token)
    verify(trust, token)
    assert s.introspections == 1  # positive answers cached
    s.active = False
    other = s.token()
    refused(trust, other)
    refused(trust, other)
    assert s.introspections == 3  # negative answers never cached


def test_rfc7662_cache_0_always_introspects() -> None:
    s = StandInAS()
    trust = trust_for(s, cache=0)
    token = s.token()
    verify(trust, token)
    s.active = False
    refused(trust, token)


def test_as_unreachable_or_failing_fails_closed() -> None:
    s = StandInAS()
    s.introspection_status = 500
    assert refused(trust_for(s), s.token(), "temporarily_unavailable")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    trust = AsTrust(
        httpx.AsyncClient(transport=httpx.MockTransport(down)),
        issuer=ISSUER,
        audience=AUD,
        client_id="rs",
        client_secret="x",
        cache_seconds=0,
        jwks_refresh_seconds=1,
        clock=lambda: 0,
    )
    refused(trust, s.token(), "temporarily_unavailable")


def test_rfc8414_3_3_metadata_issuer_must_match() -> None:
    s = StandInAS()
    s.meta_issuer = "https://evil.example.com"
    refused(trust_for(s), s.token(), "temporarily_unavailable")


# -- consent rules ----------------------------------------------------------------------------------


def _later(days: int = 10) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_rfc9396_no_account_information_is_insufficient_scope() -> None:
    for claims in ({}, {"authorization_details": [{"type": "payment_initiation"}]}):
        with pytest.raises(OAuthError) as info:
            access.grants(claims, int(time.time()))
        assert info.value.error == "insufficient_scope" and info.value.status == 403


def test_rfc9396_expired_consent_is_invalid_token() -> None:
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    claims = {"authorization_details": [{"type": "account_information", "actions": ["accounts"], "expires_at": past}]}
    with pytest.raises(OAuthError) as info:
        access.grants(claims, int(time.time()))
    assert info.value.error == "invalid_token"


def test_rfc9396_accounts_and_actions() -> None:
    claims = {
        "authorization_details": [
            {
                "type": "account_information",
                "actions": ["balances"],
                "expires_at": _later(),
                "accounts": [{"iban": "GB11FING00000012345678"}, {"sortCodeAccountNumber": "00000087654321"}],
            }
        ]
    }
    grants = access.grants(claims, int(time.time()))
    assert access.visible(grants, "GB11FING00000012345678")
    assert access.visible(grants, "GB22FING00000087654321")  # by sort code and account number
    assert not access.visible(grants, "DE89370400440532013000")
    with pytest.raises(OAuthError):
        access.require_action(grants, "transactions")
    assert access.require_action(grants, "balances")


def test_rfc9396_booking_window_intersects_granted_dates() -> None:
    grant = access.AccountAccess(frozenset({"transactions"}), None, dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    lo = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
    hi = int(dt.datetime(2026, 1, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp())
    assert access.booking_window(grant, None, None) == (lo, hi)
    assert access.booking_window(grant, lo - 999, hi + 999) == (lo, hi)
    assert access.booking_window(grant, lo + 5, hi - 5) == (lo + 5, hi - 5)


# -- interaction headers ----------------------------------------------------------------------------


def test_fapi_interaction_id() -> None:
    sent = "8e3f8bc8-6d0f-4c7a-9d3e-2b7d7a0b1c2d"
    assert interaction_id(sent) == sent
    for bad in (None, "", "abc", sent + "\r\nx: y", sent[:-1]):
        made = interaction_id(bad)
        assert made != bad and len(made) == 36


def test_fapi_customer_ip_and_auth_date() -> None:
    assert customer_ip("192.0.2.7") == "192.0.2.7"
    assert auth_date("Sun, 10 Sep 2017 19:43:31 GMT")
    for bad in ("192.0.2", "example.com"):
        with pytest.raises(OAuthError):
            customer_ip(bad)
    for bad in ("10 Sep 2017", "Sun, 10 Sep 2017 19:43:31 +0000", "Sun, 99 Sep 2017 19:43:31 GMT"):
        with pytest.raises(OAuthError):
            auth_date(bad)


# -- settings ---------------------------------------------------------------------------------------


def test_bank_settings() -> None:
    s = load_settings(overrides={}, environ={})
    assert s.role == "all" and s.bank_url == s.issuer + "/bank/v1" and s.bank_issuer == s.issuer
    assert s.bank_audience == s.issuer  # the AS's default aud
    with pytest.raises(ConfigError, match="bank_issuer"):
        load_settings(overrides={"role": "bank"}, environ={})
    with pytest.raises(ConfigError, match="bank_client_id"):
        load_settings(overrides={"role": "bank", "bank_issuer": "https://as.example.com"}, environ={})
    with pytest.raises(ConfigError, match="role"):
        load_settings(overrides={"role": "both"}, environ={})
    with pytest.raises(ConfigError, match="bank_introspection_cache_seconds"):
        load_settings(overrides={"bank_introspection_cache_seconds": 600}, environ={})
    s = load_settings(overrides={"access_token_audience": AUD}, environ={})
    assert s.bank_audience == AUD


def test_roles_mount_the_bank_api_only_in_role_all() -> None:
    """`serve --role as` serves no bank API; role all mounts it at /bank/v1; role bank serves only it."""
    from starlette.routing import Mount

    from fingrade.bank.server import create_bank_server
    from fingrade.web.app import create_app

    def mounts(app) -> set[str]:
        return {r.path for r in app.routes if isinstance(r, Mount)}

    assert "/bank/v1" in mounts(create_app(load_settings(overrides={}, environ={})))
    assert "/bank/v1" not in mounts(create_app(load_settings(overrides={"role": "as"}, environ={})))
    bank_only = create_bank_server(
        load_settings(
            overrides={"role": "bank", "bank_issuer": ISSUER, "bank_client_id": "rs", "bank_client_secret": "x"},
            environ={},
        )
    )
    assert mounts(bank_only) == {"/bank/v1"}
    assert not any(getattr(r, "path", "") == "/token" for r in bank_only.routes)
