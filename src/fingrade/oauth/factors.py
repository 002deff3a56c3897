"""Second factors: checking a customer's TOTP code or recovery code, and enrolling an authenticator
app. The passkey ceremonies are in passkeys.py; which sign-ins need a second factor is sca_policy.py.

Every check is throttled like a password (login_throttle.py): a wrong code is counted on the
customer's own counter *before* the code is evaluated (one-time store `reserve`), so parallel
guesses get no more tries than the limit, and each further try waits longer. Whoever reaches this
step knows the password already, so the counter is per customer, wherever the guesses come from.
A right code is accepted once (RFC 6238 §5.2): its time step is claimed atomically in the one-time
store, on every node.
"""

from __future__ import annotations

from dataclasses import dataclass

from fingrade.oauth import authn_level, recovery_codes, totp
from fingrade.oauth.context import Core
from fingrade.oauth.login_throttle import attempt_limit, wait_message
from fingrade.oauth.models import Factor, FactorKind
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.oauth.ports import AttemptLimit
from fingrade.protocol.crypto import b64url, b64url_decode, new_token

# A claimed step is remembered until no window can accept its code again.
_STEP_MEMORY = totp.STEP * (2 * totp.WINDOW + 2)
MAX_NAME = 100


@dataclass(frozen=True)
class Verified:
    """A second factor checked: what it adds to the amr, and which factor it was."""

    amr: tuple[str, ...]
    factor_id: str  # the factor's id, or "recovery" for a recovery code
    recovery_codes_left: int | None = None  # after a recovery code was used


@dataclass(frozen=True)
class Refused:
    message: str
    status: int  # 401 wrong code, 429 throttled
    retry_after: int | None = None


def _limit(core: Core, user_id: str) -> AttemptLimit:
    free = core.settings.login_max_failures_per_account_address
    return attempt_limit(core, OneTimeKind.FACTOR_FAILURES, user_id, free)


async def reserve_attempt(core: Core, user_id: str, ip: str, client_id: str | None = None) -> AttemptLimit | Refused:
    """Count one try at a second factor of `user_id` before it is checked (a code or a passkey's
    answer): the counter to clear when it was right, or the refusal while the customer must wait."""
    limit = _limit(core, user_id)
    wait = await core.onetime.reserve([limit], core.clock())
    if wait:
        await core.store.audit(
            "second_factor_throttled",
            core.clock(),
            client_id=client_id,
            user_id=user_id,
            ip=ip,
            detail={"retry_after": wait},
        )
        return Refused(wait_message(wait), 429, wait)
    return limit


async def attempt_succeeded(core: Core, limit: AttemptLimit) -> None:
    """A right answer clears the customer's counter of wrong ones."""
    await core.onetime.delete(limit.kind, limit.key)


def factor_name(typed: str, default: str) -> str:
    """A customer's name for a factor: printable, trimmed, at most MAX_NAME characters."""
    name = " ".join("".join(c for c in typed if c.isprintable()).split())[:MAX_NAME]
    return name or default


async def verify_code(
    core: Core, user_id: str, typed: str, ip: str, client_id: str | None = None
) -> Verified | Refused:
    """A code typed at the second-factor step: a TOTP code of one of the customer's authenticator
    apps, or one of their recovery codes."""
    limit = await reserve_attempt(core, user_id, ip, client_id)
    if isinstance(limit, Refused):
        return limit
    code = totp.normalise(typed)
    result: Verified | Refused | None = None
    if totp.well_formed(code):
        result = await _totp(core, user_id, code)
    else:
        result = await _recovery(core, user_id, typed)
    if isinstance(result, Verified):
        await attempt_succeeded(core, limit)  # a right code clears the counter
        await core.store.audit(
            "second_factor",
            core.clock(),
            client_id=client_id,
            user_id=user_id,
            ip=ip,
            detail={"factor": result.factor_id, "amr": list(result.amr)},
        )
        return result
    await core.store.audit("second_factor_failed", core.clock(), client_id=client_id, user_id=user_id, ip=ip)
    return result or Refused("That code is not right. Check the code in your app and try again.", 401)


async def _totp(core: Core, user_id: str, code: str) -> Verified | Refused | None:
    now = core.clock()
    for factor in await core.store.list_factors(user_id):
        if factor.kind != FactorKind.TOTP or factor.secret is None:
            continue
        step = totp.matching_step(factor.secret, code, now)
        if step is None:
            continue
        if not await core.onetime.add(OneTimeKind.TOTP_STEP, f"{factor.id}|{step}", ttl=_STEP_MEMORY):
            return Refused("That code was used already. Wait for your app to show a new code.", 401)
        await core.store.factor_used(factor.id, now)
        return Verified((authn_level.OTP,), factor.id)
    return None


async def _recovery(core: Core, user_id: str, typed: str) -> Verified | None:
    code = recovery_codes.normalise(typed)
    if code is None:
        return None
    if not await core.store.use_recovery_code(user_id, recovery_codes.code_hash(core.server_key, code)):
        return None
    left = await core.store.recovery_codes_left(user_id)
    return Verified((authn_level.OTP,), "recovery", recovery_codes_left=left)


async def second_factors(core: Core, user_id: str) -> list[Factor]:
    return await core.store.list_factors(user_id)


# -- enrolling an authenticator app ---------------------------------------------------------------


@dataclass(frozen=True)
class TotpEnrolment:
    """A TOTP secret offered to the customer, not yet confirmed by a code from their app."""

    secret: bytes

    def to_record(self, core: Core, context: str) -> str:
        """The secret as kept with the interaction or form: sealed when the server has a key-encryption key."""
        if core.sealer is None:
            return b64url(self.secret)
        return b64url(core.sealer.seal(self.secret, ("totp-enrolment|" + context).encode()))

    @classmethod
    def from_record(cls, core: Core, record: str, context: str) -> TotpEnrolment | None:
        try:
            raw = b64url_decode(record)
            if core.sealer is not None:
                raw = core.sealer.open(raw, ("totp-enrolment|" + context).encode())
        except Exception:  # noqa: BLE001 - anything that does not open is no enrolment
            return None
        return cls(raw) if len(raw) == totp.SECRET_BYTES else None


def new_enrolment() -> TotpEnrolment:
    return TotpEnrolment(totp.new_secret())


@dataclass(frozen=True)
class Enrolled:
    factor: Factor
    recovery_codes: list[str] | None  # shown once: new codes when this is the customer's first factor


async def confirm_totp(
    core: Core, user_id: str, enrolment: TotpEnrolment, typed: str, name: str, ip: str
) -> Enrolled | Refused:
    """Enrol the authenticator app once it shows the right code (proof that the customer has it)."""
    limit = await reserve_attempt(core, user_id, ip)
    if isinstance(limit, Refused):
        return limit
    now = core.clock()
    factor_id = new_token(12)
    step = totp.matching_step(enrolment.secret, totp.normalise(typed), now)
    if step is None:
        return Refused("That code is not right. Check the time on your phone and type the code your app shows.", 401)
    await attempt_succeeded(core, limit)
    first = not await core.store.list_factors(user_id)
    factor = Factor(
        id=factor_id,
        user_id=user_id,
        kind=FactorKind.TOTP,
        name=factor_name(name, "Authenticator app"),
        created_at=now,
        secret=enrolment.secret,
        last_used_at=now,
    )
    if not await core.store.add_factor(factor, core.settings.max_factors):
        return Refused(f"You have {core.settings.max_factors} ways to confirm it's you. Remove one first.", 409)
    # The code that confirmed the enrolment is used: it cannot also sign in.
    await core.onetime.add(OneTimeKind.TOTP_STEP, f"{factor.id}|{step}", ttl=_STEP_MEMORY)
    codes = await renew_recovery_codes(core, user_id, ip) if first else None
    await core.store.audit("factor_enrolled", now, user_id=user_id, ip=ip, detail={"kind": "totp", "factor": factor.id})
    return Enrolled(factor, codes)


async def renew_recovery_codes(core: Core, user_id: str, ip: str | None = None) -> list[str]:
    """New recovery codes, replacing the old ones; returned once, stored as keyed hashes."""
    codes = recovery_codes.generate()
    hashes = [recovery_codes.code_hash(core.server_key, recovery_codes.normalise(c) or "") for c in codes]
    await core.store.set_recovery_codes(user_id, hashes, core.clock())
    await core.store.audit("recovery_codes_renewed", core.clock(), user_id=user_id, ip=ip)
    return codes


async def remove(core: Core, user_id: str, factor_id: str, ip: str) -> bool:
    removed = await core.store.remove_factor(user_id, factor_id)
    if removed:
        await core.store.audit("factor_removed", core.clock(), user_id=user_id, ip=ip, detail={"factor": factor_id})
        if not await core.store.list_factors(user_id):
            await core.store.set_recovery_codes(user_id, [], core.clock())  # nothing left to recover
    return removed


async def reset(core: Core, user_id: str, by: str) -> int:
    """An operator's reset (`fingrade users mfa reset`): every factor and recovery code removed; the
    customer enrols anew at their next sign-in."""
    removed = await core.store.reset_factors(user_id)
    await core.store.audit("factors_reset", core.clock(), user_id=user_id, detail={"removed": removed, "by": by})
    return removed
