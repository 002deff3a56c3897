"""The user's part of an authorization: login, consent, and the decision between them.

An authorization request that needs the user is parked as an *interaction* in the one-time store,
bound to the browser that made it. The web layer renders pages; this module decides.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field, replace
from typing import Any

from fingrade.oauth import consent_resources, login_throttle
from fingrade.oauth.accounts import AccountChoice, CustomerAccounts
from fingrade.oauth.authorize import (
    AuthorizationRequest,
    consent_needed,
    consume_pushed,
    issue_code,
    login_needed,
    request_error,
)
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client, Session, User
from fingrade.oauth.offline_access import approved_scopes
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.oauth.response_mode import AuthorizationResponse
from fingrade.protocol.crypto import equal, new_token, token_hash
from fingrade.protocol.errors import OAuthError

# Sending the browser back to the client: a redirect, or for form_post.jwt an auto-submitted form.
Redirect = AuthorizationResponse


@dataclass(frozen=True)
class Interaction:
    """An authorization request parked for the user (login, consent), kept in the one-time store
    under the hash of its id. The record's field names are the stored JSON's."""

    id: str
    request: AuthorizationRequest
    browser: str  # hash of the browser-binding cookie
    login_forced: bool  # prompt=login or max_age exceeded: the session alone is not enough
    user_id: str | None = None  # set by a login inside this interaction
    auth_time: int | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "request": self.request.to_record(),
            "browser": self.browser,
            "login_forced": self.login_forced,
            "user_id": self.user_id,
            "auth_time": self.auth_time,
        }

    @classmethod
    def from_record(cls, iid: str, data: dict[str, Any]) -> Interaction:
        return cls(
            id=iid,
            request=AuthorizationRequest.from_record(data["request"]),
            browser=data["browser"],
            login_forced=data["login_forced"],
            user_id=data["user_id"],
            auth_time=data["auth_time"],
        )


@dataclass(frozen=True)
class Parked:
    """The request needs the user: the interaction to send the browser to."""

    interaction_id: str


@dataclass
class ShowLogin:
    interaction: Interaction
    client: Client
    error: str | None = None
    status: int = 200  # 401 after a wrong password, 429 when throttled
    retry_after: int | None = None  # seconds, when throttled


@dataclass
class SignedIn:
    session: Session
    cookie: str  # the session cookie's value
    device_cookie: str  # this browser's device cookie, now knowing the user (login_throttle)


@dataclass
class LoginRefused:
    message: str
    status: int  # 401 wrong username or password, 429 throttled
    retry_after: int | None = None


@dataclass(frozen=True)
class Selection:
    """What the customer ticked on the consent page: accounts to share, the account to pay from."""

    accounts: tuple[str, ...] = ()
    debtor: str | None = None


@dataclass(frozen=True)
class Offer:
    """What the consent page offers for the request's accounts and payers.

    `accounts`: checkboxes, when an account_information object names no accounts. `debtors`: radio
    buttons, when a payment_initiation object has no debtorAccount — only accounts the bank takes as
    the payer of every such payment. `payer_names`: for a payment (by its index in the details) that
    names its debtorAccount, how to call that account when it is the customer's and can pay it — an
    account is shown as the customer's only then. `blocked`: why the request cannot be approved (an
    app-named payer that is not such an account, or no account that can pay); the page then offers
    only Deny, and Allow is refused."""

    accounts: list[AccountChoice] | None = None
    debtors: list[AccountChoice] | None = None
    payer_names: dict[int, str] = field(default_factory=dict)
    blocked: str | None = None


@dataclass
class ShowConsent:
    interaction: Interaction
    client: Client
    user: User
    # Account selection: offered when an account_information object names no accounts
    # (checkboxes) or a payment_initiation object has no debtorAccount (radio buttons).
    pick_accounts: list[AccountChoice] | None = None
    pick_debtor: list[AccountChoice] | None = None
    error: str | None = None
    selection: Selection = field(default_factory=Selection)
    offer: Offer = field(default_factory=Offer)


def _label(a: AccountChoice) -> str:
    iban = " ".join(a.iban[i : i + 4] for i in range(0, len(a.iban), 4))
    return f"{a.name} · {iban}"


async def _offer(interaction: Interaction, user_id: str, port: CustomerAccounts | None) -> Offer:
    details = interaction.request.authorization_details or []
    if port is None:
        return Offer()
    pick_accounts = any(d["type"] == "account_information" and "accounts" not in d for d in details)
    debtors: list[AccountChoice] | None = None
    names: dict[int, str] = {}
    blocked = None
    for i, d in enumerate(details):
        if d["type"] != "payment_initiation":
            continue
        able = await port.payers(user_id, d)
        if "debtorAccount" in d:
            if able:
                names[i] = _label(able[0])
            else:
                blocked = blocked or (
                    "This payment cannot be approved: the account the app asks you to pay from "
                    "is not one of your accounts that can make it."
                )
        else:  # one choice pays every payment without a named payer: the accounts that can pay them all
            debtors = able if debtors is None else [a for a in debtors if a.iban in {b.iban for b in able}]
    if debtors == []:
        blocked = blocked or "This payment cannot be approved: none of your accounts can make it."
    return Offer(
        accounts=await port.accounts(user_id) if pick_accounts else None,
        debtors=debtors,
        payer_names=names,
        blocked=blocked,
    )


@dataclass(frozen=True)
class SelectionRefused:
    """The customer's choice on the consent page cannot be approved: the message to show."""

    message: str


def _apply_selection(
    details: list[dict[str, Any]],
    offered_accounts: list[AccountChoice] | None,
    offered_debtors: list[AccountChoice] | None,
    selection: Selection,
) -> list[dict[str, Any]] | SelectionRefused:
    """The approved details with the customer's choice written in (RFC 9396 §7.1: the AS may add to
    what it grants). Only accounts that were offered, i.e. the customer's own."""
    out = [dict(d) for d in details]
    if offered_accounts is not None:
        own = {a.iban for a in offered_accounts}
        chosen = list(dict.fromkeys(selection.accounts))
        if not chosen or not set(chosen) <= own:
            return SelectionRefused("Choose at least one account to share.")
        for d in out:
            if d["type"] == "account_information" and "accounts" not in d:
                d["accounts"] = [{"iban": iban} for iban in chosen]
    if offered_debtors is not None:
        if selection.debtor is None or selection.debtor not in {a.iban for a in offered_debtors}:
            return SelectionRefused("Choose the account to pay from.")
        for d in out:
            if d["type"] == "payment_initiation" and "debtorAccount" not in d:
                d["debtorAccount"] = {"iban": selection.debtor}
    return out


class InteractionGone(OAuthError):
    pass


def gone() -> InteractionGone:
    return InteractionGone(
        "invalid_request",
        "this sign-in request has expired or was already completed; return to the application and start again",
        400,
    )


async def start(core: Core, req: AuthorizationRequest, session: Session | None, browser: str) -> Redirect | Parked:
    """Decide what an authorization request needs: a Redirect back to the client, or the user."""
    now = core.clock()
    needs_login = login_needed(req, session, now) or "login" in req.prompt
    if "none" in req.prompt:
        # OIDC Core §3.1.2.6: prompt=none never shows a page.
        if needs_login or session is None:
            return await request_error(core, req, OAuthError("login_required", "the user is not signed in"))
        if await consent_needed(core, req, session.user_id):
            return await request_error(core, req, OAuthError("consent_required", "the user has not consented"))
        return await issue_code(core, req, session.user_id, session.auth_time, session.amr)
    if (
        not needs_login
        and session is not None
        and "consent" not in req.prompt
        and not await consent_needed(core, req, session.user_id)
    ):
        return await issue_code(core, req, session.user_id, session.auth_time, session.amr)
    iid = new_token(24)
    interaction = Interaction(id=iid, request=req, browser=browser, login_forced=needs_login)
    await core.onetime.put(
        OneTimeKind.INTERACTION, token_hash(iid), interaction.to_record(), ttl=core.settings.interaction_ttl
    )
    return Parked(iid)


async def load(core: Core, iid: str, browser: str) -> Interaction:
    data = await core.onetime.get(OneTimeKind.INTERACTION, token_hash(iid))
    if data is None:
        raise gone()
    interaction = Interaction.from_record(iid, data)
    # Only the browser that started the request may finish it (no consent on someone else's request).
    if not equal(interaction.browser, browser):
        raise gone()
    return interaction


async def _client(core: Core, interaction: Interaction) -> Client:
    client = await core.store.get_client(interaction.request.client_id)
    if client is None:
        raise gone()
    return client


async def _current_user(
    core: Core, interaction: Interaction, session: Session | None
) -> tuple[str, int, list[str]] | None:
    """The user this interaction acts for: a login done inside it, else (if allowed) the session."""
    if interaction.user_id is not None and interaction.auth_time is not None:
        if session is None or session.user_id != interaction.user_id:
            return None  # signed out or switched account in another tab: sign in again
        return interaction.user_id, interaction.auth_time, session.amr
    if interaction.login_forced or session is None:
        return None
    return session.user_id, session.auth_time, session.amr


async def resume(
    core: Core, interaction: Interaction, session: Session | None, accounts: CustomerAccounts | None = None
) -> ShowLogin | ShowConsent | Redirect:
    client = await _client(core, interaction)
    current = await _current_user(core, interaction, session)
    if current is None:
        return ShowLogin(interaction, client)
    user_id, auth_time, amr = current
    user = await core.store.get_user(user_id)
    if user is None or user.disabled:
        return ShowLogin(interaction, client)
    req = interaction.request
    if "consent" not in req.prompt and not await consent_needed(core, req, user_id):
        return await _finish(core, interaction, user_id, auth_time, amr)
    offer = await _offer(interaction, user_id, accounts)
    return ShowConsent(interaction, client, user, offer.accounts, offer.debtors, offer.blocked, offer=offer)


async def _finish(core: Core, interaction: Interaction, user_id: str, auth_time: int, amr: list[str]) -> Redirect:
    # Take the interaction: a double-submitted form yields one code, the second sees "expired".
    if await core.onetime.take(OneTimeKind.INTERACTION, token_hash(interaction.id)) is None:
        raise gone()
    return await issue_code(core, interaction.request, user_id, auth_time, amr)


async def authenticate(
    core: Core, username: str, password: str, ip: str, client_id: str | None = None, device_cookie: str | None = None
) -> SignedIn | LoginRefused:
    """Check a password, throttled (login_throttle): the attempt is counted before the password is
    evaluated, so no burst of parallel requests gets more guesses than the limits allow."""
    s = core.settings
    account = login_throttle.account_key(username)
    user = await core.store.get_user_by_username(account) if username and len(username) <= 100 else None
    device = login_throttle.known_device(core, user.id, device_cookie) if user is not None else None
    counted = login_throttle.limits(core, account, ip, device)
    wait = await core.onetime.reserve(counted, core.clock())
    if wait:
        await core.store.audit(
            "login_throttled",
            core.clock(),
            client_id=client_id,
            ip=ip,
            user_id=user.id if user else None,
            detail={"retry_after": wait},
        )
        return LoginRefused(login_throttle.wait_message(wait), 429, wait)
    ok = await core.passwords.verify(user.password_hash if user else None, password[:256])
    if not ok or user is None or user.disabled:
        await core.store.audit(
            "login_failed", core.clock(), client_id=client_id, ip=ip, user_id=user.id if user else None
        )
        return LoginRefused("The username or password is not correct.", 401)
    await login_throttle.succeeded(core, counted)
    now = core.clock()
    if core.passwords.needs_rehash(user.password_hash):
        user.password_hash = core.passwords.hash(password)
        await core.store.save_user(user)
    cookie = new_token(32)
    session = Session(
        id_hash=token_hash(cookie), user_id=user.id, auth_time=now, expires_at=now + s.session_ttl, amr=["pwd"]
    )
    await core.store.create_session(session)
    await core.store.audit("login", now, client_id=client_id, user_id=user.id, ip=ip)
    return SignedIn(session, cookie, login_throttle.remember_device(core, user.id, device_cookie))


async def login(
    core: Core, interaction: Interaction, username: str, password: str, ip: str, device_cookie: str | None = None
) -> SignedIn | ShowLogin:
    """Sign in inside an interaction."""
    client = await _client(core, interaction)
    result = await authenticate(core, username, password, ip, client.client_id, device_cookie)
    if isinstance(result, LoginRefused):
        return ShowLogin(interaction, client, result.message, result.status, result.retry_after)
    signed_in = replace(interaction, user_id=result.session.user_id, auth_time=result.session.auth_time)
    await core.onetime.put(
        OneTimeKind.INTERACTION, token_hash(interaction.id), signed_in.to_record(), ttl=core.settings.interaction_ttl
    )
    return result


async def decide(
    core: Core,
    interaction: Interaction,
    session: Session | None,
    approve: bool,
    ip: str,
    selection: Selection | None = None,
    accounts: CustomerAccounts | None = None,
) -> Redirect | ShowLogin | ShowConsent:
    client = await _client(core, interaction)
    current = await _current_user(core, interaction, session)
    if current is None:
        return ShowLogin(interaction, client)
    user_id, auth_time, amr = current
    req = interaction.request
    now = core.clock()
    if not approve:
        if await core.onetime.take(OneTimeKind.INTERACTION, token_hash(interaction.id)) is None:
            raise gone()
        await consume_pushed(core, req)
        if req.consent_id is not None:
            await consent_resources.reject(core, req.consent_id, user_id)
        await core.store.audit("consent_denied", now, client_id=client.client_id, user_id=user_id, ip=ip)
        return await request_error(core, req, OAuthError("access_denied", "the user denied the request"))
    if req.authorization_details:
        offer = await _offer(interaction, user_id, accounts)
        # A payment no account of the customer's can make is never approved, whatever the form says.
        chosen = (
            SelectionRefused(offer.blocked)
            if offer.blocked
            else _apply_selection(req.authorization_details, offer.accounts, offer.debtors, selection or Selection())
        )
        if isinstance(chosen, SelectionRefused):
            user = await core.store.get_user(user_id)
            if user is None:
                return ShowLogin(interaction, client)
            return ShowConsent(
                interaction,
                client,
                user,
                offer.accounts,
                offer.debtors,
                chosen.message,
                selection or Selection(),
                offer,
            )
        # The grant keeps exactly what the customer approved.
        req = replace(req, authorization_details=chosen)
        interaction = replace(interaction, request=req)
    # What the page asked about (offline_access only when shown as "Stay connected").
    await core.store.save_consent(
        user_id, client.client_id, frozenset(approved_scopes(client, req.scope, req.authorization_details)), now
    )
    detail: dict[str, Any] = {"scope": " ".join(req.scope)}
    if req.authorization_details:
        detail["authorization_details"] = req.authorization_details  # what exactly was approved (RFC 9396)
    await core.store.audit("consent_granted", now, client_id=client.client_id, user_id=user_id, ip=ip, detail=detail)
    return await _finish(core, interaction, user_id, auth_time, amr)


def csrf_token(core: Core, browser_secret: str, purpose: str) -> str:
    return hmac.new(core.server_key, f"csrf|{browser_secret}|{purpose}".encode(), "sha256").hexdigest()


def check_csrf(core: Core, browser_secret: str, purpose: str, presented: str) -> bool:
    return bool(browser_secret) and equal(csrf_token(core, browser_secret, purpose), presented or "")
