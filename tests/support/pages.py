"""A browser at the server's forms: the cookies it holds and the CSRF token of the page it shows, for
the sign-in and consent steps of a parked authorization request, sign-out and the customer's own pages.
Tests that send their own (or generated) form bodies use these to get past the CSRF check."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from .demo import NATIVE, NATIVE_REDIRECT
from .flow import CSRF, login, pkce_pair, run_flow
from .server import DEMO_PASSWORD, Server


@dataclass(frozen=True)
class Form:
    cookies: dict[str, str]
    csrf: str
    path: str  # where the form posts

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())


def authorize_query(**extra: str) -> dict[str, str]:
    """A valid authorization request of the native demo app (PKCE S256)."""
    _, challenge = pkce_pair()
    return {
        "response_type": "code",
        "client_id": NATIVE,
        "redirect_uri": NATIVE_REDIRECT,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def _csrf(page: httpx.Response) -> str:
    assert page.status_code == 200, (page.status_code, page.text[:300])
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


def interaction(server: Server, signed_in: bool = False) -> tuple[str, Form]:
    """A parked authorization request: its id and the form its page shows (sign-in; or, signed in as
    alice, consent: prompt=consent always asks)."""
    with server.client(follow_redirects=False) as browser:
        resp = browser.get("/authorize?" + urlencode(authorize_query(prompt="consent")))
        assert resp.status_code == 303 and resp.headers["location"].startswith("/interaction/"), resp.text
        iid = resp.headers["location"].split("/")[2]
        page = browser.get(f"/interaction/{iid}")
        if signed_in:
            assert login(browser, page, "alice", DEMO_PASSWORD).status_code == 303
            page = browser.get(f"/interaction/{iid}")
            assert 'name="decision"' in page.text
        csrf = _csrf(page)
        step = "consent" if signed_in else "login"
        return iid, Form(dict(browser.cookies.items()), csrf, f"/interaction/{iid}/{step}")


def browser_form(server: Server, path: str, action: str | None = None, sign_in: bool = False) -> Form:
    """The form of the page at `path` (posting to `action`, default `path`). With `sign_in`: signed in to
    the customer's own pages as bob, with an app connected so that the connections page has a form."""
    with server.client(follow_redirects=False) as browser:
        if sign_in:
            page = browser.get("/account/login")
            resp = browser.post(
                "/account/login", data={"username": "bob", "password": DEMO_PASSWORD, "csrf_token": _csrf(page)}
            )
            assert resp.status_code == 303, resp.text
            assert run_flow(browser, NATIVE, NATIVE_REDIRECT, username="bob").code
        csrf = _csrf(browser.get(path))
        return Form(dict(browser.cookies.items()), csrf, action or path)
