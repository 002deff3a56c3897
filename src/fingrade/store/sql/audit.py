"""The SQL durable store: the audit log (AuditLog)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert

from fingrade.store.sql.common import SqlPart, dumps
from fingrade.store.sql.schema import audit_events


class SqlAuditLog(SqlPart):
    """Security events."""

    async def audit(
        self,
        event: str,
        now: int,
        *,
        client_id: str | None = None,
        user_id: str | None = None,
        ip: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        def q(conn: Connection) -> None:
            conn.execute(
                insert(audit_events).values(
                    at=now,
                    event=event,
                    client_id=client_id,
                    user_id=user_id,
                    ip=ip,
                    detail=dumps(detail) if detail else None,
                )
            )

        await self.db.write(q)
