"""Passkeys (WebAuthn) in the customer's pages of an authorization: the options each page offers
and what an answer does - sign in on the login page ("passkeys first"), the second factor after a
password or for a step-up, a payment's confirmation bound to its details (dynamic linking), and a
new passkey at enrolment. The ceremonies themselves are passkeys.py; the order of the pages and
what follows a factor are interaction.py."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from fingrade.finance import dynamic_linking
from fingrade.oauth import authn_level, factors, login_throttle, passkeys
from fingrade.oauth.context import Core
from fingrade.oauth.interaction import (
    EnrolmentDone,
    FactorAccepted,
    FactorStep,
    Interaction,
    ShowEnrolment,
    ShowLogin,
    ShowSecondFactor,
    SignedIn,
    Step,
    active_user,
    at_factor_step,
    client_of,
    confirm_payment,
    factor_signed_in,
    factor_step,
    factor_user,
)
from fingrade.oauth.models import FactorKind, Session, User
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.protocol.crypto import new_token, token_hash

PASSKEY_SIGN_IN = "sign-in"  # the login page: any of this site's passkeys, the customer not yet known
PASSKEY_FACTOR = "second-factor"  # the factor step: the customer's own passkeys (and a payment's link)
PASSKEY_ENROL = "enrol"  # the enrolment step: a new passkey for the customer
MAX_CREDENTIAL_JSON = 8000  # a PublicKeyCredential's JSON (the form's limit is 8 KiB)

_PASSKEY_EXPIRED = "This passkey request has expired. Please try again."
_PASSKEY_UNREADABLE = "The passkey's answer could not be read. Please try again."
_PASSKEY_UNKNOWN = "This passkey cannot be used to sign in here. Try another passkey, or your password."
_PASSKEY_NOT_YOURS = "This passkey is not one of yours. Try another passkey, or a code."
_PASSKEY_CLONED = "This passkey cannot be used: it may have been copied. Please contact us."


def relying_party(core: Core) -> passkeys.RelyingParty:
    """The WebAuthn Relying Party of this server: the issuer's host and origin."""
    return passkeys.RelyingParty.for_issuer(core.issuer)


def _ceremony_key(interaction: Interaction, purpose: str) -> str:
    return token_hash(f"{interaction.id}|{purpose}")


async def _keep_ceremony(
    core: Core, interaction: Interaction, purpose: str, state: dict[str, Any], user_id: str | None
) -> None:
    record = {"state": state, "user_id": user_id}
    await core.onetime.put(
        OneTimeKind.PASSKEY_CEREMONY, _ceremony_key(interaction, purpose), record, ttl=passkeys.TIMEOUT
    )


async def passkey_offer(core: Core, step: Step) -> dict[str, Any] | None:
    """The WebAuthn options for the page of `step` (the JSON that `PublicKeyCredential.parse…FromJSON`
    reads), with the ceremony's state kept; None when the page offers no passkey. The login page
    asks for any passkey of this site (a discoverable credential names its customer); the factor step
    for the customer's own, bound to the payment being confirmed; enrolment makes a new one."""
    now = core.clock()
    if isinstance(step, ShowLogin):
        if core.settings.sca == "off":
            return None
        options, state = passkeys.authentication_options(relying_party(core), None, None, now)
        await _keep_ceremony(core, step.interaction, PASSKEY_SIGN_IN, state, None)
        return options
    if isinstance(step, ShowSecondFactor):
        own = [f for f in step.factors if f.kind == FactorKind.PASSKEY]
        if not own:
            return None
        linked = dynamic_linking.details_hash(step.payment) if step.payment is not None else None
        options, state = passkeys.authentication_options(relying_party(core), own, linked, now)
        await _keep_ceremony(core, step.interaction, PASSKEY_FACTOR, state, step.user.id)
        return options
    if isinstance(step, ShowEnrolment):
        existing = await core.store.list_factors(step.user.id)
        try:
            options, state = passkeys.registration_options(
                relying_party(core),
                step.user.id,
                step.user.username,
                step.user.name or step.user.username,
                existing,
                now,
            )
        except ValueError:  # a user id that cannot be a WebAuthn user handle: the app's codes only
            return None
        await _keep_ceremony(core, step.interaction, PASSKEY_ENROL, state, step.user.id)
        return options
    return None


def _credential_json(text: str) -> dict[str, Any] | None:
    """The browser's `PublicKeyCredential.toJSON()`, as the form carries it; None if it is not one."""
    if not text or len(text) > MAX_CREDENTIAL_JSON:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


async def _take_ceremony(
    core: Core, interaction: Interaction, purpose: str, user_id: str | None
) -> dict[str, Any] | None:
    """The kept state of the page's ceremony, taken (once); None if there is none for this customer."""
    kept = await core.onetime.take(OneTimeKind.PASSKEY_CEREMONY, _ceremony_key(interaction, purpose))
    if kept is None or kept.get("user_id") != user_id or not isinstance(kept.get("state"), dict):
        return None
    state: dict[str, Any] = kept["state"]
    return state


async def _passkey_refused(
    core: Core, event: str, reason: str, ip: str, client_id: str, user_id: str | None, message: str, status: int
) -> factors.Refused:
    # The reason says which check failed; never the credential or its JSON.
    await core.store.audit(event, core.clock(), client_id=client_id, user_id=user_id, ip=ip, detail={"reason": reason})
    return factors.Refused(message, status)


async def _check_passkey(
    core: Core,
    interaction: Interaction,
    purpose: str,
    credential: str,
    user: User | None,
    linked_hash: str | None,
    ip: str,
    client_id: str,
) -> tuple[User, passkeys.Verified] | factors.Refused:
    """A passkey's answer to the page's challenge: whose it is (`user`, or with None any active
    customer's discoverable credential) and that it passes every rule of WebAuthn §7.2. A wrong
    answer counts on the customer's throttle like a wrong code; a counter that did not go up (or
    lost the compare-and-set to a concurrent sign-in) is a suspected clone (§6.1.1)."""
    expected = user.id if user is not None else None
    state = await _take_ceremony(core, interaction, purpose, expected)
    if state is None:
        return await _passkey_refused(
            core, "passkey_failed", "no ceremony", ip, client_id, expected, _PASSKEY_EXPIRED, 400
        )
    response = _credential_json(credential)
    if response is None:
        return await _passkey_refused(
            core, "passkey_failed", "unreadable answer", ip, client_id, expected, _PASSKEY_UNREADABLE, 400
        )
    try:
        credential_id = passkeys.credential_id_of(response)
    except passkeys.PasskeyError as exc:
        return await _passkey_refused(core, "passkey_failed", exc.reason, ip, client_id, expected, exc.message, 400)
    factor = await core.store.factor_by_credential(credential_id)
    owner = await active_user(core, factor.user_id) if factor is not None else None
    if factor is None or factor.kind != FactorKind.PASSKEY or owner is None:
        # Unknown, removed, or a disabled customer's: the same answer for each.
        return await _passkey_refused(
            core, "passkey_failed", "unknown credential", ip, client_id, expected, _PASSKEY_UNKNOWN, 401
        )
    if user is not None and owner.id != user.id:
        return await _passkey_refused(
            core, "passkey_failed", "another customer's credential", ip, client_id, expected, _PASSKEY_NOT_YOURS, 401
        )
    limit = await factors.reserve_attempt(core, owner.id, ip, client_id)
    if isinstance(limit, factors.Refused):
        return limit
    now = core.clock()
    try:
        verified = passkeys.complete_authentication(relying_party(core), state, response, factor, linked_hash, now)
    except passkeys.PasskeyCloned as exc:
        return await _passkey_refused(
            core, "passkey_clone_suspected", exc.reason, ip, client_id, owner.id, exc.message, 403
        )
    except passkeys.PasskeyError as exc:
        return await _passkey_refused(core, "passkey_failed", exc.reason, ip, client_id, owner.id, exc.message, 401)
    if not await core.store.factor_used(factor.id, now, verified.sign_count):
        if verified.sign_count is not None:  # another sign-in used this counter value first
            return await _passkey_refused(
                core,
                "passkey_clone_suspected",
                "counter lost the compare-and-set",
                ip,
                client_id,
                owner.id,
                _PASSKEY_CLONED,
                403,
            )
        return await _passkey_refused(  # removed meanwhile
            core, "passkey_failed", "factor removed", ip, client_id, owner.id, _PASSKEY_UNKNOWN, 401
        )
    await factors.attempt_succeeded(core, limit)
    await core.store.audit(
        "passkey_accepted",
        now,
        client_id=client_id,
        user_id=owner.id,
        ip=ip,
        detail={"factor": factor.id, "amr": verified.amr, "step": purpose},
    )
    return owner, verified


async def passkey_sign_in(
    core: Core, interaction: Interaction, credential: str, ip: str, device_cookie: str | None = None
) -> SignedIn | ShowLogin:
    """A passkey as the first step on the login page ("passkeys first"): a discoverable credential
    names its customer, and with user verification it is strong customer authentication on its own
    (authn_level.py), so the customer is signed in without a password."""
    client = await client_of(core, interaction)
    checked = await _check_passkey(core, interaction, PASSKEY_SIGN_IN, credential, None, None, ip, client.client_id)
    if isinstance(checked, factors.Refused):
        return ShowLogin(interaction, client, checked.message, checked.status, checked.retry_after)
    user, verified = checked
    device = login_throttle.remember_device(core, user.id, device_cookie)
    signed_in, _ = await factor_signed_in(
        core, interaction, user, authn_level.combine(verified.amr), ip, device, client
    )
    return signed_in


async def passkey_second_factor(
    core: Core, interaction: Interaction, session: Session | None, credential: str, ip: str, device_cookie: str
) -> FactorAccepted | ShowSecondFactor | ShowEnrolment | ShowLogin:
    """A passkey at the factor step, as `second_factor` takes a code: after the password, for a
    step-up, or to confirm a payment. A payment's challenge was bound to its details hash (dynamic
    linking); a passkey with user verification is both elements, so no password is asked again."""
    at = await at_factor_step(core, interaction, session)
    if not isinstance(at, FactorStep):
        return at
    client, user, amr_so_far, payment, step = at.client, at.user, at.amr_so_far, at.payment, at.page
    linked = dynamic_linking.details_hash(payment) if payment is not None else None
    checked = await _check_passkey(core, interaction, PASSKEY_FACTOR, credential, user, linked, ip, client.client_id)
    if isinstance(checked, factors.Refused):
        return replace(step, error=checked.message, status=checked.status, retry_after=checked.retry_after)
    _, verified = checked
    if payment is not None:
        password = [authn_level.PWD] if interaction.password_at is not None else []
        amr = authn_level.combine(password, verified.amr)
        return FactorAccepted(None, await confirm_payment(core, interaction, user, amr, verified.factor_id, payment))
    signed_in, _ = await factor_signed_in(
        core, interaction, user, authn_level.combine(amr_so_far, verified.amr), ip, device_cookie, client
    )
    return FactorAccepted(signed_in)


async def enrol_passkey(
    core: Core,
    interaction: Interaction,
    session: Session | None,
    credential: str,
    ip: str,
    device_cookie: str,
    name: str = "",
) -> EnrolmentDone | ShowEnrolment | ShowSecondFactor | ShowLogin:
    """A passkey created at the enrolment step (WebAuthn §7.1). Made with user verification, it is
    possession and inherence (or knowledge) in itself: with the password before it, the customer is
    signed in strongly. Enrolment at sign-in is for a customer with no factor yet: one who has a
    factor uses it (a password alone never adds a factor next to an existing one)."""
    client = await client_of(core, interaction)
    who = await factor_user(core, interaction, session)
    if who is None:
        return ShowLogin(interaction, client)
    user, amr_so_far = who
    step = await factor_step(core, interaction, client, user)
    if not isinstance(step, ShowEnrolment):
        await _take_ceremony(core, interaction, PASSKEY_ENROL, user.id)
        return step
    state = await _take_ceremony(core, interaction, PASSKEY_ENROL, user.id)
    response = _credential_json(credential)
    if state is None or response is None:
        reason, message = (
            ("no ceremony", _PASSKEY_EXPIRED) if state is None else ("unreadable answer", _PASSKEY_UNREADABLE)
        )
        refused = await _passkey_refused(
            core, "passkey_enrolment_failed", reason, ip, client.client_id, user.id, message, 400
        )
        return replace(step, error=refused.message, status=refused.status)
    limit = await factors.reserve_attempt(core, user.id, ip, client.client_id)
    if isinstance(limit, factors.Refused):
        return replace(step, error=limit.message, status=limit.status, retry_after=limit.retry_after)
    now = core.clock()
    try:
        # The customer's name for it, made printable and short rather than refused: the ceremony is spent.
        named = factors.factor_name(name, passkeys.DEFAULT_NAME)
        factor = passkeys.complete_registration(
            relying_party(core), state, response, named, new_token(12), user.id, now
        )
    except passkeys.PasskeyError as exc:
        refused = await _passkey_refused(
            core, "passkey_enrolment_failed", exc.reason, ip, client.client_id, user.id, exc.message, 400
        )
        return replace(step, error=refused.message, status=refused.status)
    # §7.1 step 26: a credential id registered already (to anyone) is refused.
    if factor.credential_id is None or await core.store.factor_by_credential(factor.credential_id) is not None:
        refused = await _passkey_refused(
            core,
            "passkey_enrolment_failed",
            "credential registered already",
            ip,
            client.client_id,
            user.id,
            "This passkey is registered already.",
            409,
        )
        return replace(step, error=refused.message, status=refused.status)
    first = not await core.store.list_factors(user.id)
    if not await core.store.add_factor(factor, core.settings.max_factors):
        # The customer had no factor (enrolment is for them only), so not the limit: the same
        # credential registered by a concurrent request.
        return replace(step, error="This passkey is registered already.", status=409)
    await factors.attempt_succeeded(core, limit)
    codes = await factors.renew_recovery_codes(core, user.id) if first else None
    await core.store.audit(
        "factor_enrolled", now, user_id=user.id, ip=ip, detail={"kind": "passkey", "factor": factor.id}
    )
    amr = authn_level.combine(
        amr_so_far, [authn_level.SWK if factor.backup_eligible else authn_level.HWK, authn_level.USER]
    )
    signed_in, done = await factor_signed_in(core, interaction, user, amr, ip, device_cookie, client)
    return EnrolmentDone(done, codes, signed_in)
