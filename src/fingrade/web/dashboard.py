"""The customer's own account area: the connected apps (/account/connections) and revoking an app's
access (oauth/consent_lifecycle.py). Signing in to it is account_sign_in.py; the second factors are
security_page.py."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from fingrade.oauth import account_sign_in as account
from fingrade.oauth import consent_lifecycle as consents
from fingrade.oauth import interaction as flow
from fingrade.oauth.context import Core
from fingrade.protocol.errors import OAuthError, invalid_request
from fingrade.web import cookies, pages
from fingrade.web import request_context as ctx
from fingrade.web.forms import read_form, see_other

CONNECTIONS = "/account/connections"
REVOKED_NOTICE_SECONDS = 300


async def connections_page(request: Request) -> Response:
    core = ctx.core(request)
    session = await cookies.session(core, request)
    user = await core.store.get_user(session.user_id) if session else None
    # A session from before SCA was required is not enough: sign in again.
    if (
        session is None
        or user is None
        or user.disabled
        or not account.session_enough(core.settings, session, "connections")
    ):
        return see_other(pages.ACCOUNT_LOGIN)
    browser, fresh = cookies.browser_secret_or_new(request)
    notice = ""
    revoked = _revoked_here(core, request, browser, user.id)
    if revoked is not None and (client := await core.store.get_client(revoked)) is not None:
        notice = f"{client.client_name or client.client_id} can no longer access your bank."
    apps = await consents.connections(core, user.id)
    response = pages.connections_page(
        core.issuer, user, apps, cookies.csrf_token(core, browser, "connections:" + user.id), notice
    )
    return cookies.remember_browser(response, fresh)


async def connections_revoke(request: Request) -> Response:
    core = ctx.core(request)
    session = await cookies.session(core, request)
    if session is None or not account.session_enough(core.settings, session, "connections"):
        return see_other(pages.ACCOUNT_LOGIN)
    browser = cookies.browser_secret(request)
    try:
        form = await read_form(request)
        # Bound to this browser and this customer: a forged cross-site form has no valid token.
        cookies.check_csrf(core, browser, "connections:" + session.user_id, form)
        client_id = form.get("client_id", "")
        if not client_id or len(client_id) > 64:
            raise invalid_request("choose an app to revoke")
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)
    # Only this customer's grants: a tampered client_id reaches nobody else's.
    await consents.revoke(core, session.user_id, client_id, by="customer", ip=ctx.client_ip(request))
    # The notice on the next page is signed for this browser, customer, app and moment: a link
    # naming an app of someone's choosing shows nothing.
    at = str(core.clock())
    sig = cookies.csrf_token(core, browser, f"revoked:{session.user_id}:{client_id}:{at}")
    return see_other(f"{CONNECTIONS}?{urlencode({'revoked': client_id, 'at': at, 'sig': sig})}")


def _revoked_here(core: Core, request: Request, browser: str, user_id: str) -> str | None:
    """The client this browser's customer has just revoked, if the page's address says so with a
    valid signature (made by connections_revoke); else None."""
    q = request.query_params
    revoked, at, sig = q.get("revoked", ""), q.get("at", ""), q.get("sig", "")
    if not revoked or len(revoked) > 64 or not (at.isascii() and at.isdigit()) or len(at) > 12:
        return None
    if not 0 <= core.clock() - int(at) <= REVOKED_NOTICE_SECONDS:
        return None
    return revoked if flow.check_csrf(core, browser, f"revoked:{user_id}:{revoked}:{at}", sig) else None
