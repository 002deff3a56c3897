"""How a refusal must look: the error answers of the token and back-channel endpoints (RFC 6749
§5.2), of protected resources (RFC 6750 §3) and of the browser endpoints (an error page, never a
redirect to an untrusted URI)."""

from __future__ import annotations

import re

import httpx


def assert_oauth_error(resp: httpx.Response, error: str, status: int = 400) -> None:
    """RFC 6749 §5.2: the status, a JSON body with `error`, and no caching."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"] == error, resp.text[:300]
    assert resp.headers.get("cache-control") == "no-store"


def assert_bearer_refused(resp: httpx.Response) -> None:
    """RFC 6750 §3.1: 401 invalid_token with a Bearer challenge that says so."""
    assert resp.status_code == 401, (resp.status_code, resp.text[:300])
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert resp.json()["error"] == "invalid_token"


def assert_error_page(resp: httpx.Response, status: int = 400) -> None:
    """RFC 6749 §4.1.2.1, RFC 9700 §4.11: an untrusted redirect URI gets a page, never a redirect."""
    assert resp.status_code == status, (resp.status_code, resp.headers.get("location"), resp.text[:300])
    assert "location" not in resp.headers
    assert resp.headers["content-type"].startswith("text/html")


def www_authenticate(resp: httpx.Response) -> dict[str, str]:
    """Parse `Bearer k="v", ...` into {"scheme": "bearer", k: v}."""
    header = resp.headers["www-authenticate"]
    scheme, _, rest = header.partition(" ")
    out = {"scheme": scheme.lower()}
    out.update(dict(re.findall(r'(\w+)="([^"]*)"', rest)))
    return out
