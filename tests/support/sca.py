"""Strong customer authentication in tests: the settings that turn it on, the demo users' authenticator
app (its codes at the server's time), and submitting the factor pages as a browser would."""

from __future__ import annotations

import base64
import re

import httpx

from fingrade.oauth import totp

from .flow import CSRF
from .server import DEMO_TOTP_SECRET

SCA_ON = {"FINGRADE_SCA": "required"}
DEMO_TOTP = base64.b32decode(DEMO_TOTP_SECRET)
KEY = re.compile(r'<code id="totp-key">([A-Z2-7 ]+)</code>')


def code(now: int, secret: bytes = DEMO_TOTP) -> str:
    """The code the authenticator app shows at `now` (RFC 6238)."""
    return totp.code_at(secret, now)


def is_factor_page(page: httpx.Response) -> bool:
    return page.status_code in (200, 401, 429) and "/second-factor" in page.text


def is_enrolment_page(page: httpx.Response) -> bool:
    return page.status_code in (200, 401, 429) and 'id="totp-key"' in page.text


def offered_secret(page: httpx.Response) -> bytes:
    """The TOTP secret an enrolment page offers, from its manual key (as a customer would type it)."""
    key = KEY.search(page.text)
    assert key, page.text[:500]
    text = key.group(1).replace(" ", "")
    return base64.b32decode(text + "=" * (-len(text) % 8))


def submit_code(browser: httpx.Client, page: httpx.Response, typed: str, password: str | None = None) -> httpx.Response:
    """Submit the second-factor form shown on `page`."""
    csrf = CSRF.search(page.text).group(1)
    action = re.search(r'action="(/interaction/[^"]+/second-factor)"', page.text).group(1)
    data = {"code": typed, "csrf_token": csrf}
    if password is not None:
        data["password"] = password
    return browser.post(action, data=data)


def submit_enrolment(browser: httpx.Client, page: httpx.Response, typed: str, name: str = "") -> httpx.Response:
    csrf = CSRF.search(page.text).group(1)
    action = re.search(r'action="(/interaction/[^"]+/enrol)"', page.text).group(1)
    return browser.post(action, data={"code": typed, "name": name, "csrf_token": csrf})


def recovery_codes(page: httpx.Response) -> list[str]:
    return re.findall(r"<li><code>([0-9a-z]{5}-[0-9a-z]{5})</code></li>", page.text)
