"""Signing in to the customer's own pages: the password at /account/login, then the second factor
at /account/second-factor (or setting up an authenticator app at /account/enrol) when one is due.
oauth/account_sign_in.py decides; these routes render."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fingrade.oauth import account_sign_in as account
from fingrade.oauth import interaction as flow
from fingrade.oauth.context import Core
from fingrade.oauth.models import FactorKind
from fingrade.protocol.crypto import token_hash
from fingrade.protocol.errors import OAuthError
from fingrade.web import cookies, pages
from fingrade.web import request_context as ctx
from fingrade.web.forms import read_form, see_other, with_retry_after

SECOND_FACTOR = "/account/second-factor"
ENROL = "/account/enrol"
SECURITY = "/account/security"
CONNECTIONS = "/account/connections"
_PLACES: dict[account.Target, str] = {"connections": CONNECTIONS, "security": SECURITY}


def target_of(request: Request) -> account.Target:
    """Where the customer goes once signed in: `?next=security`, else the connected apps."""
    return "security" if request.query_params.get("next") == "security" else "connections"


def login_url(target: account.Target) -> str:
    return pages.ACCOUNT_LOGIN + ("?next=security" if target == "security" else "")


def _purpose(pending_id: str) -> str:
    # The second step's forms are bound to this browser and this waiting sign-in.
    return "account-sign-in:" + pending_id


async def account_login(request: Request) -> Response:
    core = ctx.core(request)
    target = target_of(request)
    if request.method == "GET":
        session = await cookies.session(core, request)
        if session is not None and account.session_enough(core.settings, session, target):
            return see_other(_PLACES[target])
        browser, fresh = cookies.browser_secret_or_new(request)
        page = pages.account_login_page(
            core.issuer, cookies.csrf_token(core, browser, "account-login"), form_action=login_url(target)
        )
        return cookies.remember_browser(page, fresh)
    browser = cookies.browser_secret(request)
    try:
        form = await read_form(request)
        cookies.check_csrf(core, browser, "account-login", form)
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)
    result = await account.password(
        core,
        form.get("username", ""),
        form.get("password", ""),
        ctx.client_ip(request),
        token_hash(browser),
        cookies.device_cookie(request),
        target,
    )
    if isinstance(result, flow.LoginRefused):
        return with_retry_after(
            pages.account_login_page(
                core.issuer,
                cookies.csrf_token(core, browser, "account-login"),
                result.message,
                form.get("username", "")[:100],
                status=result.status,
                form_action=login_url(target),
            ),
            result.retry_after,
        )
    await cookies.end_session(core, request)  # a new sign-in replaces the old session
    if isinstance(result, account.SecondFactorDue):
        # No session yet: the password alone does not sign in when a second factor is due.
        response = cookies.device_known(see_other(SECOND_FACTOR), result.device_cookie)
        return cookies.signed_out(cookies.remember_account_sign_in(core, response, result.pending_id))
    return cookies.signed_in(core, see_other(_PLACES[target]), result)


async def _pending(core: Core, request: Request) -> tuple[account.Pending, str] | None:
    browser = cookies.browser_secret(request)
    pending = await account.load(core, cookies.account_sign_in(request), token_hash(browser) if browser else "")
    return (pending, browser) if pending is not None else None


def _render(core: Core, step: account.Step, browser: str) -> Response:
    csrf = cookies.csrf_token(core, browser, _purpose(step.pending.id))
    if isinstance(step, account.ShowCode):
        passkeys_only = all(f.kind == FactorKind.PASSKEY for f in step.factors)
        page = pages.account_second_factor_page(
            core.issuer, SECOND_FACTOR, csrf, step.error, step.status if step.error else 200, passkeys_only
        )
    else:
        page = pages.enrolment_page(
            core.issuer,
            ENROL,
            step.user,
            step.secret,
            csrf,
            error=step.error,
            status=step.status if step.error else 200,
        )
    return with_retry_after(page, step.retry_after)


async def second_factor(request: Request) -> Response:
    return await (_second_factor_page(request) if request.method == "GET" else _submit(request, enrolment=False))


async def _second_factor_page(request: Request) -> Response:
    """The page a waiting sign-in is at: the code, or setting up an app."""
    core = ctx.core(request)
    found = await _pending(core, request)
    step = await account.step(core, found[0]) if found is not None else None
    if found is None or step is None:
        return cookies.forget_account_sign_in(see_other(pages.ACCOUNT_LOGIN))
    return _render(core, step, found[1])


async def enrol_submit(request: Request) -> Response:
    return await _submit(request, enrolment=True)


async def _submit(request: Request, enrolment: bool) -> Response:
    core = ctx.core(request)
    found = await _pending(core, request)
    if found is None:
        return cookies.forget_account_sign_in(see_other(pages.ACCOUNT_LOGIN))  # expired, or finished
    pending, browser = found
    try:
        form = await read_form(request)
        cookies.check_csrf(core, browser, _purpose(pending.id), form)
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)
    ip, device = ctx.client_ip(request), cookies.device_cookie(request) or ""
    result = (
        await account.enrol(core, pending, form.get("code", ""), form.get("name", ""), ip, device)
        if enrolment
        else await account.second_factor(core, pending, form.get("code", ""), ip, device)
    )
    if result is None:
        return cookies.forget_account_sign_in(see_other(pages.ACCOUNT_LOGIN))
    if not isinstance(result, account.Done):
        return _render(core, result, browser)
    await cookies.end_session(core, request)
    place = _PLACES[result.target]
    # The recovery codes of a first factor are shown once, before the page the customer came for.
    page = (
        pages.recovery_codes_page(core.issuer, result.recovery_codes, place)
        if result.recovery_codes
        else see_other(place)
    )
    return cookies.forget_account_sign_in(cookies.signed_in(core, page, result.signed_in))
