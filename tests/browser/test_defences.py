"""What the browser must refuse: forged form posts from other origins (CSRF), framing (clickjacking),
cross-origin reads of the authorization endpoint (CORS); and the headers that make it refuse."""

from __future__ import annotations

import html
from urllib.parse import urlsplit

from browserkit import (
    Person,
    Recorder,
    Sites,
    Started,
    decide,
    on_consent_page,
    on_login_page,
    sign_in,
    start_authorization,
)
from playwright.sync_api import BrowserContext, Page, expect
from support.flow import authorize_url, pkce_pair
from support.server import Server


def forged_post(action: str, fields: dict[str, str]) -> str:
    """An attacker's page that submits a form to `action` as soon as it loads."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in fields.items()
    )
    return (
        f'<!doctype html><title>win a prize</title><form id="f" method="post" action="{html.escape(action)}">'
        f'{inputs}</form><script>document.getElementById("f").submit()</script>'
    )


def at_consent(page: Page, sites: Sites, person: Person) -> tuple[Started, str]:
    """The victim has signed in and sits on the consent page; returns the interaction id."""
    started = start_authorization(page, sites.callback())
    sign_in(page, person)
    assert on_consent_page(page)
    return started, urlsplit(page.url).path.rsplit("/", 1)[1]


def code_arrived(sites: Sites, started: Started) -> bool:
    return any(h.query.get("state") == started.state and "code" in h.query for h in sites.hits("/callback"))


# -- CSRF ------------------------------------------------------------------------------------------


def test_forged_consent_from_same_site_page_is_refused(
    server: Server, context: BrowserContext, page: Page, sites: Sites, person: Person
) -> None:
    """RFC 6749 §10.12: the AS MUST protect its own endpoints against CSRF, so no client obtains
    authorization without the user's explicit consent. A page on another origin of the same site
    (https://localhost:<other port>) gets the SameSite=Lax cookies sent along; only the CSRF token
    stops it: missing or wrong token -> 403, no code, and the real consent still works afterwards."""
    started, iid = at_consent(page, sites, person)
    attacker = context.new_page()
    action = f"{server.base_url}/interaction/{iid}/consent"
    for fields in ({"decision": "approve"}, {"decision": "approve", "csrf_token": "0" * 64}):
        with attacker.expect_response(lambda r: r.url == action) as info:
            attacker.goto(sites.same_site_page(forged_post(action, fields)))
        resp = info.value
        assert resp.request.method == "POST"
        assert "__Host-fg_browser=" in resp.request.all_headers().get("cookie", "")  # the cookies did go
        assert resp.status == 403, fields
        expect(attacker.get_by_role("alert")).to_contain_text("The form has expired")
    assert not code_arrived(sites, started)
    # The user's own click still completes the same request: the forgeries consumed nothing.
    params = decide(page, "Allow", started.redirect_uri)
    assert params["state"] == started.state and params["code"]


def test_forged_consent_from_cross_site_page_gets_no_cookies_and_no_code(
    server: Server, context: BrowserContext, page: Page, sites: Sites, person: Person
) -> None:
    """RFC 6749 §10.12; RFC 6265bis §8.8 (SameSite=Lax): from another site (http://127.0.0.1) the browser
    withholds the cookies on a POST, so the server cannot even tie the post to a sign-in: refused, no code."""
    started, iid = at_consent(page, sites, person)
    attacker = context.new_page()
    action = f"{server.base_url}/interaction/{iid}/consent"
    with attacker.expect_response(lambda r: r.url == action) as info:
        attacker.goto(sites.cross_site_page(forged_post(action, {"decision": "approve"})))
    resp = info.value
    assert "cookie" not in resp.request.all_headers()
    assert resp.status == 400
    expect(attacker.get_by_role("alert")).to_contain_text("expired or was already completed")
    assert not code_arrived(sites, started)
    assert decide(page, "Allow", started.redirect_uri)["code"]


def test_forged_login_is_refused(
    server: Server, context: BrowserContext, page: Page, sites: Sites, person: Person
) -> None:
    """Login CSRF (RFC 6749 §10.12: CSRF tokens on every form): a same-site page that posts the
    attacker's credentials into the victim's sign-in gets 403 and no session cookie is set."""
    start_authorization(page, sites.callback())
    assert on_login_page(page)
    iid = urlsplit(page.url).path.rsplit("/", 1)[1]
    attacker = context.new_page()
    action = f"{server.base_url}/interaction/{iid}/login"
    with attacker.expect_response(lambda r: r.url == action) as info:
        attacker.goto(
            sites.same_site_page(forged_post(action, {"username": person.username, "password": person.password}))
        )
    assert info.value.status == 403
    assert "__Host-fg_session" not in {c["name"] for c in context.cookies()}


# -- framing -----------------------------------------------------------------------------------------


def test_login_page_refuses_to_be_framed(server: Server, context: BrowserContext, page: Page, sites: Sites) -> None:
    """RFC 9700 §4.16 (clickjacking): CSP frame-ancestors 'none' and X-Frame-Options: DENY, and Chromium
    does not render the login page inside another origin's frame, even one of the same site that gets the
    cookies. A frame of the attacker's own page next to it renders, so the check can see a frame."""
    start_authorization(page, sites.callback())
    assert on_login_page(page)
    login_url = page.url
    decoy = sites.same_site_page('<!doctype html><title>decoy</title><input name="password" type="password">')
    evil = sites.same_site_page(
        f"<!doctype html><title>free money</title>"
        f'<iframe id="bank" src="{html.escape(login_url)}" width="600" height="600"></iframe>'
        f'<iframe id="decoy" src="{html.escape(decoy)}"></iframe>'
    )
    attacker = context.new_page()
    console: list[str] = []
    attacker.on("console", lambda m: console.append(m.text))
    with attacker.expect_response(lambda r: r.url == login_url) as info:
        attacker.goto(evil)
    framed = info.value
    # The server did answer with the login page (the frame was allowed to ask), with both headers.
    assert framed.status == 200
    headers = framed.all_headers()
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    attacker.wait_for_load_state("load")
    bank = attacker.frame_locator("#bank")
    expect(attacker.frame_locator("#decoy").locator('input[name="password"]')).to_have_count(1)
    expect(bank.locator('input[name="password"]')).to_have_count(0)
    expect(bank.locator("form")).to_have_count(0)
    frame_urls = [f.url for f in attacker.frames]
    assert login_url not in frame_urls, frame_urls
    assert any("frame-ancestors" in text for text in console), console


# -- CORS ---------------------------------------------------------------------------------------------


def test_no_cors_on_the_authorization_endpoint(server: Server, page: Page, sites: Sites) -> None:
    """FAPI 2.0 SP §5.2.3-3, RFC 9700 §2.6: no CORS at the authorization endpoint. A script on another
    origin cannot read /authorize, while it can read the (CORS-enabled) metadata, so the check is real."""
    _, challenge = pkce_pair()
    url = server.base_url + authorize_url("demo-native", sites.callback(), challenge)
    page.goto(sites.cross_site_page("<!doctype html><title>reader</title>"))
    probe = """async ([url, credentials]) => { try { const r = await fetch(url, {credentials});
                 return 'read ' + r.status; } catch (e) { return 'blocked'; } }"""
    assert page.evaluate(probe, [url, "include"]) == "blocked"
    assert page.evaluate(probe, [url, "omit"]) == "blocked"
    assert page.evaluate(probe, [server.base_url + "/.well-known/openid-configuration", "omit"]) == "read 200"
    with server.client() as http:
        for method in ("GET", "OPTIONS"):
            resp = http.request(
                method, url, headers={"Origin": "https://localhost:3000", "Access-Control-Request-Method": "GET"}
            )
            assert not [h for h in resp.headers if h.lower().startswith("access-control-")], (method, resp.headers)


# -- headers on every page ------------------------------------------------------------------------------


def test_every_page_sends_the_security_headers(
    server: Server, page: Page, sites: Sites, recorder: Recorder, person: Person
) -> None:
    """RFC 9700 §4.16 (frame-ancestors 'none' + X-Frame-Options DENY), §4.2.4 (Referrer-Policy), RFC 6797
    (HSTS) and no caching, on the login, consent, error, sign-out and home pages."""
    started = start_authorization(page, sites.callback())
    page.get_by_label("Username").fill(person.username)
    page.get_by_label("Password").fill("wrong-" + person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    sign_in(page, person)
    decide(page, "Deny", started.redirect_uri)
    page.goto("/authorize?client_id=no-such-client&response_type=code")  # error page
    page.goto("/logout")
    page.goto("/")
    pages = [
        r
        for r in recorder.responses
        if r.url.startswith(server.base_url) and r.all_headers().get("content-type", "").startswith("text/html")
    ]
    kinds = {(r.request.method, r.status) for r in pages}
    assert {("GET", 200), ("POST", 401), ("GET", 400)} <= kinds, kinds
    assert len(pages) >= 6
    for r in pages:
        h = r.all_headers()
        assert h["x-frame-options"] == "DENY", r.url
        csp = [d.strip() for d in h["content-security-policy"].split(";")]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, r.url
        assert not [d for d in csp if d.startswith("script-src")], r.url  # the pages need no script
        assert h["referrer-policy"] == "no-referrer", r.url
        assert h["strict-transport-security"].startswith("max-age="), r.url
        assert h["cache-control"] == "no-store", r.url
        assert h["x-content-type-options"] == "nosniff", r.url
