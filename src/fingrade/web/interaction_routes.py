"""The browser's part of an authorization: the authorization endpoint, the sign-in and consent pages
of an interaction (oauth/interaction.py decides, these routes render), and sign-out."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from fingrade.oauth import interaction as flow
from fingrade.oauth import passkey_steps
from fingrade.oauth.authorize import PageError, RedirectError, error_response, parse_request
from fingrade.oauth.context import Core
from fingrade.oauth.response_mode import AuthorizationResponse
from fingrade.protocol.asgi import BodyTooLarge, read_body
from fingrade.protocol.crypto import token_hash
from fingrade.protocol.errors import OAuthError, invalid_request, method_not_allowed
from fingrade.web import cookies, pages
from fingrade.web import request_context as ctx
from fingrade.web.forms import read_form, see_other, with_retry_after

MAX_ACCOUNT_CHOICES = 50


def _purpose(iid: str) -> str:
    """The CSRF purpose of every form of one interaction: bound to this browser and this interaction
    (a token of another interaction, or of another browser, is refused)."""
    return "interaction:" + iid


def _deliver(core: Core, resp: AuthorizationResponse) -> Response:
    """An authorization response: a redirect, or the auto-submitting form of form_post.jwt (JARM §2.3.3)."""
    if resp.form is None:
        return see_other(resp.url)
    return pages.form_post_page(core.issuer, resp.url, resp.form)


async def authorize(request: Request) -> Response:
    core = ctx.core(request)
    if request.method not in ("GET", "POST"):
        return pages.error_page(core.issuer, method_not_allowed("GET, POST"))
    try:
        if request.method == "POST":
            body = await read_body(request)
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/x-www-form-urlencoded":
                raise PageError("invalid_request", "the request body must be a form", 400)
            req, _client = await parse_request(core, b"", body)
        else:
            req, _client = await parse_request(core, request.scope.get("query_string", b""))
    except (PageError, BodyTooLarge) as exc:
        return pages.error_page(core.issuer, exc)
    except RedirectError as err:
        return _deliver(core, await error_response(core, err))
    session = await cookies.session(core, request)
    browser, fresh = cookies.browser_secret_or_new(request)
    try:
        outcome = await flow.start(core, req, session, token_hash(browser))
    except OAuthError as exc:  # e.g. a pushed request used up by a concurrent completion
        return pages.error_page(core.issuer, exc)
    if isinstance(outcome, flow.Redirect):
        return _deliver(core, outcome)
    return cookies.remember_browser(see_other(f"/interaction/{outcome.interaction_id}"), fresh)


async def _load_interaction(core: Core, request: Request) -> tuple[flow.Interaction, str]:
    """The interaction of the path, if this browser started it; with the browser's secret."""
    browser = cookies.browser_secret(request)
    iid = request.path_params["iid"]
    if not browser or len(iid) > 64:
        raise flow.gone()
    return await flow.load(core, iid, token_hash(browser)), browser


async def _render_step(core: Core, step: flow.Step, browser: str, status: int = 200) -> Response:
    if isinstance(step, flow.Redirect):
        return _deliver(core, step)
    iid = step.interaction.id
    redirect_uri = step.interaction.request.redirect_uri
    if isinstance(step, flow.ShowLogin):
        return await _login_page(core, step, browser, status=step.status if step.error else status)
    if isinstance(step, flow.ShowSecondFactor):
        page = pages.second_factor_page(
            core.issuer,
            iid,
            step.client,
            redirect_uri,
            cookies.csrf_token(core, browser, _purpose(iid)),
            step.payment,
            step.password_needed,
            step.error,
            status=step.status if step.error else status,
            passkey=await passkey_steps.passkey_offer(core, step),
        )
        return with_retry_after(page, step.retry_after)
    if isinstance(step, flow.ShowEnrolment):
        page = pages.enrolment_page(
            core.issuer,
            f"/interaction/{iid}/enrol",
            step.user,
            step.secret,
            cookies.csrf_token(core, browser, _purpose(iid)),
            redirect_uri,
            error=step.error,
            status=step.status if step.error else status,
            passkey=await passkey_steps.passkey_offer(core, step),
            passkey_action=f"/interaction/{iid}/enrol-passkey",
        )
        return with_retry_after(page, step.retry_after)
    csrf = cookies.csrf_token(core, browser, _purpose(iid))
    return pages.consent_page(
        core.issuer,
        iid,
        step.client,
        step.user,
        step.interaction.request.scope,
        redirect_uri,
        csrf,
        step.interaction.request.authorization_details,
        pick_accounts=step.pick_accounts,
        pick_debtor=step.pick_debtor,
        error=step.error,
        selection=step.selection,
        payer_names=step.offer.payer_names,
        blocked=step.offer.blocked is not None,
        status=status,
    )


async def _login_page(
    core: Core, step: flow.ShowLogin, browser: str, username: str = "", status: int = 200
) -> Response:
    """The login page of an interaction: a passkey first (when offered), the password form after it."""
    iid = step.interaction.id
    page = pages.login_page(
        core.issuer,
        iid,
        step.client,
        step.interaction.request.redirect_uri,
        cookies.csrf_token(core, browser, _purpose(iid)),
        step.error,
        username=username,
        status=status,
        passkey=await passkey_steps.passkey_offer(core, step),
    )
    return with_retry_after(page, step.retry_after)


FormHandler = Callable[[Core, Request, flow.Interaction, str, dict[str, str]], Awaitable[Response]]


def _interaction_form(handler: FormHandler) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of one of an interaction's forms: the interaction of the path, if this browser
    started it; the form, with its CSRF token checked; an OAuthError shown as the error page."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        core = ctx.core(request)
        try:
            interaction, browser = await _load_interaction(core, request)
            form = await read_form(request)
            cookies.check_csrf(core, browser, _purpose(interaction.id), form)
            return await handler(core, request, interaction, browser, form)
        except OAuthError as exc:
            return pages.error_page(core.issuer, exc)

    return endpoint


def _selection(form: dict[str, str]) -> flow.Selection:
    """Checkboxes account_1..account_N (distinct names: duplicated parameters are refused) and the
    debtor_account radio group."""
    chosen = tuple(form[f"account_{i}"] for i in range(1, MAX_ACCOUNT_CHOICES + 1) if f"account_{i}" in form)
    return flow.Selection(accounts=chosen, debtor=form.get("debtor_account"))


async def interaction_page(request: Request) -> Response:
    core = ctx.core(request)
    try:
        interaction, browser = await _load_interaction(core, request)
        session = await cookies.session(core, request)
        step = await flow.resume(core, interaction, session, ctx.customer_accounts(request))
        return await _render_step(core, step, browser)
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)


@_interaction_form
async def login_submit(
    core: Core, request: Request, interaction: flow.Interaction, browser: str, form: dict[str, str]
) -> Response:
    result = await flow.login(
        core,
        interaction,
        form.get("username", ""),
        form.get("password", ""),
        ctx.client_ip(request),
        cookies.device_cookie(request),
    )
    if isinstance(result, flow.ShowLogin):
        return await _login_page(core, result, browser, form.get("username", "")[:100], result.status)
    await cookies.end_session(core, request)  # a new sign-in replaces the old session
    if isinstance(result, flow.SecondFactorDue):
        return cookies.device_known(see_other(f"/interaction/{interaction.id}"), result.device_cookie)
    return cookies.signed_in(core, see_other(f"/interaction/{interaction.id}"), result)


@_interaction_form
async def second_factor_submit(
    core: Core, request: Request, interaction: flow.Interaction, browser: str, form: dict[str, str]
) -> Response:
    """The code of the second factor step: a sign-in's second factor, a step-up, or a payment's
    confirmation (oauth/interaction.py second_factor)."""
    result = await flow.second_factor(
        core,
        interaction,
        await cookies.session(core, request),
        form.get("code", ""),
        ctx.client_ip(request),
        cookies.device_cookie(request) or "",
        form.get("password"),
    )
    return await _factor_result(core, request, interaction, browser, result)


@_interaction_form
async def passkey_login_submit(
    core: Core, request: Request, interaction: flow.Interaction, browser: str, form: dict[str, str]
) -> Response:
    """A passkey on the login page, instead of the password (oauth/interaction.py passkey_sign_in)."""
    result = await passkey_steps.passkey_sign_in(
        core, interaction, form.get("credential", ""), ctx.client_ip(request), cookies.device_cookie(request)
    )
    if isinstance(result, flow.ShowLogin):
        return await _render_step(core, result, browser)
    await cookies.end_session(core, request)  # a new sign-in replaces the old session
    return cookies.signed_in(core, see_other(f"/interaction/{interaction.id}"), result)


@_interaction_form
async def passkey_submit(
    core: Core, request: Request, interaction: flow.Interaction, browser: str, form: dict[str, str]
) -> Response:
    """A passkey at the second factor step: a sign-in's second factor, a step-up, or a payment's
    confirmation (oauth/interaction.py passkey_second_factor)."""
    result = await passkey_steps.passkey_second_factor(
        core,
        interaction,
        await cookies.session(core, request),
        form.get("credential", ""),
        ctx.client_ip(request),
        cookies.device_cookie(request) or "",
    )
    return await _factor_result(core, request, interaction, browser, result)


async def _factor_result(
    core: Core,
    request: Request,
    interaction: flow.Interaction,
    browser: str,
    result: flow.FactorAccepted | flow.ShowSecondFactor | flow.ShowEnrolment | flow.ShowLogin,
) -> Response:
    if not isinstance(result, flow.FactorAccepted):
        return await _render_step(core, result, browser)
    if result.redirect is not None:
        return _deliver(core, result.redirect)
    assert result.signed_in is not None
    await cookies.end_session(core, request)  # the stronger session replaces the old one
    return cookies.signed_in(core, see_other(f"/interaction/{interaction.id}"), result.signed_in)


async def _enrolled(
    core: Core, request: Request, interaction: flow.Interaction, result: flow.EnrolmentDone
) -> Response:
    """Signed in with the new factor: the recovery codes first when they are new, then the interaction."""
    await cookies.end_session(core, request)
    next_url = f"/interaction/{interaction.id}"
    page = (
        pages.recovery_codes_page(core.issuer, result.recovery_codes, next_url)
        if result.recovery_codes
        else see_other(next_url)
    )
    return cookies.signed_in(core, page, result.signed_in)


@_interaction_form
async def passkey_enrol_submit(
    core: Core, request: Request, interaction: flow.Interaction, browser: str, form: dict[str, str]
) -> Response:
    """A passkey created at the enrolment step (oauth/interaction.py enrol_passkey); then the
    recovery codes."""
    result = await passkey_steps.enrol_passkey(
        core,
        interaction,
        await cookies.session(core, request),
        form.get("credential", ""),
        ctx.client_ip(request),
        cookies.device_cookie(request) or "",
        form.get("name", ""),
    )
    if not isinstance(result, flow.EnrolmentDone):
        return await _render_step(core, result, browser)
    return await _enrolled(core, request, interaction, result)


@_interaction_form
async def enrol_submit(
    core: Core, request: Request, interaction: flow.Interaction, browser: str, form: dict[str, str]
) -> Response:
    """Confirming the authenticator app offered at the enrolment step; then the recovery codes."""
    result = await flow.enrol(
        core,
        interaction,
        await cookies.session(core, request),
        form.get("code", ""),
        form.get("name", ""),
        ctx.client_ip(request),
        cookies.device_cookie(request) or "",
    )
    if not isinstance(result, flow.EnrolmentDone):
        return await _render_step(core, result, browser)
    return await _enrolled(core, request, interaction, result)


@_interaction_form
async def consent_submit(
    core: Core, request: Request, interaction: flow.Interaction, browser: str, form: dict[str, str]
) -> Response:
    decision = form.get("decision")
    if decision not in ("approve", "deny"):
        raise invalid_request("choose Allow or Deny")
    step = await flow.decide(
        core,
        interaction,
        await cookies.session(core, request),
        decision == "approve",
        ctx.client_ip(request),
        _selection(form),
        ctx.customer_accounts(request),
    )
    return await _render_step(core, step, browser, 400 if isinstance(step, flow.ShowConsent) else 200)


async def logout(request: Request) -> Response:
    core = ctx.core(request)
    if request.method == "GET":
        browser, fresh = cookies.browser_secret_or_new(request)
        response = pages.message_page(
            core.issuer,
            "Sign out",
            "Sign out of the bank on this browser?",
            form_action="/logout",
            button="Sign out",
            csrf=cookies.csrf_token(core, browser, "logout"),
        )
        return cookies.remember_browser(response, fresh)
    try:
        form = await read_form(request)
        cookies.check_csrf(core, cookies.browser_secret(request), "logout", form, "the form has expired")
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)
    await cookies.end_session(core, request)
    response = pages.message_page(core.issuer, "Signed out", "You are signed out of the bank on this browser.")
    return cookies.signed_out(response)
