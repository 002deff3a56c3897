"""JARM §2.3.3 `form_post.jwt` in a real browser: the response page posts the signed response to
the redirect URI by itself under the page's Content-Security-Policy (script allowed by hash only),
and without JavaScript a person does it with one click. The client receives the JWT in the body,
with no Referer header (the response must not leak)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from browserkit import Person, Sites, sign_in, start_authorization
from joserfc import jws, jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser, Page, expect
from support.server import Server

pytestmark = pytest.mark.jarm


def _received(server: Server, sites: Sites, redirect_uri: str, state: str) -> dict:
    with server.client() as http:
        keys = KeySet.import_key_set(http.get("/jwks").json())
    posts = [h for h in sites.hits("/callback") if h.method == "POST" and "response" in h.form]
    for hit in posts:  # the callback site is shared by the whole session: find this flow's response
        if json.loads(jws.extract_compact(hit.form["response"].encode()).payload).get("state") != state:
            continue
        claims = jwt.decode(hit.form["response"], keys).claims
        if claims.get("state") == state:
            assert hit.referer is None, hit.referer
            assert hit.query == {}  # nothing in the URL
            return claims
    raise AssertionError(f"no form_post.jwt response with state {state} among {len(posts)} POSTs")


def test_jarm_s2_3_3_form_post_jwt_submits_itself_under_csp(
    server: Server, page: Page, sites: Sites, person: Person
) -> None:
    """With JavaScript: the page submits the form at once; the CSP hash allows exactly its script
    (a CSP violation would leave the browser on our page)."""
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    redirect_uri = sites.callback()
    started = start_authorization(page, redirect_uri, response_mode="form_post.jwt")
    sign_in(page, person)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(redirect_uri)
    expect(page.get_by_role("heading", level=1)).to_have_text("client received the response")
    claims = _received(server, sites, redirect_uri, started.state)
    assert claims["aud"] == "demo-native" and claims["iss"] == server.issuer and claims["code"]
    assert violations == []


@pytest.fixture
def no_js_page(chromium: Browser, server: Server) -> Iterator[Page]:
    ctx = chromium.new_context(ignore_https_errors=True, base_url=server.base_url, java_script_enabled=False)
    ctx.set_default_timeout(10_000)
    yield ctx.new_page()
    ctx.close()


def test_jarm_s2_3_3_form_post_jwt_without_javascript(
    no_js_page: Page, server: Server, sites: Sites, person: Person
) -> None:
    """Without JavaScript the page shows a Continue button that posts the same form."""
    page = no_js_page
    redirect_uri = sites.callback()
    started = start_authorization(page, redirect_uri, response_mode="form_post.jwt")
    sign_in(page, person)
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Returning you to the application")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(redirect_uri)
    claims = _received(server, sites, redirect_uri, started.state)
    assert claims["code"] and claims["state"] == started.state
