"""Pushed authorization requests (RFC 9126) on a real core with a controlled clock: request_uri
expiry (§2.2), client binding (§2.2, §4), the PAR requirement (§5, §6), the setting bounds (FAPI 2.0
SP 5.3.2.2-12) and the client metadata (§6)."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any
from urllib.parse import urlencode

import pytest

from fingrade.config import ConfigError, Settings, load_settings
from fingrade.oauth.authorize import PAR_PREFIX, PageError, RedirectError, parse_request
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client
from fingrade.oauth.par import par_endpoint
from fingrade.oauth.profiles import par_required
from fingrade.oauth.registration import build_client
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.http import HttpRequest

pytestmark = pytest.mark.par

NOW = 1_800_000_000
REDIRECT = "http://127.0.0.1/callback"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def core(base_core: Core, clock: Clock) -> Core:
    return dataclasses.replace(base_core, clock=clock)


def _native(core: Core, run: Any) -> Client:
    client, _ = build_client(
        core,
        {
            "client_name": "PAR native",
            "security_profile": "native",
            "redirect_uris": [REDIRECT],
            "scope": "openid profile",
        },
    )
    client.client_id = "par-" + secrets.token_hex(4)
    run(core.store.save_client(client))
    return client


def _push(core: Core, run: Any, client_id: str) -> str:
    body = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
        }
    ).encode()
    resp = run(
        par_endpoint(
            core, HttpRequest("POST", "/par", {"content-type": "application/x-www-form-urlencoded"}, body=body)
        )
    )
    assert resp.status == 201, resp.json
    assert resp.json["expires_in"] == core.settings.par_ttl
    return resp.json["request_uri"]


def _authorize(core: Core, run: Any, client_id: str, request_uri: str) -> Any:
    return run(parse_request(core, urlencode({"client_id": client_id, "request_uri": request_uri}).encode()))


def test_request_uri_expires_after_par_ttl(core: Core, clock: Clock, run: Any) -> None:
    """RFC 9126 §2.2: the request_uri is valid for expires_in seconds, then refused at /authorize."""
    client = _native(core, run)
    uri = _push(core, run, client.client_id)
    clock.now = NOW + core.settings.par_ttl - 1
    req, _ = _authorize(core, run, client.client_id, uri)
    assert req.redirect_uri == REDIRECT and req.pushed_key
    clock.now = NOW + core.settings.par_ttl
    with pytest.raises(PageError) as exc:
        _authorize(core, run, client.client_id, uri)
    assert exc.value.error == "invalid_request_uri"


def test_request_uri_is_bound_to_its_client(core: Core, run: Any) -> None:
    """RFC 9126 §2.2/§4: a request_uri presented with another client_id is refused (a page, not a redirect)."""
    a, b = _native(core, run), _native(core, run)
    uri = _push(core, run, a.client_id)
    with pytest.raises(PageError) as exc:
        _authorize(core, run, b.client_id, uri)
    assert exc.value.error == "invalid_request_uri"
    assert uri.startswith(PAR_PREFIX) and len(uri) - len(PAR_PREFIX) >= 22  # ≥ 128 bits of base64url


def test_url_request_uri_is_never_fetched(core: Core, run: Any) -> None:
    """RFC 9126 §4 and CVE-2020-10770: only our own URNs; a URL is refused without being fetched."""
    client = _native(core, run)
    with pytest.raises(PageError) as exc:
        _authorize(core, run, client.client_id, "http://127.0.0.1:1/request.jwt")
    assert exc.value.error == "request_uri_not_supported"


def test_required_par_refuses_a_plain_request(core: Core, run: Any) -> None:
    """RFC 9126 §4/§6: with require_pushed_authorization_requests the plain request fails with invalid_request."""
    client, _ = build_client(
        core,
        {
            "client_name": "PAR only",
            "security_profile": "native",
            "redirect_uris": [REDIRECT],
            "scope": "openid",
            "require_pushed_authorization_requests": True,
        },
    )
    run(core.store.save_client(client))
    query = urlencode(
        {
            "client_id": client.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "state": "s1",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
        }
    ).encode()
    with pytest.raises(RedirectError) as exc:
        run(parse_request(core, query))
    assert exc.value.error.error == "invalid_request" and exc.value.state == "s1"
    req, _ = _authorize(core, run, client.client_id, _push(core, run, client.client_id))
    assert req.pushed_key


def test_par_required_by_server_or_client() -> None:
    """RFC 9126 §5 (server-wide) and §6 (per client)."""
    client = Client("c", "native", "c", [REDIRECT], "none", ["authorization_code"], "openid")
    assert not par_required(Settings(), client)
    assert par_required(Settings(require_pushed_authorization_requests=True), client)
    client.metadata["require_pushed_authorization_requests"] = True
    assert par_required(Settings(), client)


def test_registration_metadata_must_be_boolean(core: Core) -> None:
    """RFC 9126 §6: require_pushed_authorization_requests is a boolean client metadata value."""
    meta = {"client_name": "x", "security_profile": "native", "redirect_uris": [REDIRECT], "scope": "openid"}
    client, _ = build_client(core, {**meta, "require_pushed_authorization_requests": True})
    assert client.metadata["require_pushed_authorization_requests"] is True
    with pytest.raises(OAuthError) as exc:
        build_client(core, {**meta, "require_pushed_authorization_requests": "yes"})
    assert exc.value.error == "invalid_client_metadata"


@pytest.mark.parametrize("ttl, ok", [(9, False), (10, True), (599, True), (600, False)])
def test_par_ttl_bounds(ttl: int, ok: bool, tmp_path: Any) -> None:
    """FAPI 2.0 SP 5.3.2.2-12: request_uri expires_in shall be < 600 s."""
    overrides = {"data_dir": str(tmp_path), "par_ttl": ttl}
    if ok:
        assert load_settings(overrides=overrides, environ={}).par_ttl == ttl
    else:
        with pytest.raises(ConfigError, match="par_ttl"):
            load_settings(overrides=overrides, environ={})
