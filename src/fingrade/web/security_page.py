"""The customer's security page, /account/security: their second factors and recovery codes, and the
forms that remove a factor, add an authenticator app and renew the recovery codes
(oauth/account_security.py decides). Each form carries the CSRF token of this browser and customer
and the password typed again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fingrade.oauth import account_security as security
from fingrade.oauth import account_sign_in as account
from fingrade.oauth.context import Core
from fingrade.oauth.models import Session, User
from fingrade.protocol.crypto import token_hash
from fingrade.protocol.errors import OAuthError
from fingrade.web import cookies, pages
from fingrade.web import request_context as ctx
from fingrade.web.account_sign_in import SECURITY, login_url
from fingrade.web.forms import read_form, see_other, with_retry_after

ADD_APP = SECURITY + "/add-app"
REMOVE = SECURITY + "/remove"
RECOVERY_CODES = SECURITY + "/recovery-codes"
# What the page says after a change (fixed words: the address names one, it carries no text).
NOTICES = {"removed": "It is removed from your account.", "added": "Your authenticator app is added."}


def _purpose(user_id: str) -> str:
    return "security:" + user_id


async def _customer(core: Core, request: Request) -> tuple[Session, User] | None:
    """The signed-in customer, if their session is strong enough for this page (docs/sca.md)."""
    session = await cookies.session(core, request)
    if session is None or not account.session_enough(core.settings, session, "security"):
        return None
    user = await core.store.get_user(session.user_id)
    if user is None or user.disabled:
        return None
    return session, user


def _sign_in() -> Response:
    # Not signed in, or not strongly enough: sign in again, then back here.
    return see_other(login_url("security"))


async def _page(
    core: Core, user: User, browser: str, notice: str = "", error: security.Refused | None = None
) -> Response:
    seen = await security.overview(core, user.id)
    page = pages.security_page(
        core.issuer,
        user,
        seen.factors,
        seen.recovery_codes_left,
        cookies.csrf_token(core, browser, _purpose(user.id)),
        last_removable=core.settings.sca != "required",
        notice=notice,
        error=error.message if error else None,
        status=error.status if error else 200,
    )
    return with_retry_after(page, error.retry_after if error else None)


async def security_page(request: Request) -> Response:
    core = ctx.core(request)
    found = await _customer(core, request)
    if found is None:
        return _sign_in()
    browser, fresh = cookies.browser_secret_or_new(request)
    notice = NOTICES.get(request.query_params.get("done", ""), "")
    return cookies.remember_browser(await _page(core, found[1], browser, notice), fresh)


async def _form(core: Core, request: Request, user: User) -> tuple[dict[str, str], str]:
    browser = cookies.browser_secret(request)
    form = await read_form(request)
    # Bound to this browser and this customer: a forged cross-site form has no valid token.
    cookies.check_csrf(core, browser, _purpose(user.id), form)
    return form, browser


async def remove_submit(request: Request) -> Response:
    core = ctx.core(request)
    found = await _customer(core, request)
    if found is None:
        return _sign_in()
    user = found[1]
    try:
        form, browser = await _form(core, request, user)
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)
    result = await security.remove_factor(
        core,
        user,
        form.get("factor_id", ""),
        form.get("password", ""),
        ctx.client_ip(request),
        cookies.device_cookie(request),
    )
    if isinstance(result, security.Refused):
        return await _page(core, user, browser, error=result)
    return see_other(SECURITY + "?done=removed")


def _add_app_page(
    core: Core, user: User, browser: str, offered: tuple[bytes, str], error: security.Refused | None = None
) -> Response:
    secret, field = offered
    page = pages.enrolment_page(
        core.issuer,
        ADD_APP,
        user,
        secret,
        cookies.csrf_token(core, browser, _purpose(user.id)),
        password_needed=True,
        error=error.message if error else None,
        status=error.status if error else 200,
        sealed_offer=field,
        heading="Add an authenticator app",
        back_url=SECURITY,
    )
    return with_retry_after(page, error.retry_after if error else None)


async def add_app(request: Request) -> Response:
    return await (_add_app_offer(request) if request.method == "GET" else _add_app_submit(request))


async def _add_app_offer(request: Request) -> Response:
    core = ctx.core(request)
    found = await _customer(core, request)
    if found is None:
        return _sign_in()
    browser, fresh = cookies.browser_secret_or_new(request)
    user = found[1]
    offered = security.offer_app(core, user.id, token_hash(browser))
    return cookies.remember_browser(_add_app_page(core, user, browser, offered), fresh)


async def _add_app_submit(request: Request) -> Response:
    core = ctx.core(request)
    found = await _customer(core, request)
    if found is None:
        return _sign_in()
    user = found[1]
    try:
        form, browser = await _form(core, request, user)
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)
    field = form.get("enrolment", "")
    result = await security.add_app(
        core,
        user,
        field,
        form.get("code", ""),
        form.get("name", ""),
        form.get("password", ""),
        ctx.client_ip(request),
        token_hash(browser),
        cookies.device_cookie(request),
    )
    if isinstance(result, security.Refused):
        offer = security.open_offer(core, field, user.id, token_hash(browser))
        if offer is None or result.status == 409:
            # Expired or used: the page again with a new secret to scan.
            return _add_app_page(core, user, browser, security.offer_app(core, user.id, token_hash(browser)), result)
        return _add_app_page(core, user, browser, (offer.secret, field), result)
    if result.recovery_codes:
        return pages.recovery_codes_page(core.issuer, result.recovery_codes, SECURITY)
    return see_other(SECURITY + "?done=added")


async def recovery_codes_submit(request: Request) -> Response:
    core = ctx.core(request)
    found = await _customer(core, request)
    if found is None:
        return _sign_in()
    user = found[1]
    try:
        form, browser = await _form(core, request, user)
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)
    result = await security.renew_codes(
        core, user, form.get("password", ""), ctx.client_ip(request), cookies.device_cookie(request)
    )
    if isinstance(result, security.Refused):
        return await _page(core, user, browser, error=result)
    return pages.recovery_codes_page(core.issuer, result, SECURITY)
