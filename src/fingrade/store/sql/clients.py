"""The SQL durable store: clients (ClientStore) and their CORS origins."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, delete, exists, insert, select, update

from fingrade.oauth.models import Client
from fingrade.store.sql.common import SqlPart, dumps, wall_clock
from fingrade.store.sql.schema import client_origins, clients, consents, grants

# Hot-path statements are built once: constructing SQLAlchemy expressions costs more than
# running the query on SQLite (see docs/performance.md).
_CLIENT = select(clients).where(clients.c.client_id == bindparam("cid"))
_CLIENT_ORIGINS = select(client_origins.c.origin).where(client_origins.c.client_id == bindparam("cid"))


def _client_from_row(row: Any) -> Client:
    return Client(
        client_id=row.client_id,
        profile=row.profile,
        client_name=row.client_name,
        redirect_uris=orjson.loads(row.redirect_uris),
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        grant_types=orjson.loads(row.grant_types),
        scope=row.scope,
        secret_hash=row.secret_hash,
        jwks=orjson.loads(row.jwks) if row.jwks else None,
        metadata=orjson.loads(row.metadata),
        resource_server=bool(row.resource_server),
        registration_token_hash=row.registration_token_hash,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlClientStore(SqlPart):
    """Clients, cached for `client_cache_seconds` per node (set by SqlDurableStore)."""

    _client_ttl: float
    _clients: dict[str, tuple[float, Client]]

    async def get_client(self, client_id: str) -> Client | None:
        if "\x00" in client_id:
            return None  # no client_id holds NUL, and PostgreSQL text cannot even be queried with one
        if self._client_ttl > 0:
            hit = self._clients.get(client_id)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        client = await self._load_client(client_id)
        if client is not None and self._client_ttl > 0:
            if len(self._clients) > 10000:
                self._clients.clear()
            self._clients[client_id] = (time.monotonic() + self._client_ttl, client)
        return client

    async def _load_client(self, client_id: str) -> Client | None:
        def q(conn: Connection) -> Client | None:
            row = conn.execute(_CLIENT, {"cid": client_id}).first()
            if row is None:
                return None
            client = _client_from_row(row)
            client.allowed_origins = list(conn.execute(_CLIENT_ORIGINS, {"cid": client_id}).scalars())
            return client

        return await self.db.read(q)

    async def list_clients(self) -> list[Client]:
        def q(conn: Connection) -> list[Client]:
            origins: dict[str, list[str]] = {}
            for o in conn.execute(select(client_origins)):
                origins.setdefault(o.client_id, []).append(o.origin)
            out = []
            for row in conn.execute(select(clients).order_by(clients.c.client_id)):
                c = _client_from_row(row)
                c.allowed_origins = origins.get(c.client_id, [])
                out.append(c)
            return out

        return await self.db.read(q)

    async def save_client(self, client: Client) -> None:
        values = dict(
            client_id=client.client_id,
            profile=client.profile,
            client_name=client.client_name,
            redirect_uris=dumps(client.redirect_uris),
            token_endpoint_auth_method=client.token_endpoint_auth_method,
            grant_types=dumps(client.grant_types),
            scope=client.scope,
            secret_hash=client.secret_hash,
            jwks=dumps(client.jwks) if client.jwks else None,
            metadata=dumps(client.metadata),
            resource_server=client.resource_server,
            registration_token_hash=client.registration_token_hash,
            created_at=client.created_at,
            updated_at=client.updated_at,
        )

        def q(conn: Connection) -> None:
            found = conn.execute(select(clients.c.client_id).where(clients.c.client_id == client.client_id)).first()
            if found:
                conn.execute(update(clients).where(clients.c.client_id == client.client_id).values(**values))
            else:
                conn.execute(insert(clients).values(**values))
            conn.execute(delete(client_origins).where(client_origins.c.client_id == client.client_id))
            for origin in sorted(set(client.allowed_origins)):
                conn.execute(insert(client_origins).values(origin=origin, client_id=client.client_id))

        self._clients.pop(client.client_id, None)
        await self.db.write(q)

    async def delete_client(self, client_id: str) -> bool:
        self._clients.pop(client_id, None)

        def q(conn: Connection) -> bool:
            conn.execute(delete(client_origins).where(client_origins.c.client_id == client_id))
            conn.execute(delete(consents).where(consents.c.client_id == client_id))
            conn.execute(
                update(grants)
                .where(and_(grants.c.client_id == client_id, grants.c.revoked_at.is_(None)))
                .values(revoked_at=wall_clock())
            )
            return conn.execute(delete(clients).where(clients.c.client_id == client_id)).rowcount > 0

        return await self.db.write(q)

    async def origin_registered(self, origin: str) -> bool:
        def q(conn: Connection) -> bool:
            return conn.execute(select(exists().where(client_origins.c.origin == origin))).scalar() or False

        return await self.db.read(q)
