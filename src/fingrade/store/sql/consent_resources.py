"""The SQL durable store: consent resources lodged by a resource server (ConsentResourceStore)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, and_, insert, select, update

from fingrade.finance.consent_ids import ConsentStatus
from fingrade.oauth.models import ConsentResource, Grant
from fingrade.store.sql.common import SqlPart, dumps
from fingrade.store.sql.grants import INSERT_GRANT, grant_values
from fingrade.store.sql.schema import consent_resources, grants


def _consent_resource_from_row(row: Any) -> ConsentResource:
    return ConsentResource(
        id=row.id,
        client_id=row.client_id,
        status=ConsentStatus(row.status),
        authorization_details=orjson.loads(row.authorization_details),
        data=orjson.loads(row.data),
        created_at=row.created_at,
        status_updated_at=row.status_updated_at,
        user_id=row.user_id,
        grant_id=row.grant_id,
    )


class SqlConsentResourceStore(SqlPart):
    """Consent resources (oauth/consent_resources.py): the status moves by conditional updates only."""

    async def create_consent_resource(self, resource: ConsentResource) -> None:
        def q(conn: Connection) -> None:
            conn.execute(
                insert(consent_resources).values(
                    id=resource.id,
                    client_id=resource.client_id,
                    status=resource.status,
                    authorization_details=dumps(resource.authorization_details),
                    data=dumps(resource.data),
                    created_at=resource.created_at,
                    status_updated_at=resource.status_updated_at,
                    user_id=resource.user_id,
                    grant_id=resource.grant_id,
                )
            )

        await self.db.write(q)

    async def get_consent_resource(self, consent_id: str) -> tuple[ConsentResource, int | None] | None:
        """The consent and, when it was authorised, its grant's revoked_at (None: live)."""

        def q(conn: Connection) -> tuple[ConsentResource, int | None] | None:
            row = conn.execute(
                select(consent_resources, grants.c.revoked_at.label("grant_revoked_at"))
                .select_from(consent_resources.outerjoin(grants, grants.c.id == consent_resources.c.grant_id))
                .where(consent_resources.c.id == consent_id)
            ).first()
            return (_consent_resource_from_row(row), row.grant_revoked_at) if row else None

        return await self.db.read(q)

    async def consent_resource_ids(self, grant_ids: list[str]) -> dict[str, str]:
        """grant id -> the id of the consent resource it authorised, for the grants that did."""

        def q(conn: Connection) -> dict[str, str]:
            out: dict[str, str] = {}
            for i in range(0, len(grant_ids), 500):  # bounded IN lists
                rows = conn.execute(
                    select(consent_resources.c.grant_id, consent_resources.c.id).where(
                        consent_resources.c.grant_id.in_(grant_ids[i : i + 500])
                    )
                )
                out.update({r.grant_id: r.id for r in rows})
            return out

        return await self.db.read(q)

    async def authorise_consent_resource(self, consent_id: str, grant: Grant, lodged_after: int) -> bool:
        """AwaitingAuthorisation -> Authorised and the grant created, in one transaction; False (and
        nothing written) when the consent is not awaiting authorisation by this grant's client or was
        lodged at or before `lodged_after`."""

        def q(conn: Connection) -> bool:
            done = (
                conn.execute(
                    update(consent_resources)
                    .where(
                        and_(
                            consent_resources.c.id == consent_id,
                            consent_resources.c.client_id == grant.client_id,
                            consent_resources.c.status == ConsentStatus.AWAITING_AUTHORISATION,
                            consent_resources.c.created_at > lodged_after,
                        )
                    )
                    .values(
                        status=ConsentStatus.AUTHORISED,
                        status_updated_at=grant.created_at,
                        user_id=grant.user_id,
                        grant_id=grant.id,
                        authorization_details=dumps(grant.authorization_details or []),
                    )
                ).rowcount
                == 1
            )
            if done:
                conn.execute(INSERT_GRANT, {**grant_values(grant), "revoked_at": None})
            return done

        return await self.db.write(q)

    async def set_consent_resource_status(
        self,
        consent_id: str,
        expected: tuple[ConsentStatus, ...],
        status: ConsentStatus,
        now: int,
        user_id: str | None = None,
    ) -> bool:
        """Move the consent to `status` if it is in one of `expected`; Revoked also revokes its grant
        in the same transaction (its tokens die at once). False when the status was not expected."""

        def q(conn: Connection) -> bool:
            values: dict[str, Any] = {"status": status, "status_updated_at": now}
            if user_id is not None:
                values["user_id"] = user_id
            done = (
                conn.execute(
                    update(consent_resources)
                    .where(and_(consent_resources.c.id == consent_id, consent_resources.c.status.in_(expected)))
                    .values(**values)
                ).rowcount
                == 1
            )
            if done and status == ConsentStatus.REVOKED:
                its_grant = select(consent_resources.c.grant_id).where(consent_resources.c.id == consent_id)
                conn.execute(
                    update(grants)
                    .where(and_(grants.c.id == its_grant.scalar_subquery(), grants.c.revoked_at.is_(None)))
                    .values(revoked_at=now)
                )
            return done

        return await self.db.write(q)
