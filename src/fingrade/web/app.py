"""The ASGI application: routes translate HTTP to the core and render what it decides."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fingrade.bank.api import PREFIX as BANK_PREFIX
from fingrade.bank.api import Bank, bank_api, bank_mount
from fingrade.bank.customer_accounts import LedgerCustomerAccounts
from fingrade.bank.ledger import Ledger
from fingrade.bank.server import in_process_bank
from fingrade.config import Settings
from fingrade.oauth import consent_lifecycle as consents
from fingrade.oauth import interaction as flow
from fingrade.oauth.accounts import AccountChoice, CustomerAccounts
from fingrade.oauth.authorize import PageError, RedirectError, error_response, parse_request
from fingrade.oauth.consent_resources import MAX_BODY as CONSENT_RESOURCE_MAX_BODY
from fingrade.oauth.consent_resources import consent_resource_endpoint
from fingrade.oauth.context import Core
from fingrade.oauth.introspect import introspection_endpoint, revocation_endpoint
from fingrade.oauth.login_throttle import DEVICE_COOKIE, DEVICE_TTL
from fingrade.oauth.metadata import server_metadata
from fingrade.oauth.models import Session
from fingrade.oauth.par import par_endpoint
from fingrade.oauth.profiles import get_profile
from fingrade.oauth.registration import manage_endpoint, register_endpoint
from fingrade.oauth.response_mode import AuthorizationResponse
from fingrade.oauth.token_endpoint import token_endpoint
from fingrade.oauth.userinfo import userinfo_endpoint
from fingrade.protocol.asgi import BodyTooLarge, json_error, read_body, to_core, to_starlette, too_large
from fingrade.protocol.body_limit import BodyLimit, BodyLimits
from fingrade.protocol.crypto import new_token, token_hash
from fingrade.protocol.edge import is_trusted
from fingrade.protocol.errors import OAuthError, invalid_request, method_not_allowed
from fingrade.protocol.failures import RETRY_AFTER, ErrorBoundary, describe, is_store_failure
from fingrade.protocol.http import NO_STORE, parse_params
from fingrade.runtime import build_core, close_core, ensure_bank_client
from fingrade.store.readiness import ReadinessProbe
from fingrade.store.sql.db import Database
from fingrade.store.sql.durable import SqlDurableStore
from fingrade.web import pages
from fingrade.web.openapi import openapi
from fingrade.web.security_headers import ProxyOnly, SecurityHeaders

log = logging.getLogger("fingrade.web")

SESSION_COOKIE = "__Host-fg_session"
BROWSER_COOKIE = "__Host-fg_browser"  # binds interactions to a browser and keys its CSRF tokens
CORS_PREFLIGHT_HEADERS = "Authorization, Content-Type, DPoP"


def _core(request: Request) -> Core:
    return request.app.state.core


def _trusted(request: Request) -> tuple[str, ...]:
    return request.app.state.trusted_proxies


def _cert_header(request: Request) -> str:
    return request.app.state.cert_header


def _see_other(url: str, headers: dict[str, str] | None = None) -> Response:
    # RFC 9700 §4.12: never 307 after a credential POST; 303 makes the browser switch to GET.
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store", **(headers or {})})


def _deliver(core: Core, resp: AuthorizationResponse) -> Response:
    """An authorization response: a redirect, or the auto-submitting form of form_post.jwt (JARM §2.3.3)."""
    if resp.form is None:
        return _see_other(resp.url)
    return pages.form_post_page(core.issuer, resp.url, resp.form)


def _set_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="lax")


def _signed_in(core: Core, response: Response, result: flow.SignedIn) -> Response:
    """The session cookie, and the device cookie that lets this browser past the account's shared
    throttling counter next time (oauth/login_throttle.py)."""
    _set_cookie(response, SESSION_COOKIE, result.cookie, core.settings.session_ttl)
    _set_cookie(response, DEVICE_COOKIE, result.device_cookie, DEVICE_TTL)
    return response


def _retry_after(response: Response, seconds: int | None) -> Response:
    if seconds:
        response.headers["Retry-After"] = str(seconds)  # RFC 6585 §4, RFC 9110 §10.2.3
    return response


async def _session(core: Core, request: Request) -> Session | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 100:
        return None
    return await core.store.get_session(token_hash(cookie), core.clock())


# -- discovery --------------------------------------------------------------------------------


async def metadata(request: Request) -> Response:
    body = request.app.state.metadata_json
    return Response(
        body,
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"},
        media_type="application/json",
    )


async def jwks(request: Request) -> Response:
    view = await _core(request).keys.view()
    return Response(
        orjson.dumps({"keys": view.published}),
        media_type="application/jwk-set+json",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=60"},
    )


# -- authorization ----------------------------------------------------------------------------


async def authorize(request: Request) -> Response:
    core = _core(request)
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
    session = await _session(core, request)
    browser = request.cookies.get(BROWSER_COOKIE)
    new_browser = None
    if not browser or len(browser) > 100:
        browser = new_browser = new_token(32)
    try:
        outcome = await flow.start(core, req, session, token_hash(browser))
    except OAuthError as exc:  # e.g. a pushed request used up by a concurrent completion
        return pages.error_page(core.issuer, exc)
    if isinstance(outcome, flow.Redirect):
        return _deliver(core, outcome)
    response = _see_other(f"/interaction/{outcome}")
    if new_browser:
        _set_cookie(response, BROWSER_COOKIE, new_browser, None)
    return response


async def _load_interaction(core: Core, request: Request) -> tuple[flow.Interaction, str]:
    browser = request.cookies.get(BROWSER_COOKIE, "")
    iid = request.path_params["iid"]
    if not browser or len(iid) > 64:
        raise flow.gone()
    return await flow.load(core, iid, token_hash(browser)), browser


async def _render_step(core: Core, step: Any, browser: str, status: int = 200) -> Response:
    if isinstance(step, flow.Redirect):
        return _deliver(core, step)
    iid = step.interaction.id
    redirect_uri = step.interaction.request.redirect_uri
    if isinstance(step, flow.ShowLogin):
        csrf = flow.csrf_token(core, browser, "login:" + iid)
        return pages.login_page(core.issuer, iid, step.client, redirect_uri, csrf, step.error, status=status)
    csrf = flow.csrf_token(core, browser, "consent:" + iid)
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


def _accounts_port(request: Request) -> CustomerAccounts:
    return request.app.state.customer_accounts


MAX_ACCOUNT_CHOICES = 50


def _selection(form: dict[str, str]) -> flow.Selection:
    """Checkboxes account_1..account_N (distinct names: duplicated parameters are refused) and the
    debtor_account radio group."""
    chosen = tuple(form[f"account_{i}"] for i in range(1, MAX_ACCOUNT_CHOICES + 1) if f"account_{i}" in form)
    return flow.Selection(accounts=chosen, debtor=form.get("debtor_account"))


async def interaction_page(request: Request) -> Response:
    core = _core(request)
    try:
        interaction, browser = await _load_interaction(core, request)
        step = await flow.resume(core, interaction, await _session(core, request), _accounts_port(request))
        return await _render_step(core, step, browser)
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)


async def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise invalid_request("the request body must be a form")
    return parse_params(await read_body(request, 8192))


async def login_submit(request: Request) -> Response:
    core = _core(request)
    try:
        interaction, browser = await _load_interaction(core, request)
        form = await _form(request)
        if not flow.check_csrf(core, browser, "login:" + interaction.id, form.get("csrf_token", "")):
            raise OAuthError("invalid_request", "the form has expired; go back and try again", 403)
        ip = (await to_core(request, _trusted(request), read=False)).client_ip
        result = await flow.login(
            core,
            interaction,
            form.get("username", ""),
            form.get("password", ""),
            ip,
            request.cookies.get(DEVICE_COOKIE),
        )
        if isinstance(result, flow.ShowLogin):
            csrf = flow.csrf_token(core, browser, "login:" + interaction.id)
            return _retry_after(
                pages.login_page(
                    core.issuer,
                    interaction.id,
                    result.client,
                    interaction.request.redirect_uri,
                    csrf,
                    result.error,
                    username=form.get("username", "")[:100],
                    status=result.status,
                ),
                result.retry_after,
            )
        previous = request.cookies.get(SESSION_COOKIE)
        if previous and len(previous) <= 100:
            await core.store.delete_session(token_hash(previous))  # a new sign-in replaces the old session
        return _signed_in(core, _see_other(f"/interaction/{interaction.id}"), result)
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)


async def consent_submit(request: Request) -> Response:
    core = _core(request)
    try:
        interaction, browser = await _load_interaction(core, request)
        form = await _form(request)
        if not flow.check_csrf(core, browser, "consent:" + interaction.id, form.get("csrf_token", "")):
            raise OAuthError("invalid_request", "the form has expired; go back and try again", 403)
        decision = form.get("decision")
        if decision not in ("approve", "deny"):
            raise invalid_request("choose Allow or Deny")
        ip = (await to_core(request, _trusted(request), read=False)).client_ip
        step = await flow.decide(
            core,
            interaction,
            await _session(core, request),
            decision == "approve",
            ip,
            _selection(form),
            _accounts_port(request),
        )
        return await _render_step(core, step, browser, 400 if isinstance(step, flow.ShowConsent) else 200)
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)


async def logout(request: Request) -> Response:
    core = _core(request)
    browser = request.cookies.get(BROWSER_COOKIE, "")
    if request.method == "GET":
        if not browser:
            browser = new_token(32)
        response = pages.message_page(
            core.issuer,
            "Sign out",
            "Sign out of the bank on this browser?",
            form_action="/logout",
            button="Sign out",
            csrf=flow.csrf_token(core, browser, "logout"),
        )
        if not request.cookies.get(BROWSER_COOKIE):
            _set_cookie(response, BROWSER_COOKIE, browser, None)
        return response
    try:
        form = await _form(request)
    except OAuthError as exc:
        return pages.error_page(core.issuer, exc)
    if not flow.check_csrf(core, browser, "logout", form.get("csrf_token", "")):
        return pages.error_page(core.issuer, OAuthError("invalid_request", "the form has expired", 403))
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await core.store.delete_session(token_hash(cookie))
    response = pages.message_page(core.issuer, "Signed out", "You are signed out of the bank on this browser.")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response


# -- the customer's own pages: connected apps -----------------------------------

CONNECTIONS = "/account/connections"


def _browser(request: Request) -> tuple[str, str | None]:
    """The browser-binding secret (keys CSRF tokens), and a new one to set if there was none."""
    browser = request.cookies.get(BROWSER_COOKIE, "")
    if browser and len(browser) <= 100:
        return browser, None
    fresh = new_token(32)
    return fresh, fresh


async def account_login(request: Request) -> Response:
    core = _core(request)
    if await _session(core, request) is not None and request.method == "GET":
        return _see_other(CONNECTIONS)
    browser, fresh = _browser(request)
    if request.method == "GET":
        response: Response = pages.account_login_page(core.issuer, flow.csrf_token(core, browser, "account-login"))
        if fresh:
            _set_cookie(response, BROWSER_COOKIE, fresh, None)
        return response
    try:
        form = await _form(request)
        if fresh or not flow.check_csrf(core, browser, "account-login", form.get("csrf_token", "")):
            raise OAuthError("invalid_request", "the form has expired; go back and try again", 403)
    except (OAuthError, BodyTooLarge) as exc:
        return pages.error_page(core.issuer, exc)
    ip = (await to_core(request, _trusted(request), read=False)).client_ip
    result = await flow.authenticate(
        core, form.get("username", ""), form.get("password", ""), ip, device_cookie=request.cookies.get(DEVICE_COOKIE)
    )
    if isinstance(result, flow.LoginRefused):
        return _retry_after(
            pages.account_login_page(
                core.issuer,
                flow.csrf_token(core, browser, "account-login"),
                result.message,
                form.get("username", "")[:100],
                status=result.status,
            ),
            result.retry_after,
        )
    previous = request.cookies.get(SESSION_COOKIE)
    if previous and len(previous) <= 100:
        await core.store.delete_session(token_hash(previous))
    return _signed_in(core, _see_other(CONNECTIONS), result)


async def connections_page(request: Request) -> Response:
    core = _core(request)
    session = await _session(core, request)
    user = await core.store.get_user(session.user_id) if session else None
    if session is None or user is None or user.disabled:
        return _see_other(pages.ACCOUNT_LOGIN)
    browser, fresh = _browser(request)
    notice = ""
    revoked = _revoked_here(core, request, browser, user.id)
    if revoked is not None and (client := await core.store.get_client(revoked)) is not None:
        notice = f"{client.client_name or client.client_id} can no longer access your bank."
    apps = await consents.connections(core, user.id)
    response = pages.connections_page(
        core.issuer, user, apps, flow.csrf_token(core, browser, "connections:" + user.id), notice
    )
    if fresh:
        _set_cookie(response, BROWSER_COOKIE, fresh, None)
    return response


async def connections_revoke(request: Request) -> Response:
    core = _core(request)
    session = await _session(core, request)
    if session is None:
        return _see_other(pages.ACCOUNT_LOGIN)
    browser = request.cookies.get(BROWSER_COOKIE, "")
    try:
        form = await _form(request)
        # Bound to this browser and this customer: a forged cross-site form has no valid token.
        if not flow.check_csrf(core, browser, "connections:" + session.user_id, form.get("csrf_token", "")):
            raise OAuthError("invalid_request", "the form has expired; go back and try again", 403)
        client_id = form.get("client_id", "")
        if not client_id or len(client_id) > 64:
            raise invalid_request("choose an app to revoke")
    except (OAuthError, BodyTooLarge) as exc:
        return pages.error_page(core.issuer, exc)
    ip = (await to_core(request, _trusted(request), read=False)).client_ip
    # Only this customer's grants: a tampered client_id reaches nobody else's.
    await consents.revoke(core, session.user_id, client_id, by="customer", ip=ip)
    # The notice on the next page is signed for this browser, customer, app and moment: a link
    # naming an app of someone's choosing shows nothing.
    at = str(core.clock())
    sig = flow.csrf_token(core, browser, f"revoked:{session.user_id}:{client_id}:{at}")
    return _see_other(f"{CONNECTIONS}?{urlencode({'revoked': client_id, 'at': at, 'sig': sig})}")


REVOKED_NOTICE_SECONDS = 300


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


# -- back-channel endpoints -------------------------------------------------------------------


def _cors(headers: dict[str, str], origin: str) -> None:
    headers["Access-Control-Allow-Origin"] = origin
    headers["Vary"] = "Origin"
    # RFC 9449 §8: a browser app must be able to read the nonce it is asked to use.
    headers["Access-Control-Expose-Headers"] = "DPoP-Nonce, WWW-Authenticate"


async def token(request: Request) -> Response:
    core = _core(request)
    origin = request.headers.get("origin")
    if request.method == "OPTIONS":
        # CORS preflight: only origins registered by browser-app (spa) clients.
        headers = {"Vary": "Origin"}
        if origin and await core.store.origin_registered(origin):
            _cors(headers, origin)
            headers.update(
                {
                    "Access-Control-Allow-Methods": "POST",
                    "Access-Control-Allow-Headers": CORS_PREFLIGHT_HEADERS,
                    "Access-Control-Max-Age": "600",
                }
            )
        return Response(status_code=204, headers=headers)
    try:
        creq = await to_core(request, _trusted(request), cert_header=_cert_header(request))
    except BodyTooLarge as exc:
        return json_error(exc)
    resp, client = await token_endpoint(core, creq)
    if origin:
        if client is not None:
            if get_profile(client.profile).cors_at_token_endpoint and origin in client.allowed_origins:
                _cors(resp.headers, origin)
        elif resp.status >= 400 and await core.store.origin_registered(origin):
            _cors(resp.headers, origin)  # let a registered browser app read why it failed
    return to_starlette(resp)


def _endpoint(handler: Any, path_param: str | None = None) -> Any:
    """A core endpoint: the request as HttpRequest; with `path_param`, that path parameter too (None
    on a route without it)."""

    async def route(request: Request) -> Response:
        try:
            creq = await to_core(request, _trusted(request), cert_header=_cert_header(request))
        except BodyTooLarge as exc:
            return json_error(exc)
        if path_param is None:
            return to_starlette(await handler(_core(request), creq))
        return to_starlette(await handler(_core(request), creq, request.path_params.get(path_param)))

    return route


async def health(request: Request) -> Response:
    """Liveness: the process answers. No store is touched: a store outage must not get a node
    restarted (it recovers by itself); readiness below takes it out of the load balancer."""
    return Response(b'{"status":"ok"}', media_type="application/json", headers=dict(NO_STORE))


async def ready(request: Request) -> Response:
    """Readiness: the signing keys load and both stores take a write and read it back."""
    result = await request.app.state.readiness.check()
    if result.ready:
        return Response(b'{"status":"ready"}', media_type="application/json", headers=dict(NO_STORE))
    return Response(
        orjson.dumps({"status": "unavailable", "failed": list(result.failed)}),
        503,
        media_type="application/json",
        headers={**NO_STORE, "Retry-After": RETRY_AFTER},
    )


async def home(request: Request) -> Response:
    core = _core(request)
    return pages.message_page(
        core.issuer,
        "Fingrade authorization server",
        "This server signs people in for the applications they use with their bank. "
        f"Metadata: {core.issuer}/.well-known/openid-configuration",
    )


ALL = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


async def _not_found(request: Request, exc: Exception) -> Response:
    return Response(b'{"error":"not_found"}', 404, media_type="application/json")


def _failure(request: Request, store: bool) -> Response:
    """The answer to a failure the request did not cause (failures.ErrorBoundary): a store outage is
    503 temporarily_unavailable with Retry-After (RFC 6749 §4.1.2.1), anything else 500 server_error.
    JSON, except for a browser's page request (Accept: text/html), which gets an error page."""
    error, status = ("temporarily_unavailable", 503) if store else ("server_error", 500)
    headers = {"Retry-After": RETRY_AFTER} if store else {}
    if "text/html" in request.headers.get("accept", ""):
        try:
            text = (
                "The bank cannot complete this right now. Please try again in a moment."
                if store
                else "Something went wrong on our side. Please try again later."
            )
            page = pages.error_page(_core(request).issuer, OAuthError(error, text, status))
            page.headers.update(headers)
            return page
        except Exception:
            log.exception("rendering the error page failed")
    return Response(
        orjson.dumps({"error": error}),
        status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **headers},
    )


async def _janitor(core: Core) -> None:
    while True:
        await asyncio.sleep(core.settings.janitor_interval * random.uniform(0.8, 1.2))
        try:
            now = core.clock()
            removed = await core.onetime.purge_expired() + await core.store.purge_expired(now)
            await core.keys.purge_retired(now)
            if removed:
                log.info("janitor removed %d expired rows", removed)
        except Exception as exc:
            if is_store_failure(exc):  # an outage: one line per round, not a traceback
                log.error("janitor round failed: %s", describe(exc))
            else:
                log.exception("janitor round failed")


def _database(core: Core) -> Database:
    """The SQL database under the durable store: readiness writes to it, and the bank's tables are there."""
    if not isinstance(core.store, SqlDurableStore):
        raise TypeError("the durable store must be SqlDurableStore")
    return core.store.db


def _readiness(core: Core, db: Database) -> ReadinessProbe:
    async def keys() -> None:
        await core.keys.view()

    return ReadinessProbe(db, core.onetime, {"keys": keys})


async def _bank(settings: Settings, app: Starlette, core: Core, db: Database) -> Bank:
    client_id, secret = settings.bank_client_id, settings.bank_client_secret
    if not client_id:
        client_id, secret = await ensure_bank_client(core)
    return in_process_bank(settings, app, core.onetime, core.server_key, db, client_id, secret)


def _customer_accounts(bank: Bank | None, db: Database) -> CustomerAccounts:
    """The consent page's accounts (oauth/accounts.py). Role all: the in-process bank's ledger. Role
    as: the bank runs as its own process on the deployment's database (docs/banking-api.md, "Roles"),
    so the ledger tables are read there, through the AS's own connection to that database."""
    ledger = bank.ledger if bank is not None else Ledger(db)
    return LedgerCustomerAccounts(ledger, AccountChoice)


def create_app(settings: Settings, core: Core | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = core is None
        app.state.core = core or await build_core(settings)
        db = _database(app.state.core)
        app.state.metadata_json = orjson.dumps(server_metadata(app.state.core))
        app.state.readiness = _readiness(app.state.core, db)
        task = asyncio.create_task(_janitor(app.state.core))
        bank = None
        if bank_app is not None:
            bank = await _bank(settings, app, app.state.core, db)
            bank_app.state.bank = bank
        app.state.customer_accounts = _customer_accounts(bank, db)
        try:
            yield
        finally:
            task.cancel()
            if bank is not None:
                await bank.trust.close()
            if own:
                await close_core(app.state.core)

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
        Route("/jwks", jwks, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/authorize", authorize, methods=ALL),
        Route("/interaction/{iid}", interaction_page, methods=["GET"]),
        Route("/interaction/{iid}/login", login_submit, methods=["POST"]),
        Route("/interaction/{iid}/consent", consent_submit, methods=["POST"]),
        Route("/logout", logout, methods=["GET", "POST"]),
        Route(pages.ACCOUNT_LOGIN, account_login, methods=["GET", "POST"]),
        Route(CONNECTIONS, connections_page, methods=["GET"]),
        Route(CONNECTIONS + "/revoke", connections_revoke, methods=["POST"]),
        Route("/token", token, methods=ALL),
        Route("/par", _endpoint(par_endpoint), methods=ALL),
        Route("/userinfo", _endpoint(userinfo_endpoint), methods=ALL),
        Route("/introspect", _endpoint(introspection_endpoint), methods=ALL),
        Route("/revoke", _endpoint(revocation_endpoint), methods=ALL),
        Route("/register", _endpoint(register_endpoint), methods=ALL),
        Route("/register/{client_id}", _endpoint(manage_endpoint, "client_id"), methods=ALL),
        Route("/consent-resources", _endpoint(consent_resource_endpoint, "consent_id"), methods=ALL),
        Route("/consent-resources/{consent_id}", _endpoint(consent_resource_endpoint, "consent_id"), methods=ALL),
        Route("/healthz", health, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]
    bank_app = None
    if settings.role == "all":  # the bank API in the same process, trusting the AS only over HTTP
        bank_app, mounted = bank_api(settings.http_max_body_bytes)
        routes.append(bank_mount(mounted))
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _not_found})
    app.state.trusted_proxies = tuple(settings.trusted_proxies)
    app.state.cert_header = settings.mtls_cert_header
    # Every route's body limit, checked before the route reads (the bank API has its own: bank/api.py).
    limits = BodyLimits(
        settings.http_max_body_bytes,
        routes=(("/consent-resources", CONSENT_RESOURCE_MAX_BODY),),
        delegated=(BANK_PREFIX,) if bank_app is not None else (),
    )
    app.add_middleware(BodyLimit, limits=limits, too_large=lambda: json_error(too_large()))
    # Inside the security headers: error answers carry them too (failures.py).
    app.add_middleware(ErrorBoundary, render=_failure, logger=log)
    app.add_middleware(SecurityHeaders, hsts=settings.issuer.startswith("https://"))
    if settings.tls == "off" and settings.trusted_proxies:
        proxies = tuple(settings.trusted_proxies)
        app.add_middleware(ProxyOnly, trusted=lambda ip: is_trusted(ip, proxies))
    return app
