"""The login, consent and error pages as people use them: without JavaScript, on a 320 px phone, with a
keyboard and a screen reader (WCAG 2.2 AA: 1.3.1 info and relationships, 1.4.3 contrast,
1.4.10 reflow, 1.4.11 non-text contrast, 2.4.1 bypass blocks, 2.4.7 focus visible, 3.3.2 labels)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from browserkit import Person, Sites, decide, on_consent_page, sign_in, start_authorization
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.server import Server

pytestmark = [pytest.mark.login, pytest.mark.consent]

# WCAG 2.x relative luminance and contrast ratio, computed in the page on the rendered styles.
CONTRAST_JS = """
() => {
  const rgba = s => { const m = s.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const lin = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const background = el => {
    for (; el; el = el.parentElement) { const c = rgba(getComputedStyle(el).backgroundColor); if (c[3] > 0) return c; }
    return [255, 255, 255, 1];
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const box = el.getBoundingClientRect();
    if (!own || box.width === 0 || box.bottom < 0) continue;  // no text of its own, or off-screen (skip link)
    const st = getComputedStyle(el), size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const large = size >= 24 || (size >= 18.66 && bold);
    out.push({text: el.textContent.trim().slice(0, 40), ratio: ratio(rgba(st.color), background(el)),
              need: large ? 3 : 4.5});
  }
  return out;
}
"""

FOCUS_JS = """
() => {
  const el = document.activeElement, st = getComputedStyle(el);
  return {tag: el.tagName, name: (el.tagName === 'BUTTON' && el.value) || el.name || el.textContent.trim(),
          style: st.outlineStyle,
          width: parseFloat(st.outlineWidth), color: st.outlineColor};
}
"""


@pytest.fixture
def make_context(chromium: Browser, server: Server) -> Iterator[Callable[..., BrowserContext]]:
    made: list[BrowserContext] = []

    def make(**kw: object) -> BrowserContext:
        ctx = chromium.new_context(ignore_https_errors=True, base_url=server.base_url, **kw)
        ctx.set_default_timeout(10_000)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


def each_page(page: Page, sites: Sites, person: Person, failed_login: bool = True) -> Iterator[str]:
    """Walk to the login, consent, connected-apps and error pages; yields the name of the page on screen. A failed
    login counts against 127.0.0.1's throttle, shared by the whole suite: only where it matters."""
    page.goto("/account/login")
    yield "login (connected apps)"
    started = start_authorization(page, sites.callback(), scope="openid profile email offline_access accounts payments")
    yield "login"
    if failed_login:
        page.get_by_label("Username").fill(person.username)
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_be_visible()
        yield "login with error"
    sign_in(page, person)
    assert on_consent_page(page)
    yield "consent"
    decide(page, "Allow", started.redirect_uri)
    page.goto("/account/connections")
    assert page.get_by_role("button", name="Revoke access of Fingrade Demo Mobile App").count() == 1, page.content()
    yield "connected apps"
    page.goto("/authorize?client_id=no-such-client&response_type=code")
    yield "error"


def test_whole_flow_works_without_javascript(
    make_context: Callable[..., BrowserContext], sites: Sites, person: Person
) -> None:
    """Usable without JavaScript; the pages carry no script at all."""
    page = make_context(java_script_enabled=False).new_page()
    started = start_authorization(page, sites.callback())
    assert page.locator("script").count() == 0
    sign_in(page, person)
    assert page.locator("script").count() == 0
    params = decide(page, "Allow", started.redirect_uri)
    assert params["state"] == started.state and params["code"]


def test_pages_reflow_at_320_px(make_context: Callable[..., BrowserContext], sites: Sites, person: Person) -> None:
    """WCAG 2.2 SC 1.4.10: no horizontal scrolling at 320 CSS px; controls at least 44 px high (SC 2.5.5;
    SC 2.5.8 asks for 24)."""
    page = make_context(viewport={"width": 320, "height": 640}).new_page()
    for name in each_page(page, sites, person):
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= 320, (name, scroll_width)
        for control in page.locator("input:not([type=hidden]), button").all():
            box = control.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 320, (name, box)
            assert box["height"] >= 44, (name, box)


def test_landmarks_headings_and_labels(
    make_context: Callable[..., BrowserContext], sites: Sites, person: Person
) -> None:
    """WCAG 2.2 SC 1.3.1, 2.4.1, 2.4.2, 3.1.1, 3.3.2: language, a title, one h1, banner/main/contentinfo
    landmarks, a skip link, and every field labelled."""
    page = make_context().new_page()
    for name in each_page(page, sites, person, failed_login=False):
        assert page.locator("html").get_attribute("lang") == "en", name
        assert page.title().endswith("· Fingrade Bank"), name
        expect(page.get_by_role("heading", level=1)).to_have_count(1)
        for role in ("banner", "main", "contentinfo"):
            expect(page.get_by_role(role)).to_have_count(1)
        expect(page.get_by_role("link", name="Skip to content")).to_have_attribute("href", "#main")
        for field in page.locator("input:not([type=hidden])").all():
            expect(field).not_to_have_accessible_name("")
        for button in page.get_by_role("button").all():
            expect(button).not_to_have_accessible_name("")
        if name.startswith("login"):
            expect(page.get_by_label("Username")).to_have_attribute("autocomplete", "username")
            expect(page.get_by_label("Password")).to_have_attribute("autocomplete", "current-password")


def test_text_contrast_is_at_least_aa(
    make_context: Callable[..., BrowserContext], sites: Sites, person: Person
) -> None:
    """WCAG 2.2 SC 1.4.3: text contrast >= 4.5:1 (3:1 for large text), measured on the rendered pages."""
    page = make_context().new_page()
    for name in each_page(page, sites, person):
        checked = page.evaluate(CONTRAST_JS)
        assert len(checked) >= 5, name
        low = [c for c in checked if c["ratio"] < c["need"]]
        assert not low, (name, low)


def test_keyboard_focus_is_visible(make_context: Callable[..., BrowserContext], sites: Sites, person: Person) -> None:
    """WCAG 2.2 SC 2.4.7 and 1.4.11: each control reached with Tab shows a solid focus ring at least 2 px
    wide whose colour has >= 3:1 contrast with the white card."""
    page = make_context().new_page()
    for name in each_page(page, sites, person, failed_login=False):
        if name not in ("login", "consent"):
            continue
        expected = (
            ["Skip to content", "username", "password", "Sign in"]
            if name == "login"
            else ["Skip to content", "deny", "approve"]
        )
        seen: list[str] = []
        for _ in range(2 * len(expected) + 2):  # wherever focus starts, Tab cycles through them all
            page.keyboard.press("Tab")
            focus = page.evaluate(FOCUS_JS)
            if focus["tag"] == "BODY":  # focus left the document (browser UI) before wrapping around
                continue
            seen.append(focus["name"])
            assert focus["style"] == "solid" and focus["width"] >= 2, (name, focus)
            assert contrast_with_white(page, focus["color"]) >= 3, (name, focus)
        assert set(seen) == set(expected), (name, seen)
        cycle = seen[seen.index(expected[0]) :][: len(expected)]
        assert cycle == expected, (name, seen)  # in reading order


def contrast_with_white(page: Page, color: str) -> float:
    return page.evaluate(
        """c => { const m = c.match(/[\\d.]+/g).map(Number);
        const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 1.05 / (0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]) + 0.05); }""",
        color,
    )
