"""The consent lifecycle: what a customer has allowed which app, in what state, and withdrawing it.

A consent is remembered per user and client (the scopes approved, so the app need not ask again) and
materialised as grants (token families, each with the RFC 9396 authorization_details approved). A
grant is *active*, *expired* (its account access passed `expires_at`, or no token of it is usable any
more) or *revoked*. Revoking a grant kills its access tokens at once: every check of an access token
(`tokens.verify_access_token`, introspection, userinfo) asks `store.token_status`, which looks at the
grant; refresh tokens die with it (`token._refresh_token` checks `grant.revoked_at`).

Three parties may revoke: the customer (the dashboard at /account/connections), the app (RFC 7009
/revoke of a refresh token revokes its grant) and the bank (`fingrade consents revoke`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fingrade.oauth import authorization_details
from fingrade.oauth.context import Core
from fingrade.oauth.models import Grant


class GrantState(StrEnum):
    """A grant's state, as `fingrade consents list` shows it."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def grant_state(core: Core, grant: Grant, refresh_until: int | None, now: int) -> GrantState:
    if grant.revoked_at is not None:
        return GrantState.REVOKED
    if grant.authorization_details and not authorization_details.unexpired(grant.authorization_details, now):
        return GrantState.EXPIRED  # RFC 9396: every account access of it is past its expires_at
    tokens_until = max(refresh_until or 0, grant.created_at + core.settings.access_token_ttl)
    return GrantState.ACTIVE if tokens_until > now else GrantState.EXPIRED


@dataclass
class Connection:
    """One app as the customer sees it: what it may do and since when."""

    client_id: str
    client_name: str
    since: int
    scopes: list[str]
    details: list[dict[str, Any]] = field(default_factory=list)  # of the active grants, still in force
    active_grants: list[str] = field(default_factory=list)


async def connections(core: Core, user_id: str) -> list[Connection]:
    """Apps with an active grant or a remembered consent for this user, most recent first."""
    now = core.clock()
    by_client: dict[str, Connection] = {}
    for client_id, scopes, updated_at in await core.store.list_consents(user_id):
        by_client[client_id] = Connection(client_id, client_id, updated_at, sorted(scopes))
    for grant, refresh_until in await core.store.list_user_grants(user_id):
        if grant_state(core, grant, refresh_until, now) != GrantState.ACTIVE:
            continue
        conn = by_client.setdefault(grant.client_id, Connection(grant.client_id, grant.client_id, grant.created_at, []))
        conn.since = min(conn.since, grant.created_at)
        conn.scopes = sorted(set(conn.scopes) | set(grant.scope.split()))
        conn.active_grants.append(grant.id)
        if grant.authorization_details:
            conn.details.extend(authorization_details.unexpired(grant.authorization_details, now))
    result = []
    for conn in by_client.values():
        client = await core.store.get_client(conn.client_id)
        if client is None:
            continue  # a deleted client's grants are revoked with it
        conn.client_name = client.client_name or client.client_id
        result.append(conn)
    return sorted(result, key=lambda c: (-c.since, c.client_id))


async def revoke(core: Core, user_id: str, client_id: str, *, by: str, ip: str | None = None) -> list[str]:
    """Withdraw everything `user_id` gave `client_id`: grants revoked (tokens dead at once at this
    server; at a resource server within its introspection cache time) and the consent forgotten, so the
    app must ask again. Scoped to the user: another user's grants are out of reach. Audited."""
    now = core.clock()
    revoked = await core.store.revoke_client_access(user_id, client_id, now)
    await core.store.audit(
        "consent_revoked", now, client_id=client_id, user_id=user_id, ip=ip, detail={"by": by, "grants": revoked}
    )
    return revoked


async def revoke_grant(core: Core, grant_id: str, *, by: str) -> Grant | None:
    """The bank withdraws one grant (e.g. on fraud suspicion). None if there is no such grant."""
    grant = await core.store.get_grant(grant_id)
    if grant is None:
        return None
    now = core.clock()
    await core.store.revoke_grant(grant_id, now)
    await core.store.audit(
        "consent_revoked",
        now,
        client_id=grant.client_id,
        user_id=grant.user_id,
        detail={"by": by, "grants": [grant_id]},
    )
    return grant
