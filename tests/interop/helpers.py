"""Helpers for the interop tests. The user's part of each flow (login and consent) is done with our own
flow helpers on a cookie-keeping httpx client, as a browser would; everything else is done by the
third-party client."""

from __future__ import annotations

from pathlib import Path

import httpx

from support.flow import consent, follow_to_client, login
from support.server import DEMO_PASSWORD

NODE_DIR = Path(__file__).parent / "node"


def user_part(browser: httpx.Client, url: str, redirect_uri: str, username: str = "alice",
              decision: str = "approve") -> str:
    """What the user does between the client's authorization URL and the redirect back to it:
    log in and consent. Returns the callback URL (the Location of the redirect to the client)."""
    prefix = redirect_uri.split("?")[0]
    resp = follow_to_client(browser, browser.get(url), prefix)
    if resp.status_code == 200 and 'name="password"' in resp.text:
        resp = login(browser, resp, username, DEMO_PASSWORD)
        assert resp.status_code == 303, resp.text[:500]
        resp = follow_to_client(browser, resp, prefix)
    if resp.status_code == 200 and 'name="decision"' in resp.text:
        resp = consent(browser, resp, decision)
    elif decision != "approve":
        raise AssertionError("no consent page was shown, so the user could not deny (remembered consent?)")
    assert resp.status_code == 303, (resp.status_code, resp.text[:500])
    location = resp.headers["location"]
    assert location.startswith(prefix), location
    return location
