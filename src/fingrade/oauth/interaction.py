"""The user's part of an authorization: login, consent, and the decision between them.

An authorization request that needs the user is parked as an *interaction* in the one-time store,
bound to the browser that made it. The web layer renders pages; this module decides.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field, replace
from typing import Any

from fingrade.finance import dynamic_linking
from fingrade.oauth import authn_level, consent_resources, factors, login_throttle, sca_policy
from fingrade.oauth.accounts import AccountChoice, CustomerAccounts
from fingrade.oauth.authorize import (
    AuthorizationRequest,
    LinkedApproval,
    consent_needed,
    consume_pushed,
    issue_code,
    login_needed,
    request_error,
)
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client, Factor, Session, User
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
    # Strong customer authentication (docs/sca.md). The password was right, a second factor is due
    # before there is a session: whose, and when the password was given.
    pending_user_id: str | None = None
    password_at: int | None = None  # the password was given inside this interaction (a fresh element)
    enrolment: str | None = None  # a TOTP secret offered for enrolment (sealed; factors.TotpEnrolment)
    # A payment the customer approved on the consent page, awaiting the fresh authentication bound to
    # it (dynamic linking): the details as approved, account choices written in.
    approved_details: list[dict[str, Any]] | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "request": self.request.to_record(),
            "browser": self.browser,
            "login_forced": self.login_forced,
            "user_id": self.user_id,
            "auth_time": self.auth_time,
            "pending_user_id": self.pending_user_id,
            "password_at": self.password_at,
            "enrolment": self.enrolment,
            "approved_details": self.approved_details,
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
            pending_user_id=data.get("pending_user_id"),
            password_at=data.get("password_at"),
            enrolment=data.get("enrolment"),
            approved_details=data.get("approved_details"),
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
class ShowSecondFactor:
    """The second factor step: a code from the customer's authenticator app (or a recovery code), or
    a passkey. With `payment`, it is the payment's confirmation: the amount and payee are shown and
    the authentication is bound to them (dynamic linking)."""

    interaction: Interaction
    client: Client
    user: User
    factors: list[Factor]
    payment: list[dict[str, Any]] | None = None
    password_needed: bool = False  # the password too: it was not given inside this interaction
    error: str | None = None
    status: int = 200
    retry_after: int | None = None


@dataclass
class ShowEnrolment:
    """Setting up a second factor before the first strong sign-in: an authenticator app's QR code
    and key (the sealed secret travels with the interaction), or a passkey."""

    interaction: Interaction
    client: Client
    user: User
    secret: bytes
    error: str | None = None
    status: int = 200
    retry_after: int | None = None


@dataclass
class EnrolmentDone:
    """A second factor enrolled and the customer signed in with it; their recovery codes, shown once
    when this was their first factor. The browser goes on with the interaction."""

    interaction: Interaction
    recovery_codes: list[str] | None
    signed_in: SignedIn


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
    if session is not None and not authn_level.meets(
        authn_level.acr_for(session.amr), req.acr or authn_level.ACR_PASSWORD
    ):
        needs_login = needs_login or "none" in req.prompt  # a step-up needs the customer
        if not needs_login and "consent" not in req.prompt:
            # Signed in, but not as strongly as this request needs: the factor step (resume).
            return await _park(core, req, browser, needs_login)
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
    return await _park(core, req, browser, needs_login)


async def _park(core: Core, req: AuthorizationRequest, browser: str, login_forced: bool) -> Parked:
    iid = new_token(24)
    await save(core, Interaction(id=iid, request=req, browser=browser, login_forced=login_forced))
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


async def client_of(core: Core, interaction: Interaction) -> Client:
    client = await core.store.get_client(interaction.request.client_id)
    if client is None:
        raise gone()
    return client


async def save(core: Core, interaction: Interaction) -> None:
    await core.onetime.put(
        OneTimeKind.INTERACTION, token_hash(interaction.id), interaction.to_record(), ttl=core.settings.interaction_ttl
    )


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


def _needed_acr(interaction: Interaction) -> str:
    return interaction.request.acr or authn_level.ACR_PASSWORD


def _payment(core: Core, interaction: Interaction) -> bool:
    """A payment is confirmed by its own fresh authentication (dynamic linking), after the consent
    page: the sign-in before it does not take the second factor (a customer would otherwise type
    two codes, waiting for the second)."""
    return sca_policy.payment_needs_fresh_sca(core.settings, interaction.request.authorization_details)


async def active_user(core: Core, user_id: str) -> User | None:
    user = await core.store.get_user(user_id)
    return None if user is None or user.disabled else user


async def factor_step(
    core: Core, interaction: Interaction, client: Client, user: User, payment: list[dict[str, Any]] | None = None
) -> ShowSecondFactor | ShowEnrolment:
    """The factor step for `user`: their factors, or enrolment when they have none."""
    factors = await core.store.list_factors(user.id)
    if not factors:
        return await _enrolment(core, interaction, client, user)
    # A payment confirmed on a session from before this interaction: the password again, so that
    # both elements are fresh (an existing session never approves a payment alone). A passkey with
    # user verification is two elements by itself (authn_level.py).
    password_needed = payment is not None and interaction.password_at is None
    return ShowSecondFactor(interaction, client, user, factors, payment, password_needed)


async def _enrolment(core: Core, interaction: Interaction, client: Client, user: User) -> ShowEnrolment:
    offered = (
        factors.TotpEnrolment.from_record(core, interaction.enrolment, interaction.id)
        if interaction.enrolment
        else None
    )
    if offered is None:
        offered = factors.new_enrolment()
        await save(core, replace(interaction, enrolment=offered.to_record(core, interaction.id)))
    return ShowEnrolment(interaction, client, user, offered.secret)


Step = ShowLogin | ShowSecondFactor | ShowEnrolment | ShowConsent | Redirect


async def resume(
    core: Core, interaction: Interaction, session: Session | None, accounts: CustomerAccounts | None = None
) -> Step:
    client = await client_of(core, interaction)
    current = await _current_user(core, interaction, session)
    if current is None:
        pending = await active_user(core, interaction.pending_user_id) if interaction.pending_user_id else None
        if pending is not None:
            return await factor_step(core, interaction, client, pending)
        return ShowLogin(interaction, client)
    user_id, auth_time, amr = current
    user = await active_user(core, user_id)
    if user is None:
        return ShowLogin(interaction, client)
    if not _payment(core, interaction) and not authn_level.meets(authn_level.acr_for(amr), _needed_acr(interaction)):
        # Step-up (OIDC Core §3.1.2.1 acr_values, RFC 9470): signed in, but not strongly enough.
        return await factor_step(core, interaction, client, user)
    if interaction.approved_details is not None:
        return await factor_step(core, interaction, client, user, interaction.approved_details)
    req = interaction.request
    if "consent" not in req.prompt and not await consent_needed(core, req, user_id):
        return await _finish(core, interaction, user_id, auth_time, amr)
    offer = await _offer(interaction, user_id, accounts)
    return ShowConsent(interaction, client, user, offer.accounts, offer.debtors, offer.blocked, offer=offer)


async def _finish(
    core: Core,
    interaction: Interaction,
    user_id: str,
    auth_time: int,
    amr: list[str],
    linked: LinkedApproval | None = None,
) -> Redirect:
    # Take the interaction: a double-submitted form yields one code, the second sees "expired".
    if await core.onetime.take(OneTimeKind.INTERACTION, token_hash(interaction.id)) is None:
        raise gone()
    return await issue_code(core, interaction.request, user_id, auth_time, amr, linked)


@dataclass
class PasswordChecked:
    """The password was right (throttling counted, audited); no session yet."""

    user: User
    device_cookie: str  # this browser's device cookie, now knowing the user (login_throttle)


async def check_password(
    core: Core, username: str, password: str, ip: str, client_id: str | None = None, device_cookie: str | None = None
) -> PasswordChecked | LoginRefused:
    """Check a password, throttled (login_throttle): the attempt is counted before the password is
    evaluated, so no burst of parallel requests gets more guesses than the limits allow."""
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
    if core.passwords.needs_rehash(user.password_hash):
        user.password_hash = core.passwords.hash(password)
        await core.store.save_user(user)
    await core.store.audit("password_accepted", core.clock(), client_id=client_id, user_id=user.id, ip=ip)
    return PasswordChecked(user, login_throttle.remember_device(core, user.id, device_cookie))


async def start_session(
    core: Core, user_id: str, amr: list[str], device_cookie: str, ip: str, client_id: str | None = None
) -> SignedIn:
    """A signed-in session after every factor this sign-in takes."""
    now = core.clock()
    cookie = new_token(32)
    session = Session(
        id_hash=token_hash(cookie), user_id=user_id, auth_time=now, expires_at=now + core.settings.session_ttl, amr=amr
    )
    await core.store.create_session(session)
    await core.store.audit("login", now, client_id=client_id, user_id=user_id, ip=ip, detail={"amr": amr})
    return SignedIn(session, cookie, device_cookie)


@dataclass
class SecondFactorDue:
    """The password was right; the browser goes on to the second factor (or enrolment) step."""

    device_cookie: str


async def login(
    core: Core, interaction: Interaction, username: str, password: str, ip: str, device_cookie: str | None = None
) -> SignedIn | SecondFactorDue | ShowLogin:
    """Sign in inside an interaction: the password, then (docs/sca.md) a second factor when due."""
    client = await client_of(core, interaction)
    checked = await check_password(core, username, password, ip, client.client_id, device_cookie)
    if isinstance(checked, LoginRefused):
        return ShowLogin(interaction, client, checked.message, checked.status, checked.retry_after)
    user, now = checked.user, core.clock()
    has_factors = bool(await core.store.list_factors(user.id))
    if not _payment(core, interaction) and sca_policy.sign_in_needs_second_factor(
        core.settings, _needed_acr(interaction), has_factors
    ):
        await save(core, replace(interaction, pending_user_id=user.id, password_at=now, user_id=None, auth_time=None))
        return SecondFactorDue(checked.device_cookie)
    result = await start_session(core, user.id, [authn_level.PWD], checked.device_cookie, ip, client.client_id)
    signed_in = replace(
        interaction, user_id=user.id, auth_time=result.session.auth_time, password_at=now, pending_user_id=None
    )
    await save(core, signed_in)
    return result


async def factor_user(core: Core, interaction: Interaction, session: Session | None) -> tuple[User, list[str]] | None:
    """Whose second factor this step checks, and the amr they have so far: the customer whose password
    was just accepted, or the signed-in customer stepping up or confirming a payment."""
    if interaction.pending_user_id is not None:
        user = await active_user(core, interaction.pending_user_id)
        return (user, [authn_level.PWD]) if user else None
    current = await _current_user(core, interaction, session)
    if current is None:
        return None
    user = await active_user(core, current[0])
    return (user, current[2]) if user else None


@dataclass
class FactorAccepted:
    """The second factor was right: a new session with both factors (or, for a payment
    confirmation, the authorization response with the approval linked to the payment)."""

    signed_in: SignedIn | None
    redirect: Redirect | None = None


@dataclass(frozen=True)
class FactorStep:
    """Where a factor's answer lands: whose factor it is, the amr they have so far, the payment it
    confirms (dynamic linking) if any, and the page to show again when the answer is refused."""

    client: Client
    user: User
    amr_so_far: list[str]
    payment: list[dict[str, Any]] | None
    page: ShowSecondFactor


async def at_factor_step(
    core: Core, interaction: Interaction, session: Session | None
) -> FactorStep | ShowEnrolment | ShowLogin:
    """The factor step an answer (a code, a passkey) is for; or the page the interaction is at
    instead (sign-in when there is nobody, enrolment when the customer has no factor)."""
    client = await client_of(core, interaction)
    who = await factor_user(core, interaction, session)
    if who is None:
        return ShowLogin(interaction, client)
    user, amr_so_far = who
    payment = interaction.approved_details if interaction.pending_user_id is None else None
    page = await factor_step(core, interaction, client, user, payment)
    if isinstance(page, ShowEnrolment):
        return page
    return FactorStep(client, user, amr_so_far, payment, page)


async def second_factor(
    core: Core,
    interaction: Interaction,
    session: Session | None,
    code: str,
    ip: str,
    device_cookie: str,
    password: str | None = None,
) -> FactorAccepted | ShowSecondFactor | ShowEnrolment | ShowLogin:
    """A code typed at the second factor step (sign-in, step-up or payment confirmation)."""
    at = await at_factor_step(core, interaction, session)
    if not isinstance(at, FactorStep):
        return at
    client, user, amr_so_far, payment, step = at.client, at.user, at.amr_so_far, at.payment, at.page
    if step.password_needed:
        # The password again, for a payment confirmed on a session from before (both elements fresh).
        checked = await check_password(core, user.username, password or "", ip, client.client_id)
        if isinstance(checked, LoginRefused):
            return replace(step, error=checked.message, status=checked.status, retry_after=checked.retry_after)
    result = await factors.verify_code(core, user.id, code, ip, client.client_id)
    if isinstance(result, factors.Refused):
        return replace(step, error=result.message, status=result.status, retry_after=result.retry_after)
    if payment is not None:
        # This interaction's password, or the one just given, and the code.
        amr = authn_level.combine([authn_level.PWD], result.amr)
        return FactorAccepted(None, await confirm_payment(core, interaction, user, amr, result.factor_id, payment))
    amr = authn_level.combine(amr_so_far, result.amr)
    signed_in, _ = await factor_signed_in(core, interaction, user, amr, ip, device_cookie, client)
    return FactorAccepted(signed_in)


async def factor_signed_in(
    core: Core, interaction: Interaction, user: User, amr: list[str], ip: str, device_cookie: str, client: Client
) -> tuple[SignedIn, Interaction]:
    """A session with every factor of this sign-in, recorded in the interaction."""
    signed_in = await start_session(core, user.id, amr, device_cookie, ip, client.client_id)
    done = replace(
        interaction, user_id=user.id, auth_time=signed_in.session.auth_time, pending_user_id=None, enrolment=None
    )
    await save(core, done)
    return signed_in, done


async def confirm_payment(
    core: Core,
    interaction: Interaction,
    user: User,
    amr: list[str],
    factor_id: str,
    payment: list[dict[str, Any]],
) -> Redirect:
    """Issue the code for a payment whose fresh strong authentication (`amr`, with the factor
    `factor_id`) was bound to its details (PSD2 RTS Art. 5): the grant records the details hash and
    the factors."""
    now = core.clock()
    linked = LinkedApproval(dynamic_linking.details_hash(payment), [factor_id])
    await core.store.audit(
        "payment_authenticated",
        now,
        client_id=interaction.request.client_id,
        user_id=user.id,
        detail={"details_hash": linked.details_hash, "factors": linked.factors, "amr": amr},
    )
    approved = replace(interaction, request=replace(interaction.request, authorization_details=payment))
    return await _finish(core, approved, user.id, now, amr, linked)


async def enrol(
    core: Core, interaction: Interaction, session: Session | None, code: str, name: str, ip: str, device_cookie: str
) -> EnrolmentDone | ShowEnrolment | ShowLogin:
    """Confirm the authenticator app offered at the enrolment step with a code from it. The code
    proves the customer holds the app: with the password before it, that is the strong sign-in."""
    client = await client_of(core, interaction)
    who = await factor_user(core, interaction, session)
    offered = (
        factors.TotpEnrolment.from_record(core, interaction.enrolment, interaction.id)
        if interaction.enrolment
        else None
    )
    if who is None or offered is None:
        return ShowLogin(interaction, client)
    user, amr_so_far = who
    result = await factors.confirm_totp(core, user.id, offered, code, name, ip)
    if isinstance(result, factors.Refused):
        return ShowEnrolment(
            interaction, client, user, offered.secret, result.message, result.status, result.retry_after
        )
    amr = authn_level.combine(amr_so_far, [authn_level.OTP])
    signed_in = await start_session(core, user.id, amr, device_cookie, ip, client.client_id)
    done = replace(
        interaction, user_id=user.id, auth_time=signed_in.session.auth_time, pending_user_id=None, enrolment=None
    )
    await save(core, done)
    return EnrolmentDone(done, result.recovery_codes, signed_in)


# -- passkeys (W3C WebAuthn; the ceremonies' rules are in passkeys.py) ---------------------------
#
# A page that offers a passkey carries the ceremony's options; its state waits in the one-time store
# under the interaction and the page's purpose, and is taken by the first answer (right or wrong): a
# challenge answers once, and the page shown again makes a new one.


async def decide(
    core: Core,
    interaction: Interaction,
    session: Session | None,
    approve: bool,
    ip: str,
    selection: Selection | None = None,
    accounts: CustomerAccounts | None = None,
) -> Step:
    client = await client_of(core, interaction)
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
    if not _payment(core, interaction) and not authn_level.meets(authn_level.acr_for(amr), _needed_acr(interaction)):
        return await resume(core, interaction, session, accounts)  # not strong enough: the factor step first
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
    if _payment(core, interaction):
        # Dynamic linking: the payment as approved waits for its own fresh strong authentication.
        confirming = replace(interaction, approved_details=req.authorization_details)
        await save(core, confirming)
        user = await active_user(core, user_id)
        if user is None:
            return ShowLogin(interaction, client)
        return await factor_step(core, confirming, client, user, req.authorization_details)
    return await _finish(core, interaction, user_id, auth_time, amr)


def csrf_token(core: Core, browser_secret: str, purpose: str) -> str:
    return hmac.new(core.server_key, f"csrf|{browser_secret}|{purpose}".encode(), "sha256").hexdigest()


def check_csrf(core: Core, browser_secret: str, purpose: str, presented: str) -> bool:
    return bool(browser_secret) and equal(csrf_token(core, browser_secret, purpose), presented or "")
