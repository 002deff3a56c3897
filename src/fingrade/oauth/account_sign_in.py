"""Signing in to the customer's own pages (`/account/…`, docs/sca.md): the password, then a second
factor when one is due, and only then a session — as in an authorization's sign-in, without an app.

After a right password the sign-in waits in the one-time store (`ACCOUNT_SIGN_IN`, for
`interaction_ttl`) under the hash of a random id that the browser carries; the record names the
customer, the browser it is bound to and when the password was given. The second factor (a code, a
recovery code) or, for a customer with no factor yet, enrolling an authenticator app, completes it:
the record is taken by the first success, so one password starts at most one session.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from fingrade.config import Settings
from fingrade.oauth import authn_level, factors, sca_policy
from fingrade.oauth.authn_level import ACR_PASSWORD, ACR_SCA
from fingrade.oauth.context import Core
from fingrade.oauth.interaction import LoginRefused, SignedIn, active_user, check_password, start_session
from fingrade.oauth.models import Factor, Session, User
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.protocol.crypto import equal, new_token, token_hash

# Where the customer goes once signed in: a fixed choice, never an address from the request.
Target = Literal["connections", "security"]
TARGETS: tuple[Target, ...] = ("connections", "security")
MAX_CODE = 64  # longer than any code or recovery code


def wanted_acr(settings: Settings, target: Target) -> str:
    """The level the account area asks at sign-in: SCA when the deployment requires it, and for the
    security page whenever SCA is on (managing the factors is itself guarded by them)."""
    if settings.sca == "required" or (target == "security" and settings.sca != "off"):
        return ACR_SCA
    return ACR_PASSWORD


def session_enough(settings: Settings, session: Session, target: Target) -> bool:
    """Whether a session may open `target` without signing in again."""
    wanted = wanted_acr(settings, target)
    return wanted == ACR_PASSWORD or authn_level.meets(authn_level.acr_for(session.amr), wanted)


@dataclass(frozen=True)
class Pending:
    """A sign-in whose password was right and whose second factor is due. Field names are the
    stored JSON's."""

    id: str
    user_id: str
    browser: str  # hash of the browser-binding cookie: only this browser may finish it
    password_at: int
    target: Target
    enrolment: str | None = None  # a TOTP secret offered for enrolment (sealed; factors.TotpEnrolment)

    def to_record(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "browser": self.browser,
            "password_at": self.password_at,
            "target": self.target,
            "enrolment": self.enrolment,
        }

    @classmethod
    def from_record(cls, pid: str, data: dict[str, Any]) -> Pending | None:
        target = data.get("target")
        if target not in TARGETS:
            return None
        return cls(pid, data["user_id"], data["browser"], data["password_at"], target, data.get("enrolment"))


@dataclass(frozen=True)
class SecondFactorDue:
    """The password was right; the browser carries `pending_id` to the second factor step."""

    pending_id: str
    device_cookie: str


@dataclass
class ShowCode:
    """The second factor page: a code from the app, or a recovery code."""

    pending: Pending
    user: User
    factors: list[Factor]
    error: str | None = None
    status: int = 200
    retry_after: int | None = None


@dataclass
class ShowEnrolment:
    """No factor yet and one is due: set up an authenticator app (QR code and key)."""

    pending: Pending
    user: User
    secret: bytes
    error: str | None = None
    status: int = 200
    retry_after: int | None = None


@dataclass
class Done:
    """Signed in with both factors; the recovery codes to show once when the first factor was just
    set up."""

    signed_in: SignedIn
    target: Target
    recovery_codes: list[str] | None = None


Step = ShowCode | ShowEnrolment


async def password(
    core: Core,
    username: str,
    typed: str,
    ip: str,
    browser: str,
    device_cookie: str | None,
    target: Target,
) -> SignedIn | SecondFactorDue | LoginRefused:
    """The password form of the account area (throttled and audited by check_password). When a second
    factor is due there is no session yet: the sign-in waits for it."""
    checked = await check_password(core, username, typed, ip, device_cookie=device_cookie)
    if isinstance(checked, LoginRefused):
        return checked
    user = checked.user
    has_factors = bool(await core.store.list_factors(user.id))
    if not sca_policy.sign_in_needs_second_factor(core.settings, wanted_acr(core.settings, target), has_factors):
        return await start_session(core, user.id, [authn_level.PWD], checked.device_cookie, ip)
    pending = Pending(new_token(24), user.id, browser, core.clock(), target)
    await _save(core, pending)
    return SecondFactorDue(pending.id, checked.device_cookie)


async def _save(core: Core, pending: Pending) -> None:
    await core.onetime.put(
        OneTimeKind.ACCOUNT_SIGN_IN, token_hash(pending.id), pending.to_record(), ttl=core.settings.interaction_ttl
    )


async def load(core: Core, pending_id: str, browser: str) -> Pending | None:
    """The waiting sign-in, if this browser started it and it has not expired or finished."""
    if not pending_id or len(pending_id) > 64 or not browser:
        return None
    data = await core.onetime.get(OneTimeKind.ACCOUNT_SIGN_IN, token_hash(pending_id))
    pending = Pending.from_record(pending_id, data) if data is not None else None
    if pending is None or not equal(pending.browser, browser):
        return None
    return pending


def _context(pending: Pending) -> str:
    # The offered secret opens only for this sign-in (the sealer's associated data).
    return "account-sign-in|" + pending.id


async def step(core: Core, pending: Pending) -> Step | None:
    """The page the waiting sign-in is at: the code, or enrolment for a customer with no factor.
    None when the customer is gone or disabled meanwhile."""
    user = await active_user(core, pending.user_id)
    if user is None:
        return None
    listed = await core.store.list_factors(user.id)
    if listed:
        return ShowCode(pending, user, listed)
    offered = (
        factors.TotpEnrolment.from_record(core, pending.enrolment, _context(pending)) if pending.enrolment else None
    )
    if offered is None:
        offered = factors.new_enrolment()
        await _save(core, replace(pending, enrolment=offered.to_record(core, _context(pending))))
    return ShowEnrolment(pending, user, offered.secret)


async def _finish(core: Core, pending: Pending, amr: list[str], ip: str, device_cookie: str) -> SignedIn | None:
    # Taken by the first success: a second submission of the same sign-in starts nothing.
    if await core.onetime.take(OneTimeKind.ACCOUNT_SIGN_IN, token_hash(pending.id)) is None:
        return None
    return await start_session(core, pending.user_id, amr, device_cookie, ip)


async def second_factor(core: Core, pending: Pending, code: str, ip: str, device_cookie: str) -> Done | Step | None:
    """A code typed on the account area's second factor page (throttled and audited by verify_code)."""
    shown = await step(core, pending)
    if not isinstance(shown, ShowCode):
        return shown
    result = await factors.verify_code(core, pending.user_id, code[:MAX_CODE], ip)
    if isinstance(result, factors.Refused):
        return replace(shown, error=result.message, status=result.status, retry_after=result.retry_after)
    signed_in = await _finish(core, pending, authn_level.combine([authn_level.PWD], result.amr), ip, device_cookie)
    return Done(signed_in, pending.target) if signed_in is not None else None


async def enrol(core: Core, pending: Pending, code: str, name: str, ip: str, device_cookie: str) -> Done | Step | None:
    """Confirm the authenticator app offered to a customer with no factor yet: the code proves they
    hold it, and with the password it is the strong sign-in."""
    shown = await step(core, pending)
    if not isinstance(shown, ShowEnrolment):
        return shown
    result = await factors.confirm_totp(core, pending.user_id, factors.TotpEnrolment(shown.secret), code, name, ip)
    if isinstance(result, factors.Refused):
        return replace(shown, error=result.message, status=result.status, retry_after=result.retry_after)
    signed_in = await _finish(
        core, pending, authn_level.combine([authn_level.PWD], [authn_level.OTP]), ip, device_cookie
    )
    return Done(signed_in, pending.target, result.recovery_codes) if signed_in is not None else None
