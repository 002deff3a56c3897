"""Durable-store races that PostgreSQL exposes (SQLite serialises writers): concurrent writes of
one row must neither fail nor lose data, and conditional transitions have one winner."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server import _create_pg_database, drop_pg_database

from fingrade.oauth.models import ConsentResource, Grant
from fingrade.protocol.sealing import Sealer
from fingrade.store.sql.db import Database
from fingrade.store.sql.durable import SqlDurableStore
from fingrade.store.sql.migrate import upgrade


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    url = _create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_first_consents_merge(kind: str, tmp_path: Path, pg_url: str) -> None:
    """Two first consents of one user for one client at once: no error, and no scope is lost."""

    async def main() -> None:
        db = Database(f"sqlite:///{tmp_path / 'c.db'}" if kind == "sqlite" else pg_url)
        await upgrade(db)
        store = SqlDurableStore(db, Sealer(b"k" * 32))
        try:
            for i in range(5):
                user = f"u{i}-{secrets.token_hex(3)}"
                await asyncio.gather(
                    *(
                        store.save_consent(user, "c", frozenset({"openid", s}), 1)
                        for s in ("profile", "email", "accounts", "payments")
                    )
                )
                assert await store.get_consent(user, "c") == {"openid", "profile", "email", "accounts", "payments"}
            jti = secrets.token_hex(8)
            await asyncio.gather(*(store.revoke_access_token(jti, 2**40) for _ in range(5)))
            assert await store.token_status(jti, None) is False
        finally:
            await db.close()

    asyncio.run(main())


def _grant(gid: str, client: str = "tpp") -> Grant:
    return Grant(
        id=gid,
        client_id=client,
        user_id="alice",
        scope="openid accounts",
        auth_time=1,
        created_at=100,
        authorization_details=[{"type": "account_information", "actions": ["accounts"]}],
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_consent_resource_is_authorised_once_with_its_grant(kind: str, tmp_path: Path, pg_url: str) -> None:
    """Concurrent authorisations of one lodged consent: exactly one succeeds, and only its grant is
    written (the status change and the grant are one transaction). A consent lodged too long ago,
    or another client's, is never authorised and leaves no grant."""

    async def main() -> None:
        db = Database(f"sqlite:///{tmp_path / 'c.db'}" if kind == "sqlite" else pg_url)
        await upgrade(db)
        store = SqlDurableStore(db, Sealer(b"k" * 32))
        try:
            cid = "aac-" + secrets.token_hex(6)
            await store.create_consent_resource(
                ConsentResource(
                    id=cid,
                    client_id="tpp",
                    status="AwaitingAuthorisation",
                    authorization_details=[],
                    data={},
                    created_at=50,
                    status_updated_at=50,
                )
            )
            assert await store.authorise_consent_resource(cid, _grant("g-stale"), lodged_after=50) is False
            assert await store.authorise_consent_resource(cid, _grant("g-other", client="other"), 0) is False
            ids = [f"g{i}-{secrets.token_hex(3)}" for i in range(6)]
            won = await asyncio.gather(*(store.authorise_consent_resource(cid, _grant(g), 0) for g in ids))
            assert sorted(won) == [False] * 5 + [True]
            winner = ids[won.index(True)]
            resource, revoked_at = await store.get_consent_resource(cid)  # type: ignore[misc]
            assert resource.status == "Authorised" and resource.grant_id == winner and revoked_at is None
            assert resource.authorization_details == _grant(winner).authorization_details
            assert [g for g in ids + ["g-stale", "g-other"] if await store.get_grant(g)] == [winner]
            # Revoked revokes the grant in the same transaction.
            assert await store.set_consent_resource_status(cid, ("Authorised",), "Revoked", 200) is True
            assert (await store.get_grant(winner)).revoked_at == 200  # type: ignore[union-attr]
            assert await store.set_consent_resource_status(cid, ("AwaitingAuthorisation",), "Rejected", 300) is False
            assert (await store.get_consent_resource(cid))[0].status == "Revoked"  # type: ignore[index]
        finally:
            await db.close()

    asyncio.run(main())
