"""The customer's security page (`/account/security`, docs/sca.md): their second factors and
recovery codes, and what they may change there — remove a factor, add an authenticator app, renew
the recovery codes.

Each change takes the password again (throttled like any sign-in, login_throttle.py): a session left
open on a shared computer is not enough to take over the account's second factors. The page itself
asks for a strong session when SCA is on (account_sign_in.session_enough). Every change is audited
with the address it came from (factors.py).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fingrade.oauth import factors
from fingrade.oauth.context import Core
from fingrade.oauth.interaction import LoginRefused, check_password
from fingrade.oauth.models import Factor, User
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.protocol.crypto import b64url, equal, token_hash

MAX_FACTOR_ID = 64
MAX_OFFER = 400  # an offered secret as the form carries it (sealed: well under this)


@dataclass(frozen=True)
class Refused:
    message: str
    status: int  # 400 malformed, 401 wrong password or code, 404 no such factor, 409 not allowed now, 429 throttled
    retry_after: int | None = None


@dataclass(frozen=True)
class Overview:
    factors: list[Factor]
    recovery_codes_left: int


async def overview(core: Core, user_id: str) -> Overview:
    return Overview(await core.store.list_factors(user_id), await core.store.recovery_codes_left(user_id))


async def _password(core: Core, user: User, typed: str, ip: str, device_cookie: str | None) -> Refused | None:
    """The password again, counted and throttled like a sign-in's."""
    checked = await check_password(core, user.username, typed, ip, device_cookie=device_cookie)
    if not isinstance(checked, LoginRefused):
        return None
    if checked.status == 401:
        return Refused("That password is not correct.", 401)
    return Refused(checked.message, checked.status, checked.retry_after)


# -- removing a factor ----------------------------------------------------------------------------


async def remove_factor(
    core: Core, user: User, factor_id: str, typed_password: str, ip: str, device_cookie: str | None
) -> Factor | Refused:
    """Remove one of the customer's own factors. Under `sca = required` the last one stays: without
    it the customer could not sign in (they would have to enrol again, with the password alone)."""
    if not factor_id or len(factor_id) > MAX_FACTOR_ID:
        return Refused("Choose the way to remove.", 400)
    refused = await _password(core, user, typed_password, ip, device_cookie)
    if refused is not None:
        return refused
    listed = await core.store.list_factors(user.id)
    # Only the customer's own: another customer's factor id is as unknown as a made-up one.
    factor = next((f for f in listed if equal(f.id, factor_id)), None)
    if factor is None:
        return Refused("That way to confirm it's you is not on your account.", 404)
    if core.settings.sca == "required" and len(listed) == 1:
        return Refused("This is your only way to confirm it's you. Add another way first.", 409)
    if not await factors.remove(core, user.id, factor.id, ip):
        return Refused("That way to confirm it's you is not on your account.", 404)
    return factor


# -- adding an authenticator app ------------------------------------------------------------------
#
# The page offers a new secret; the form carries it back sealed (factors.TotpEnrolment) with when it
# was offered and an HMAC under the server key over the customer, the browser and that moment: it
# opens only for this customer in this browser, and only for `interaction_ttl` seconds.


def _context(user_id: str, browser: str, at: str) -> str:
    return f"account-security|{user_id}|{browser}|{at}"


def _mac(core: Core, context: str, record: str) -> str:
    return b64url(hmac.new(core.server_key, f"{context}|{record}".encode(), "sha256").digest())


def offer_app(core: Core, user_id: str, browser: str) -> tuple[bytes, str]:
    """A new secret for an authenticator app, and the form field that carries it."""
    offered = factors.new_enrolment()
    at = str(core.clock())
    context = _context(user_id, browser, at)
    record = offered.to_record(core, context)
    return offered.secret, f"{at}.{record}.{_mac(core, context, record)}"


def open_offer(core: Core, field: str, user_id: str, browser: str) -> factors.TotpEnrolment | None:
    """The secret a form carries, if this server offered it to this customer in this browser lately."""
    parts = field.split(".") if len(field) <= MAX_OFFER else []
    if len(parts) != 3 or not browser:
        return None
    at, record, mac = parts
    if not (at.isascii() and at.isdigit() and len(at) <= 12):
        return None
    if not 0 <= core.clock() - int(at) <= core.settings.interaction_ttl:
        return None
    context = _context(user_id, browser, at)
    if not equal(mac, _mac(core, context, record)):
        return None
    return factors.TotpEnrolment.from_record(core, record, context)


async def add_app(
    core: Core,
    user: User,
    field: str,
    code: str,
    name: str,
    typed_password: str,
    ip: str,
    browser: str,
    device_cookie: str | None,
) -> factors.Enrolled | Refused:
    """Add the offered authenticator app once it shows the right code (and the password is right)."""
    offered = open_offer(core, field, user.id, browser)
    if offered is None:
        return Refused("This form has expired. Start adding the app again.", 400)
    refused = await _password(core, user, typed_password, ip, device_cookie)
    if refused is not None:
        return refused
    # One offer adds one app: the same form sent twice does not add it twice.
    claim = token_hash(field)
    if not await core.onetime.add(OneTimeKind.ACCOUNT_ENROLMENT, claim, ttl=core.settings.interaction_ttl):
        return Refused("This app was added already.", 409)
    result = await factors.confirm_totp(core, user.id, offered, code[:64], name, ip)
    if isinstance(result, factors.Refused):
        await core.onetime.delete(OneTimeKind.ACCOUNT_ENROLMENT, claim)  # a wrong code may be typed again
        return Refused(result.message, result.status, result.retry_after)
    return result


# -- recovery codes -------------------------------------------------------------------------------


async def renew_codes(
    core: Core, user: User, typed_password: str, ip: str, device_cookie: str | None
) -> list[str] | Refused:
    """New recovery codes (shown once); the old ones stop working."""
    refused = await _password(core, user, typed_password, ip, device_cookie)
    if refused is not None:
        return refused
    if not await core.store.list_factors(user.id):
        return Refused("Set up a way to confirm it's you first: recovery codes stand in for it.", 409)
    return await factors.renew_recovery_codes(core, user.id, ip)
