"""The browser's cookies and the CSRF check of its forms: one implementation for every page.

- `__Host-fg_browser`: a random secret that binds an interaction to the browser that started it and
  keys this browser's CSRF tokens; set by the first page that needs it, for the browser's session.
- `__Host-fg_session`: the sign-in session (oauth/interaction.py `authenticate`), `session_ttl`.
- `__Host-fg_account_sign_in`: the id of a sign-in to the customer's own pages whose password was
  right and whose second factor is due (oauth/account_sign_in.py), `interaction_ttl`.
- `__Host-fg_device`: the device cookie that lets this browser past the account's shared throttling
  counter next time (oauth/login_throttle.py), `DEVICE_TTL`.

All are `Secure; HttpOnly; SameSite=Lax; Path=/` with the `__Host-` prefix (RFC 6265bis §4.1.3.2).
A browser or session cookie longer than MAX_VALUE characters was never set here: it counts as absent.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fingrade.oauth import interaction as flow
from fingrade.oauth.context import Core
from fingrade.oauth.login_throttle import DEVICE_COOKIE, DEVICE_TTL
from fingrade.oauth.models import Session
from fingrade.protocol.crypto import new_token, token_hash
from fingrade.protocol.errors import OAuthError

SESSION_COOKIE = "__Host-fg_session"
ACCOUNT_SIGN_IN_COOKIE = "__Host-fg_account_sign_in"
BROWSER_COOKIE = "__Host-fg_browser"
MAX_VALUE = 100
FORM_EXPIRED = "the form has expired; go back and try again"

__all__ = [
    "ACCOUNT_SIGN_IN_COOKIE",
    "BROWSER_COOKIE",
    "DEVICE_COOKIE",
    "FORM_EXPIRED",
    "SESSION_COOKIE",
    "browser_secret",
    "browser_secret_or_new",
    "check_csrf",
    "csrf_token",
    "account_sign_in",
    "device_cookie",
    "forget_account_sign_in",
    "remember_account_sign_in",
    "end_session",
    "remember_browser",
    "session",
    "signed_in",
    "signed_out",
]


def _value(request: Request, name: str) -> str:
    value = request.cookies.get(name, "")
    return value if len(value) <= MAX_VALUE else ""


def _set(response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax")


# -- the browser binding --------------------------------------------------------------------------


def browser_secret(request: Request) -> str:
    """This browser's binding secret; "" without one (then no interaction and no CSRF token is its)."""
    return _value(request, BROWSER_COOKIE)


def browser_secret_or_new(request: Request) -> tuple[str, str | None]:
    """The browser-binding secret, and a new one to set (remember_browser) if there was none."""
    browser = browser_secret(request)
    if browser:
        return browser, None
    fresh = new_token(32)
    return fresh, fresh


def remember_browser(response: Response, fresh: str | None) -> Response:
    """Sets the browser cookie made by browser_secret_or_new, if it made one."""
    if fresh:
        _set(response, BROWSER_COOKIE, fresh, None)
    return response


# -- the session and the device cookie ------------------------------------------------------------


async def session(core: Core, request: Request) -> Session | None:
    cookie = _value(request, SESSION_COOKIE)
    if not cookie:
        return None
    return await core.store.get_session(token_hash(cookie), core.clock())


async def end_session(core: Core, request: Request) -> None:
    """Deletes this browser's session, if it has one: a new sign-in replaces it, sign-out ends it."""
    cookie = _value(request, SESSION_COOKIE)
    if cookie:
        await core.store.delete_session(token_hash(cookie))


def device_cookie(request: Request) -> str | None:
    return request.cookies.get(DEVICE_COOKIE)


def signed_in(core: Core, response: Response, result: flow.SignedIn) -> Response:
    """The session cookie, and the device cookie that lets this browser past the account's shared
    throttling counter next time (oauth/login_throttle.py)."""
    _set(response, SESSION_COOKIE, result.cookie, core.settings.session_ttl)
    _set(response, DEVICE_COOKIE, result.device_cookie, DEVICE_TTL)
    return response


def device_known(response: Response, device_cookie: str) -> Response:
    """Only the device cookie: the password was right, the sign-in goes on to a second factor."""
    _set(response, DEVICE_COOKIE, device_cookie, DEVICE_TTL)
    return response


def signed_out(response: Response) -> Response:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


def account_sign_in(request: Request) -> str:
    """The id of this browser's waiting account sign-in; "" without one."""
    return _value(request, ACCOUNT_SIGN_IN_COOKIE)


def remember_account_sign_in(core: Core, response: Response, pending_id: str) -> Response:
    _set(response, ACCOUNT_SIGN_IN_COOKIE, pending_id, core.settings.interaction_ttl)
    return response


def forget_account_sign_in(response: Response) -> Response:
    response.delete_cookie(ACCOUNT_SIGN_IN_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


# -- CSRF -----------------------------------------------------------------------------------------


def csrf_token(core: Core, browser: str, purpose: str) -> str:
    """The token a page puts in its form: an HMAC under the server key of this browser's secret and
    what the form does (`login:<interaction>`, `connections:<user>`, ...)."""
    return flow.csrf_token(core, browser, purpose)


def check_csrf(core: Core, browser: str, purpose: str, form: dict[str, str], description: str = FORM_EXPIRED) -> None:
    """A form's `csrf_token` must be this browser's for `purpose`; else 403 (a forged cross-site form
    has no valid token, and neither has a browser without the binding cookie)."""
    if not flow.check_csrf(core, browser, purpose, form.get("csrf_token", "")):
        raise OAuthError("invalid_request", description, 403)
