"""The durable store on SQL (SQLite or PostgreSQL): the composition of one part per artifact.

Each part (clients.py, users.py, factors.py, consents.py, grants.py, consent_resources.py, signing_keys.py,
registration_tokens.py, audit.py) implements one port of fingrade.oauth.ports as plain methods on
this one object: a call is one method lookup and one transaction, as before the split.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, delete, exists

from fingrade.oauth.models import Client
from fingrade.protocol.sealing import Sealer
from fingrade.store.sql.audit import SqlAuditLog
from fingrade.store.sql.clients import SqlClientStore
from fingrade.store.sql.consent_resources import SqlConsentResourceStore
from fingrade.store.sql.consents import SqlConsentStore
from fingrade.store.sql.db import Database
from fingrade.store.sql.factors import SqlFactorStore
from fingrade.store.sql.grants import SqlGrantStore
from fingrade.store.sql.registration_tokens import SqlRegistrationTokenStore
from fingrade.store.sql.schema import grants, refresh_tokens, revoked_tokens, sessions
from fingrade.store.sql.signing_keys import SqlSigningKeyStore
from fingrade.store.sql.users import SqlUserStore


class SqlDurableStore(
    SqlClientStore,
    SqlUserStore,
    SqlFactorStore,
    SqlConsentStore,
    SqlGrantStore,
    SqlConsentResourceStore,
    SqlSigningKeyStore,
    SqlRegistrationTokenStore,
    SqlAuditLog,
):
    def __init__(self, db: Database, sealer: Sealer, client_cache_seconds: float = 0.0) -> None:
        self.db = db
        self.sealer = sealer
        # Clients are read on every token request and change rarely: a short cache saves most of
        # the endpoint's time. Changes made on this node apply at once; on other nodes within
        # `client_cache_seconds`. Unknown ids are never cached (a fresh registration works at once).
        self._client_ttl = client_cache_seconds
        self._clients: dict[str, tuple[float, Client]] = {}

    # -- housekeeping ------------------------------------------------------------------------
    async def purge_expired(self, now: int) -> int:
        def q(conn: Connection) -> int:
            n = conn.execute(delete(sessions).where(sessions.c.expires_at <= now)).rowcount
            n += conn.execute(delete(revoked_tokens).where(revoked_tokens.c.expires_at <= now)).rowcount
            n += conn.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at <= now)).rowcount
            # Grants with nothing left that could be presented (no refresh token; access tokens have
            # lived out their maximum lifetime) are kept a day for audit, then removed.
            stale = and_(grants.c.created_at < now - 86400, ~exists().where(refresh_tokens.c.grant_id == grants.c.id))
            n += conn.execute(delete(grants).where(stale)).rowcount
            return n

        return await self.db.write(q)

    async def close(self) -> None:
        await self.db.close()
