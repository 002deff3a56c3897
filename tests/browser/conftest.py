"""Browser fixtures: Debian's Chromium driven by Playwright (one browser for the whole session, a fresh
context per test), and two small local web sites standing in for the parties around the server:

- `sites.callback()`: a plain-HTTP loopback site on 127.0.0.1 that plays the native app's redirect
  URI (RFC 8252 §7.3) and records every request it gets; it is also a *cross-site* origin
  (another scheme and host than https://localhost) for attacker pages (`sites.cross_site_page(html)`);
- `sites.same_site_page(html)`: an HTTPS site on localhost with another port, i.e. cross-origin but
  *same-site*, so SameSite=Lax cookies do reach the server from its pages. This is the attacker that
  only the CSRF token and the framing headers can stop.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from browserkit import CHROMIUM, People, Person, Recorder, Sites, launch_chromium
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from support.server import Server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def sites() -> Iterator[Sites]:
    workdir = Path(tempfile.mkdtemp(prefix="fg-sites-"))
    s = Sites(workdir)
    yield s
    s.close()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def people(server: Server) -> People:
    return People(server)


@pytest.fixture
def person(people: People) -> Person:
    """A user who has consented to nothing yet."""
    return people.take()


# -- Chromium ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright_driver(server: Server) -> Iterator[Playwright]:
    # Module scope, and torn down with the server: while Playwright's sync API is active its event
    # loop counts as running in this thread, so any asyncio.run() elsewhere (the PostgreSQL fixture,
    # other tests) would fail. One browser per module and backend keeps it out of their way.
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def chromium(playwright_driver: Playwright) -> Iterator[Browser]:
    # A missing browser is a failure, never a skip: tests/browser/install-chromium.sh installs it.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing; run tests/browser/install-chromium.sh"
    browser = launch_chromium(playwright_driver)
    yield browser
    browser.close()


@pytest.fixture
def context(chromium: Browser, server: Server) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(ignore_https_errors=True, base_url=server.base_url)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def recorder(page: Page) -> Recorder:
    return Recorder(page)
