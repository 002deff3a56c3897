"""Read-only peeks into a server's database (the SQLite file or PostgreSQL), for at-rest checks
and the audit log."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from .server import Server


def db_rows(server: Server, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the server's database directly (SQLite file or PostgreSQL). `?` placeholders."""
    if server.backend == "postgres":
        import asyncpg

        n = iter(range(1, 100))
        pg_sql = re.sub(r"\?", lambda _m: f"${next(n)}", sql)

        async def run() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(server.env["FINGRADE_DATABASE_URL"])
            try:
                return [tuple(r) for r in await conn.fetch(pg_sql, *params)]
            finally:
                await conn.close()

        return asyncio.run(run())
    import sqlite3

    conn = sqlite3.connect(f"file:{server.data_dir / 'fingrade.db'}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def audit_events(server: Server, event: str, **match: str) -> list[tuple[Any, ...]]:
    where = " AND ".join(["event = ?"] + [f"{k} = ?" for k in match])
    return db_rows(
        server, f"SELECT event, client_id, user_id, ip, detail FROM audit_events WHERE {where}", event, *match.values()
    )


def user_id(server: Server, username: str) -> str:
    return db_rows(server, "SELECT id FROM users WHERE username = ?", username)[0][0]
