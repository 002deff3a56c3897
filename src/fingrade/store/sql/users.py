"""The SQL durable store: users and their sign-in sessions (UserStore)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, select, update

from fingrade.oauth.models import Session, User
from fingrade.store.sql.common import SqlPart
from fingrade.store.sql.direct import Statement
from fingrade.store.sql.schema import grants, sessions, users

USER_DISABLED = select(users.c.disabled).where(users.c.id == bindparam("uid"))
# Read on every authorization, so on the driver (direct.py). A disabled user's sessions are deleted
# when the user is disabled; the join keeps it so for a session created concurrently (fail closed).
_SESSION_DIRECT = Statement(
    "SELECT s.user_id, s.auth_time, s.expires_at, s.amr FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id_hash = :h AND s.expires_at > :now AND NOT u.disabled"
)
_USER_DIRECT = Statement(
    "SELECT id, username, password_hash, name, email, email_verified, disabled, created_at FROM users WHERE id = :uid"
)


def _user_from_row(row: Any) -> User:
    """A user from its columns in the table's order (also _USER_DIRECT's)."""
    return User(
        id=row[0],
        username=row[1],
        password_hash=row[2],
        name=row[3],
        email=row[4],
        email_verified=bool(row[5]),
        disabled=bool(row[6]),
        created_at=row[7],
    )


class SqlUserStore(SqlPart):
    """Users and sessions."""

    async def get_user(self, user_id: str) -> User | None:
        row = await self.db.direct.one(_USER_DIRECT, uid=user_id)
        return _user_from_row(row) if row is not None else None

    async def get_user_by_username(self, username: str) -> User | None:
        def q(conn: Connection) -> User | None:
            row = conn.execute(select(users).where(users.c.username == username)).first()
            return _user_from_row(row) if row else None

        return await self.db.read(q)

    async def list_users(self) -> list[User]:
        def q(conn: Connection) -> list[User]:
            return [_user_from_row(r) for r in conn.execute(select(users).order_by(users.c.username))]

        return await self.db.read(q)

    async def save_user(self, user: User) -> None:
        values = dict(
            id=user.id,
            username=user.username,
            password_hash=user.password_hash,
            name=user.name,
            email=user.email,
            email_verified=user.email_verified,
            disabled=user.disabled,
            created_at=user.created_at,
        )

        def q(conn: Connection) -> None:
            if conn.execute(select(users.c.id).where(users.c.id == user.id)).first():
                # The status changes only through set_user_disabled: a save of a user read before a
                # concurrent disable (a password rehash at sign-in) must not enable them again.
                del values["disabled"]
                conn.execute(update(users).where(users.c.id == user.id).values(**values))
            else:
                conn.execute(insert(users).values(**values))

        await self.db.write(q)

    async def set_user_disabled(self, user_id: str, disabled: bool, now: int) -> tuple[bool, int, list[str]] | None:
        """Disable or enable a user, in one transaction. Disabling also ends the user's sessions and
        revokes every live grant (its access and refresh tokens die with it). Returns (changed,
        sessions ended, grants revoked now), or None when there is no such user."""

        def q(conn: Connection) -> tuple[bool, int, list[str]] | None:
            current = conn.execute(USER_DISABLED, {"uid": user_id}).first()
            if current is None:
                return None
            changed = bool(current.disabled) != disabled
            if changed:
                conn.execute(update(users).where(users.c.id == user_id).values(disabled=disabled))
            if not disabled:
                return changed, 0, []
            # Also when already disabled: whatever a concurrent sign-in or code created is ended too.
            ended = conn.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount
            live = and_(grants.c.user_id == user_id, grants.c.revoked_at.is_(None))
            ids = [r.id for r in conn.execute(select(grants.c.id).where(live))]
            if ids:
                conn.execute(update(grants).where(and_(live, grants.c.id.in_(ids))).values(revoked_at=now))
            return changed, ended, ids

        return await self.db.write(q)

    async def create_session(self, session: Session) -> None:
        def q(conn: Connection) -> None:
            conn.execute(
                insert(sessions).values(
                    id_hash=session.id_hash,
                    user_id=session.user_id,
                    auth_time=session.auth_time,
                    expires_at=session.expires_at,
                    amr=" ".join(session.amr),
                )
            )

        await self.db.write(q)

    async def get_session(self, id_hash: str, now: int) -> Session | None:
        row = await self.db.direct.one(_SESSION_DIRECT, h=id_hash, now=now)
        if row is None:
            return None
        return Session(id_hash=id_hash, user_id=row[0], auth_time=row[1], expires_at=row[2], amr=row[3].split())

    async def delete_session(self, id_hash: str) -> None:
        def q(conn: Connection) -> None:
            conn.execute(delete(sessions).where(sessions.c.id_hash == id_hash))

        await self.db.write(q)
