"""Strong customer authentication in tests: the settings that turn it on, the demo users' authenticator
app (its codes at the server's time), and submitting the factor pages as a browser would."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable

import httpx

from fingrade.oauth import totp

from .flow import CSRF, consent, follow_to_client, login
from .server import DEMO_PASSWORD, DEMO_TOTP_SECRET

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


class Authenticator:
    """An authenticator app: its secret, and the time steps whose codes it has shown already (the
    server accepts each once, RFC 6238 §5.2), so that the next code is always a fresh one."""

    def __init__(self, secret: bytes = DEMO_TOTP, wait: bool = False) -> None:
        self.secret = secret
        self.used: set[int] = set()
        self.wait = wait  # on the wall clock: wait for the next step rather than fail

    def next_code(self, now: int) -> str:
        for step in (now // 30, now // 30 + 1):  # the window reaches one step ahead (a clock a bit fast)
            if step not in self.used:
                self.used.add(step)
                return totp.code_at(self.secret, step * 30)
        if self.wait:  # a customer waits for the app to show a new code
            time.sleep(30 - now % 30 + 1)
            return self.next_code(int(time.time()))
        raise AssertionError("both steps of the window are used: move the clock on")


PASSWORD_FIELD = 'name="password"'


def walk(
    browser: httpx.Client,
    resp: httpx.Response,
    redirect_prefix: str,
    now: Callable[[], int],
    app: Authenticator | None,
    username: str = "alice",
    password: str = DEMO_PASSWORD,
    decision: str = "approve",
    seen: list[str] | None = None,
) -> httpx.Response:
    """Follow an authorization through every page as a customer would - sign-in, second factor (or
    enrolment: `app` then takes the offered secret), recovery codes, consent, payment confirmation -
    until the redirect back to the client. `seen` collects the pages' names in order."""
    seen = seen if seen is not None else []
    for _ in range(12):
        resp = follow_to_client(browser, resp, redirect_prefix)
        if resp.status_code in (302, 303) or resp.status_code >= 400 and not seen:
            return resp
        text = resp.text
        if "/login" in text and 'name="username"' in text:
            seen.append("login")
            resp = login(browser, resp, username, password)
        elif 'id="totp-key"' in text:
            seen.append("enrol")
            assert app is not None
            app.secret = offered_secret(resp)
            resp = submit_enrolment(browser, resp, app.next_code(now()))
        elif "recovery-codes" in text:
            seen.append("recovery_codes")
            resp = browser.get(re.search(r'href="(/interaction/[^"]+)"', text).group(1))
        elif "/second-factor" in text:
            seen.append("confirm_payment" if "Confirm payment" in text else "second_factor")
            assert app is not None
            resp = submit_code(browser, resp, app.next_code(now()), password if PASSWORD_FIELD in text else None)
            if resp.status_code != 303:
                return resp
        elif 'name="decision"' in text:
            seen.append("consent")
            resp = consent(browser, resp, decision)
        else:
            return resp
    raise AssertionError(f"no end after {seen}")
