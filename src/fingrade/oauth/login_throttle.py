"""Sign-in throttling: slow password guessing down without letting a stranger lock a customer out.

Every password check is first *reserved* on the counters that apply to it, atomically and all or
none (one-time store `reserve`), and only then evaluated: parallel requests never get more guesses
than the limits allow. Each counter lets a few failures through, then makes every further attempt
wait, twice as long each time (`login_backoff_seconds`, up to `login_failure_window`); it is
forgotten `login_failure_window` seconds after its last failure. The counters:

- the address, whatever the account (one place trying many accounts):
  `login_max_failures_per_address`;
- the account from that address: `login_max_failures_per_account_address`;
- the account from every browser it has never signed in on, wherever they are (guessing spread over
  many addresses): `login_max_failures_per_account`;
- the account on a browser it signed in on before (a *device cookie*): the same limit as per address,
  but on that browser alone.

A browser that signed in before is never counted on the account's shared counter, so failures by
anyone else - however many, from wherever - cannot stop the customer on their own browser. The device
cookie is an HMAC under the server key that binds a random browser id to the user id; it grants no
access, it only decides which counter an attempt is counted on. A success is not a failure: it is
taken back from the address's counter and clears the counters of the account it was counted on.
"""

from __future__ import annotations

import hashlib
import hmac

from fingrade.oauth.context import Core
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.oauth.ports import AttemptLimit
from fingrade.protocol.crypto import b64url, new_token

DEVICE_COOKIE = "__Host-fg_device"
DEVICE_TTL = 180 * 86400  # how long a browser stays known without signing in again
MAX_DEVICES = 5  # accounts remembered per browser (a shared computer)


def _h(value: str) -> str:
    """Counter keys hold no username or address in clear, and stay short (128 bits)."""
    return b64url(hashlib.sha256(value.encode()).digest()[:16])


def account_key(username: str) -> str:
    return username.strip().lower()[:100]


def attempt_limit(core: Core, kind: OneTimeKind, key: str, free: int) -> AttemptLimit:
    """A counter with the sign-in back-off: `free` failures, then waits doubling up to the window."""
    s = core.settings
    return AttemptLimit(
        kind=kind,
        key=key,
        free=free,
        backoff=s.login_backoff_seconds,
        max_wait=s.login_failure_window,
        window=s.login_failure_window,
    )


def limits(core: Core, account: str, ip: str, device: str | None) -> list[AttemptLimit]:
    """The counters one password check is counted on."""
    s = core.settings
    acct = _h(account)
    out = [attempt_limit(core, OneTimeKind.LOGIN_ADDRESS, _h(ip), s.login_max_failures_per_address)]
    if device is not None:
        out.append(
            attempt_limit(
                core, OneTimeKind.LOGIN_DEVICE, f"{acct}|{_h(device)}", s.login_max_failures_per_account_address
            )
        )
    else:
        out.append(
            attempt_limit(
                core, OneTimeKind.LOGIN_ACCOUNT_ADDRESS, f"{acct}|{_h(ip)}", s.login_max_failures_per_account_address
            )
        )
        out.append(attempt_limit(core, OneTimeKind.LOGIN_ACCOUNT, acct, s.login_max_failures_per_account))
    return out


async def succeeded(core: Core, counted: list[AttemptLimit]) -> None:
    """The attempt was right: taken back from the address, the account's counters cleared."""
    await core.onetime.release([c for c in counted if c.kind == OneTimeKind.LOGIN_ADDRESS], core.clock())
    for c in counted:
        if c.kind != OneTimeKind.LOGIN_ADDRESS:
            await core.onetime.delete(c.kind, c.key)


async def unlock(core: Core, username: str) -> int:
    """An administrator's unlock: every counter of the account (all addresses, all browsers) forgotten."""
    acct = _h(account_key(username))
    removed = await core.onetime.forget(OneTimeKind.LOGIN_ACCOUNT, acct)
    for kind in (OneTimeKind.LOGIN_ACCOUNT_ADDRESS, OneTimeKind.LOGIN_DEVICE):
        removed += await core.onetime.forget(kind, acct + "|")
    return removed


def wait_message(seconds: int) -> str:
    if seconds <= 90:
        wait = f"{seconds} second{'s' if seconds != 1 else ''}"
    else:
        minutes = -(-seconds // 60)
        wait = f"{minutes} minutes"
    return f"Too many failed attempts. Wait {wait} and try again."


# -- device cookies ------------------------------------------------------------------------------


def _mac(core: Core, user_id: str, issued: str, device: str) -> str:
    return b64url(hmac.new(core.server_key, f"device|{user_id}|{issued}|{device}".encode(), "sha256").digest())


def _entries(cookie: str | None) -> list[tuple[str, str, str]]:
    """(issued, device id, mac) of each well-formed entry of the cookie; bounded."""
    if not cookie or len(cookie) > MAX_DEVICES * 100:
        return []
    out = []
    for entry in cookie.split("~")[:MAX_DEVICES]:
        parts = entry.split(".")
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if len(parts) == 3 and all(parts) and len(parts[0]) <= 12 and parts[0].isascii() and parts[0].isdigit():
            out.append((parts[0], parts[1], parts[2]))
    return out


def known_device(core: Core, user_id: str, cookie: str | None) -> str | None:
    """The id of this browser if it signed in to `user_id` before (a valid, unexpired entry)."""
    now = core.clock()
    for issued, device, mac in _entries(cookie):
        if now - DEVICE_TTL < int(issued) <= now + 60 and hmac.compare_digest(mac, _mac(core, user_id, issued, device)):
            return device
    return None


def remember_device(core: Core, user_id: str, cookie: str | None) -> str:
    """The device cookie after `user_id` signed in on this browser: its entry first (the same browser
    id, issued anew), the entries of other accounts kept (up to MAX_DEVICES in all)."""
    device = known_device(core, user_id, cookie) or new_token(16)
    issued = str(core.clock())
    own = f"{issued}.{device}.{_mac(core, user_id, issued, device)}"
    others = [".".join(e) for e in _entries(cookie) if e[1] != device]
    return "~".join([own, *others][:MAX_DEVICES])
