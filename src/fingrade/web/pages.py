"""Server-rendered pages: login, consent, errors. Usable without JavaScript."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import segno
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse

from fingrade.oauth import totp
from fingrade.oauth.models import Client, Factor, FactorKind, User
from fingrade.oauth.offline_access import consent_scopes
from fingrade.oauth.profiles import identity_assured
from fingrade.protocol.errors import OAuthError
from fingrade.web import consent_words

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)

BANK_NAME = "Fingrade Bank"
ACCOUNT_LOGIN = "/account/login"

SCOPE_WORDS = {
    "openid": ("Confirm who you are", "Your unique customer identifier at this bank"),
    "profile": ("See your name", "Your name and username"),
    "email": ("See your email address", "The email address you gave the bank"),
    # Listed exactly when a refresh token will be issued (oauth/offline_access.py consent_scopes).
    "offline_access": ("Stay connected", "Keep this access while you are not using the app"),
    "accounts": ("See your accounts", "Account names and numbers, balances and transactions"),
    "payments": ("Prepare payments", "Ask to make payments from your accounts; each payment still needs your approval"),
}


def describe_scopes(scopes: list[str]) -> list[dict[str, str]]:
    return [
        {"title": SCOPE_WORDS.get(s, (s, ""))[0], "detail": SCOPE_WORDS.get(s, ("", "Permission: " + s))[1]}
        for s in scopes
    ]


def page_csp(redirect_uri: str | None = None, script: bool = False) -> str:
    """The forms on a page may submit to us, and the responses may redirect to the client. `script`:
    the page runs our own static script (PASSKEY_SCRIPT), and nothing else."""
    targets = ["'self'"]
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        targets.append(f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:")
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        f"form-action {' '.join(targets)}" + ("; script-src 'self'" if script else "")
    )


# The one script of the sign-in pages: it runs the WebAuthn ceremony of a passkey form and submits
# the form; without it (or without WebAuthn) the pages work with passwords and codes.
PASSKEY_SCRIPT = "/static/passkey.js"


def _passkey_json(options: dict[str, Any] | None) -> str | None:
    """WebAuthn options for a page's data attribute (the template escapes it as an attribute value)."""
    return json.dumps(options, separators=(",", ":")) if options is not None else None


def _render(
    name: str, status: int, csp: str, issuer: str, headers: dict[str, str] | None = None, **context: object
) -> HTMLResponse:
    html = _env.get_template(name).render(bank_name=BANK_NAME, issuer=issuer, **context)
    return HTMLResponse(
        html, status, headers={**(headers or {}), "Content-Security-Policy": csp, "Cache-Control": "no-store"}
    )


def _host(redirect_uri: str) -> str:
    parts = urlsplit(redirect_uri)
    return parts.netloc or f"{parts.scheme}:"


def login_page(
    issuer: str,
    iid: str,
    client: Client,
    redirect_uri: str,
    csrf: str,
    error: str | None = None,
    username: str = "",
    status: int = 200,
    passkey: dict[str, Any] | None = None,
) -> HTMLResponse:
    return _render(
        "login.html",
        status,
        page_csp(redirect_uri, script=passkey is not None),
        issuer,
        iid=iid,
        passkey_options=_passkey_json(passkey),
        passkey_script=PASSKEY_SCRIPT,
        client_name=client.client_name,
        csrf_token=csrf,
        error=error,
        username=username,
        redirect_host=_host(redirect_uri),
    )


def _choices(accounts: list[Any] | None) -> list[dict[str, str]] | None:
    if accounts is None:
        return None
    return [
        {"iban": a.iban, "label": f"{a.name} · {consent_words.format_account({'iban': a.iban})} ({a.currency})"}
        for a in accounts
    ]


def consent_page(
    issuer: str,
    iid: str,
    client: Client,
    user: User,
    scopes: list[str],
    redirect_uri: str,
    csrf: str,
    details: list[dict[str, Any]] | None = None,
    *,
    pick_accounts: list[Any] | None = None,
    pick_debtor: list[Any] | None = None,
    error: str | None = None,
    selection: Any = None,
    payer_names: dict[int, str] | None = None,
    blocked: bool = False,
    status: int = 200,
) -> HTMLResponse:
    # RFC 9396: each authorization detail in words (plain text; the template escapes it). Account
    # selection: checkboxes for account access (all ticked at first), radio buttons for the payer.
    # `blocked`: the request cannot be approved (no account of the customer's can pay): no Allow.
    debtors = _choices(pick_debtor)
    chosen = set(selection.accounts) if selection is not None and (selection.accounts or error) else None
    debtor = (
        selection.debtor if selection is not None and selection.debtor else (debtors[0]["iban"] if debtors else None)
    )
    return _render(
        "consent.html",
        status,
        page_csp(redirect_uri),
        issuer,
        iid=iid,
        client_name=client.client_name,
        pick_accounts=_choices(pick_accounts),
        pick_debtor=debtors,
        error=error,
        chosen_accounts=chosen,
        chosen_debtor=debtor,
        blocked=blocked,
        user_name=user.name or user.username,
        csrf_token=csrf,
        # "Stay connected" exactly when a refresh token will be issued (oauth/offline_access.py).
        scopes=describe_scopes(consent_scopes(client, scopes, details)),
        details=consent_words.describe(details, payer_names) if details else [],
        one_off_payment=any(d.get("type") == "payment_initiation" for d in details or []),
        client_uri=client.metadata.get("client_uri"),
        redirect_host=_host(redirect_uri),
        confirm_app=not identity_assured(client, redirect_uri),
    )


def _payment_lines(details: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What a payment confirmation shows (dynamic linking, PSD2 RTS Art. 5(1)(a)): amount and payee."""
    return [
        {
            "amount": consent_words.display_amount(d["instructedAmount"]),
            "payee": d["creditorName"],
            "account": consent_words.format_account(d["creditorAccount"]),
        }
        for d in details
        if d.get("type") == "payment_initiation"
    ]


def second_factor_page(
    issuer: str,
    iid: str,
    client: Client,
    redirect_uri: str,
    csrf: str,
    payment: list[dict[str, Any]] | None = None,
    password_needed: bool = False,
    error: str | None = None,
    status: int = 200,
    passkey: dict[str, Any] | None = None,
) -> HTMLResponse:
    return _render(
        "second_factor.html",
        status,
        page_csp(redirect_uri, script=passkey is not None),
        issuer,
        passkey_options=_passkey_json(passkey),
        passkey_script=PASSKEY_SCRIPT,
        iid=iid,
        client_name=client.client_name,
        csrf_token=csrf,
        payments=_payment_lines(payment) if payment else None,
        password_needed=password_needed,
        error=error,
    )


def _qr_svg(uri: str) -> Markup:
    # segno writes the SVG (paths only, no script, no inline style); the otpauth URI is ours.
    return Markup(segno.make(uri, error="m").svg_inline(scale=4, title="QR code for your authenticator app"))


def enrolment_page(
    issuer: str,
    form_action: str,
    user: User,
    secret: bytes,
    csrf: str,
    redirect_uri: str | None = None,
    password_needed: bool = False,
    error: str | None = None,
    status: int = 200,
    passkey: dict[str, Any] | None = None,
    passkey_action: str | None = None,
    sealed_offer: str | None = None,
    heading: str | None = None,
    back_url: str | None = None,
) -> HTMLResponse:
    """`sealed_offer`: the offered secret as the form carries it back (the security page's
    add-an-app form); an interaction keeps it server-side instead."""
    offer = passkey is not None and passkey_action is not None
    return _render(
        "enrol.html",
        status,
        page_csp(redirect_uri, script=offer),
        issuer,
        form_action=form_action,
        offer=sealed_offer,
        heading=heading,
        back_url=back_url,
        passkey_options=_passkey_json(passkey) if offer else None,
        passkey_action=passkey_action,
        passkey_script=PASSKEY_SCRIPT,
        csrf_token=csrf,
        qr_svg=_qr_svg(totp.provisioning_uri(secret, user.username, BANK_NAME)),
        manual_key=totp.manual_key(secret),
        password_needed=password_needed,
        error=error,
    )


def recovery_codes_page(issuer: str, codes: list[str], next_url: str) -> HTMLResponse:
    return _render("recovery_codes.html", 200, page_csp(), issuer, codes=codes, next_url=next_url)


def account_login_page(
    issuer: str,
    csrf: str,
    error: str | None = None,
    username: str = "",
    status: int = 200,
    form_action: str = ACCOUNT_LOGIN,
) -> HTMLResponse:
    """Sign-in for the customer's own pages (no app involved, so no redirect target)."""
    return _render(
        "login.html",
        status,
        page_csp(),
        issuer,
        form_action=form_action,
        client_name="",
        csrf_token=csrf,
        error=error,
        username=username,
    )


def account_second_factor_page(
    issuer: str, form_action: str, csrf: str, error: str | None = None, status: int = 200, passkeys_only: bool = False
) -> HTMLResponse:
    """The second factor of a sign-in to the customer's own pages: a code or a recovery code (no
    passkey here: `passkeys_only` says so to a customer who has nothing else)."""
    return _render(
        "second_factor.html",
        status,
        page_csp(),
        issuer,
        form_action=form_action,
        iid="",
        client_name="",
        csrf_token=csrf,
        payments=None,
        password_needed=False,
        error=error,
        passkeys_only=passkeys_only,
    )


FACTOR_KINDS = {FactorKind.TOTP: "Authenticator app", FactorKind.PASSKEY: "Passkey"}


def _when(ts: int) -> tuple[str, str]:
    """A moment in words for the page, and in ISO 8601 for <time datetime>."""
    at = datetime.fromtimestamp(ts, UTC)
    return at.strftime("%-d %B %Y, %H:%M UTC"), at.strftime("%Y-%m-%dT%H:%M:%SZ")


def security_page(
    issuer: str,
    user: User,
    factors: list[Factor],
    recovery_codes_left: int,
    csrf: str,
    last_removable: bool,
    notice: str = "",
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The customer's second factors and recovery codes, with the forms that change them.
    `last_removable`: whether the only factor may go (not when SCA is required)."""
    lines = []
    for f in factors:
        added, added_iso = _when(f.created_at)
        used, used_iso = _when(f.last_used_at) if f.last_used_at is not None else ("", "")
        lines.append(
            {
                "id": f.id,
                "kind": FACTOR_KINDS.get(f.kind, "Second step"),
                "name": f.name,
                "added": added,
                "added_iso": added_iso,
                "last_used": used,
                "last_used_iso": used_iso,
                "removable": len(factors) > 1 or last_removable,
            }
        )
    return _render(
        "security.html",
        status,
        page_csp(),
        issuer,
        user_name=user.name or user.username,
        factors=lines,
        recovery_codes_left=recovery_codes_left,
        csrf_token=csrf,
        notice=notice,
        error=error,
    )


def connections_page(issuer: str, user: User, connections: list[Any], csrf: str, notice: str = "") -> HTMLResponse:
    apps = [
        {
            "client_id": c.client_id,
            "client_name": c.client_name,
            "scopes": describe_scopes(c.scopes),
            "details": consent_words.describe(c.details) if c.details else [],
            "since_iso": datetime.fromtimestamp(c.since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "since_text": datetime.fromtimestamp(c.since, UTC).strftime("%-d %B %Y, %H:%M UTC"),
        }
        for c in connections
    ]
    return _render(
        "connections.html",
        200,
        page_csp(),
        issuer,
        user_name=user.name or user.username,
        connections=apps,
        csrf_token=csrf,
        notice=notice,
    )


def error_page(issuer: str, exc: OAuthError) -> HTMLResponse:
    # The Allow header of a 405 (RFC 9110 §15.5.6) goes with the page; no other header of the error does.
    allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return _render(
        "error.html",
        exc.status if exc.status >= 400 else 400,
        page_csp(),
        issuer,
        headers=allow,
        error=exc.error,
        description=exc.description,
    )


def message_page(
    issuer: str,
    heading: str,
    text: str,
    status: int = 200,
    form_action: str | None = None,
    button: str = "",
    csrf: str = "",
) -> HTMLResponse:
    return _render(
        "message.html",
        status,
        page_csp(),
        issuer,
        heading=heading,
        text=text,
        form_action=form_action,
        button=button,
        csrf_token=csrf,
    )


# JARM §2.3.3 (form_post.jwt, after OAuth 2.0 Form Post Response Mode §2): the page posts the
# response to the redirect URI by itself. The one inline script is allowed by its hash, never by
# 'unsafe-inline'; without JavaScript the visible button does the same. The response stays out of
# caches (no-store) and out of Referer headers (no-referrer, here and in the global headers).
AUTO_SUBMIT = 'document.getElementById("authorization-response").submit();'
AUTO_SUBMIT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(AUTO_SUBMIT.encode()).digest()).decode()


def form_post_page(issuer: str, action: str, fields: dict[str, str]) -> HTMLResponse:
    html = _env.get_template("form_post.html").render(
        bank_name=BANK_NAME,
        issuer=issuer,
        action=action,
        fields=fields,
        redirect_host=_host(action),
        script=Markup(AUTO_SUBMIT),
    )
    csp = page_csp(action) + f"; script-src '{AUTO_SUBMIT_HASH}'"
    return HTMLResponse(
        html,
        200,
        headers={
            "Content-Security-Policy": csp,
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
            "Referrer-Policy": "no-referrer",
        },
    )
