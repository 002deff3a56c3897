"""Drive the authorization code flow like a browser would (without JavaScript), with httpx."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from .server import DEMO_PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class Authorized:
    code: str | None
    params: dict[str, str]
    verifier: str
    redirect_uri: str
    location: str
    jarm: dict | None = None  # the verified claims of a JARM response (support.fapi.FapiClient.authorize)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def authorize_url(
    client_id: str, redirect_uri: str, challenge: str | None, scope: str = "openid profile", **extra: str
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": secrets.token_urlsafe(8),
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return "/authorize?" + urlencode(params)


def login(browser: httpx.Client, page: httpx.Response, username: str, password: str) -> httpx.Response:
    """Submit the login form shown on `page` (a response of GET /interaction/<id>)."""
    csrf = CSRF.search(page.text).group(1)
    action = re.search(r'action="(/interaction/[^"]+/login)"', page.text).group(1)
    return browser.post(action, data={"username": username, "password": password, "csrf_token": csrf})


CHOICE = re.compile(r'<input type="(?:checkbox|radio)"[^>]*?name="([^"]+)"\s+value="([^"]+)"([^>]*)>', re.S)


def checked_choices(page: str) -> dict[str, str]:
    """The account choices a browser would submit as the page stands (the ticked boxes, the chosen radio)."""
    return {name: value for name, value, rest in CHOICE.findall(page) if "checked" in rest}


def consent(
    browser: httpx.Client, page: httpx.Response, decision: str = "approve", choices: dict[str, str] | None = None
) -> httpx.Response:
    """Submit the consent form as a browser would: with the account choices as ticked on the page
    unless `choices` says otherwise."""
    csrf = CSRF.search(page.text).group(1)
    action = re.search(r'action="(/interaction/[^"]+/consent)"', page.text).group(1)
    data = {"decision": decision, "csrf_token": csrf}
    data.update(checked_choices(page.text) if choices is None else choices)
    return browser.post(action, data=data)


def follow_to_client(browser: httpx.Client, resp: httpx.Response, redirect_prefix: str) -> httpx.Response:
    """Follow our own redirects until one leaves for the client's redirect URI."""
    for _ in range(5):
        if resp.status_code not in (302, 303):
            return resp
        location = resp.headers["location"]
        if location.startswith(redirect_prefix):
            return resp
        resp = browser.get(location)
    return resp


def run_flow(
    browser: httpx.Client,
    client_id: str,
    redirect_uri: str,
    username: str = "alice",
    password: str | None = None,
    scope: str = "openid profile",
    challenge: bool = True,
    decision: str = "approve",
    **extra: str,
) -> Authorized:
    """Authorization request -> login (if needed) -> consent (if needed) -> redirect back."""
    verifier, chal = pkce_pair()
    resp = browser.get(authorize_url(client_id, redirect_uri, chal if challenge else None, scope, **extra))
    resp = follow_to_client(browser, resp, redirect_uri.split("?")[0])
    if resp.status_code == 200 and 'name="password"' in resp.text:
        resp = login(browser, resp, username, password or DEMO_PASSWORD)
        assert resp.status_code == 303, resp.text[:500]
        resp = follow_to_client(browser, resp, redirect_uri.split("?")[0])
    if resp.status_code == 200 and 'name="decision"' in resp.text:
        resp = consent(browser, resp, decision)
    assert resp.status_code == 303, (resp.status_code, resp.text[:500])
    location = resp.headers["location"]
    params = query_of(location)
    return Authorized(
        code=params.get("code"), params=params, verifier=verifier, redirect_uri=redirect_uri, location=location
    )


@dataclass
class Steps:
    """What a browser saw on its way through one authorization request."""

    saw_login: bool
    saw_consent: bool
    result: Authorized


def authorize_steps(
    browser: httpx.Client,
    client_id: str,
    redirect_uri: str,
    scope: str = "openid",
    username: str = "alice",
    password: str = DEMO_PASSWORD,
    decision: str = "approve",
    **extra: str,
) -> Steps:
    """Like `run_flow`, but records whether a login form and a consent page were shown."""
    verifier, challenge = pkce_pair()
    resp = browser.get(authorize_url(client_id, redirect_uri, challenge, scope, **extra))
    resp = follow_to_client(browser, resp, redirect_uri)
    saw_login = saw_consent = False
    if resp.status_code == 200 and 'name="password"' in resp.text:
        saw_login = True
        resp = follow_to_client(browser, login(browser, resp, username, password), redirect_uri)
    if resp.status_code == 200 and 'name="decision"' in resp.text:
        saw_consent = True
        resp = consent(browser, resp, decision)
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    location = resp.headers["location"]
    assert location.startswith(redirect_uri), location
    params = query_of(location)
    return Steps(
        saw_login,
        saw_consent,
        Authorized(
            code=params.get("code"), params=params, verifier=verifier, redirect_uri=redirect_uri, location=location
        ),
    )
