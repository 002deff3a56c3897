"""Disabling a customer ends all their access at once, and enabling lets them sign in again.

Disabling is one transaction in the durable store: the user is marked disabled, their sign-in
sessions are deleted (no `prompt=none` code, no page of theirs) and every live grant is revoked, so
their access tokens fail at introspection, userinfo and the bank (at the bank within
`bank_introspection_cache_seconds`) and their refresh tokens are refused. The store also checks the
user's status wherever a session, refresh token or grant is read, so nothing created concurrently
outlives the change. Enabling restores only the ability to sign in: revoked grants stay revoked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fingrade.oauth.context import Core


@dataclass
class StatusChange:
    changed: bool  # False: the user already had that status
    sessions_ended: int = 0
    grants_revoked: list[str] = field(default_factory=list)


async def disable(core: Core, user_id: str, *, by: str) -> StatusChange | None:
    now = core.clock()
    result = await core.store.set_user_disabled(user_id, True, now)
    if result is None:
        return None
    change = StatusChange(*result)
    await core.store.audit(
        "user_disabled",
        now,
        user_id=user_id,
        detail={"by": by, "sessions": change.sessions_ended, "grants": change.grants_revoked},
    )
    return change


async def enable(core: Core, user_id: str, *, by: str) -> StatusChange | None:
    now = core.clock()
    result = await core.store.set_user_disabled(user_id, False, now)
    if result is None:
        return None
    await core.store.audit("user_enabled", now, user_id=user_id, detail={"by": by})
    return StatusChange(*result)
