"""The durable store contract (fingrade.oauth.ports.DurableStore), on every implementation: SQL on
SQLite, SQL on PostgreSQL (when FINGRADE_TEST_BACKENDS names it) and the in-memory store. Each
test starts from an empty store."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from support.server import _create_pg_database, drop_pg_database

from fingrade.oauth.models import (
    Client,
    ConsentResource,
    Factor,
    FactorKind,
    Grant,
    RefreshToken,
    Session,
    SigningKey,
    User,
)
from fingrade.oauth.ports import DurableStore
from fingrade.protocol.sealing import Sealer
from fingrade.store.memory import DuplicateKeyError, MemoryDurableStore
from fingrade.store.sql import schema
from fingrade.store.sql.db import Database
from fingrade.store.sql.durable import SqlDurableStore
from fingrade.store.sql.migrate import upgrade

BACKENDS = os.environ.get("FINGRADE_TEST_BACKENDS", "sqlite,postgres").split(",")
KINDS = ["sqlite", "memory"] + (["postgres"] if "postgres" in BACKENDS else [])
# A second row under a unique key is refused: by SQLAlchemy, by the driver on the hot paths
# (store/sql/direct.py), or by the in-memory store.
DUPLICATE = (IntegrityError, sqlite3.IntegrityError, asyncpg.UniqueViolationError, DuplicateKeyError)
DAY = 86400

# Every table of the authorization server's durable state (emptied before each test on PostgreSQL,
# whose database the module's tests share).
_TABLES = [
    schema.client_origins,
    schema.clients,
    schema.users,
    schema.sessions,
    schema.authn_factors,
    schema.recovery_codes,
    schema.consents,
    schema.grants,
    schema.consent_resources,
    schema.refresh_tokens,
    schema.revoked_tokens,
    schema.signing_keys,
    schema.registration_tokens,
    schema.audit_events,
]

Body = Callable[[DurableStore], Awaitable[None]]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    url = _create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(params=KINDS)
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Body], None]:
    """Runs a test body against a fresh store of one kind."""
    kind = request.param
    url = request.getfixturevalue("pg_url") if kind == "postgres" else f"sqlite:///{tmp_path / 'd.db'}"

    async def open_store() -> DurableStore:
        if kind == "memory":
            return MemoryDurableStore()
        db = Database(url)
        await upgrade(db)
        await db.write(lambda conn: [conn.execute(delete(t)) for t in _TABLES])
        return SqlDurableStore(db, Sealer(b"k" * 32))

    def runner(body: Body) -> None:
        async def main() -> None:
            store = await open_store()
            try:
                await body(store)
            finally:
                await store.close()

        asyncio.run(main())

    return runner


async def audit_events(store: DurableStore) -> list[dict[str, Any]]:
    """The audit log as written (the port has no reader: the SQL table, the memory list)."""
    if isinstance(store, MemoryDurableStore):
        return store.audit_events
    assert isinstance(store, SqlDurableStore)

    def q(conn: Any) -> list[dict[str, Any]]:
        rows = conn.execute(select(schema.audit_events).order_by(schema.audit_events.c.id))
        return [
            dict(
                at=r.at,
                event=r.event,
                client_id=r.client_id,
                user_id=r.user_id,
                ip=r.ip,
                detail=orjson.loads(r.detail) if r.detail else None,
            )
            for r in rows
        ]

    return await store.db.read(q)


def _client(client_id: str, **kw: Any) -> Client:
    values: dict[str, Any] = dict(
        client_id=client_id,
        profile="confidential",
        client_name=f"Client {client_id}",
        redirect_uris=["https://rp.example/cb"],
        token_endpoint_auth_method="client_secret_basic",
        grant_types=["authorization_code", "refresh_token"],
        scope="openid accounts",
        secret_hash="ab" * 32,
        metadata={"client_uri": "https://rp.example"},
        created_at=100,
        updated_at=100,
    )
    values.update(kw)
    return Client(**values)


def _user(user_id: str, username: str | None = None, **kw: Any) -> User:
    return User(id=user_id, username=username or user_id, password_hash="$argon2id$x", created_at=100, **kw)


def _grant(gid: str, client: str = "tpp", user: str | None = "alice", created_at: int = 100, **kw: Any) -> Grant:
    return Grant(
        id=gid, client_id=client, user_id=user, scope="openid accounts", auth_time=90, created_at=created_at, **kw
    )


def _rt(token_hash: str, grant: Grant, expires_at: int = 10_000, **kw: Any) -> RefreshToken:
    return RefreshToken(
        token_hash=token_hash,
        grant_id=grant.id,
        client_id=grant.client_id,
        user_id=grant.user_id,
        scope=grant.scope,
        created_at=grant.created_at,
        expires_at=expires_at,
        **kw,
    )


def _sorted_origins(client: Client | None) -> Client | None:
    if client is not None:
        client.allowed_origins = sorted(client.allowed_origins)
    return client


# -- clients -----------------------------------------------------------------------------------


def test_clients_are_saved_read_listed_and_replaced(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        spa = _client(
            "spa",
            profile="spa",
            token_endpoint_auth_method="none",
            secret_hash=None,
            jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]},
            allowed_origins=["https://b.example", "https://a.example", "https://a.example"],
            resource_server=False,
            registration_token_hash="cd" * 32,
        )
        await s.save_client(spa)
        await s.save_client(_client("bank", resource_server=True))
        got = _sorted_origins(await s.get_client("spa"))
        assert got == _client(
            "spa",
            profile="spa",
            token_endpoint_auth_method="none",
            secret_hash=None,
            jwks={"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}]},
            allowed_origins=["https://a.example", "https://b.example"],  # each origin once
            registration_token_hash="cd" * 32,
        )
        assert await s.get_client("absent") is None
        assert await s.get_client("spa\x00") is None  # no client id holds NUL
        assert [c.client_id for c in await s.list_clients()] == ["bank", "spa"]
        assert (await s.get_client("bank")).resource_server is True  # type: ignore[union-attr]

        # A save replaces everything, origins included; an empty JWKS is no JWKS.
        await s.save_client(_client("spa", client_name="Renamed", jwks={}, allowed_origins=["https://c.example"]))
        got = await s.get_client("spa")
        assert got is not None and got.client_name == "Renamed" and got.jwks is None
        assert got.allowed_origins == ["https://c.example"]
        assert await s.origin_registered("https://c.example") is True
        assert await s.origin_registered("https://a.example") is False

        # What the caller holds is a copy: changing it changes nothing stored.
        got.scope = "changed"
        got.allowed_origins.append("https://d.example")
        assert (await s.get_client("spa")).scope == "openid accounts"  # type: ignore[union-attr]
        assert await s.origin_registered("https://d.example") is False

    run(body)


def test_removing_a_client_revokes_its_grants_and_forgets_its_consents(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_client(_client("tpp", allowed_origins=["https://tpp.example"]))
        await s.save_client(_client("other"))
        await s.save_user(_user("alice"))
        await s.create_grant(_grant("g1", client="tpp"))
        await s.create_grant(_grant("g-old", client="tpp", revoked_at=50))
        await s.create_grant(_grant("g2", client="other"))
        await s.save_consent("alice", "tpp", frozenset({"openid"}), 100)
        await s.save_consent("alice", "other", frozenset({"openid"}), 100)
        before = int(time.time())
        assert await s.delete_client("tpp") is True
        after = int(time.time())
        assert await s.get_client("tpp") is None
        assert await s.origin_registered("https://tpp.example") is False
        revoked_at = (await s.get_grant("g1")).revoked_at  # type: ignore[union-attr]
        assert revoked_at is not None and before <= revoked_at <= after
        assert (await s.get_grant("g-old")).revoked_at == 50  # type: ignore[union-attr]
        assert await s.grant_live("g2") is True
        assert await s.get_consent("alice", "tpp") == frozenset()
        assert await s.get_consent("alice", "other") == {"openid"}
        assert await s.delete_client("tpp") is False

    run(body)


# -- users and sessions ------------------------------------------------------------------------


def test_users_are_saved_and_a_save_never_changes_the_status(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("u2", "bob", name="Bob", email="bob@example.com", email_verified=True))
        await s.save_user(_user("u1", "alice", name="Alice"))
        assert await s.get_user("u2") == _user("u2", "bob", name="Bob", email="bob@example.com", email_verified=True)
        assert (await s.get_user_by_username("alice")).id == "u1"  # type: ignore[union-attr]
        assert await s.get_user_by_username("Alice") is None  # usernames match exactly
        assert await s.get_user("absent") is None
        assert [u.username for u in await s.list_users()] == ["alice", "bob"]

        assert await s.set_user_disabled("u1", True, 200) == (True, 0, [])
        stale = _user("u1", "alice", name="Alice Again")  # read before the disable: disabled=False
        await s.save_user(stale)
        got = await s.get_user("u1")
        assert got is not None and got.name == "Alice Again" and got.disabled is True

        with pytest.raises(DUPLICATE):
            await s.save_user(_user("u3", "bob"))  # one username, one user
        assert await s.get_user("u3") is None

    run(body)


def test_disabling_a_user_ends_sessions_and_grants_at_once(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        assert await s.set_user_disabled("absent", True, 200) is None
        await s.save_user(_user("alice"))
        await s.save_user(_user("bob"))
        for h, user in (("s1", "alice"), ("s2", "alice"), ("s3", "bob")):
            await s.create_session(Session(id_hash=h, user_id=user, auth_time=100, expires_at=10_000))
        g1, g2, gb = _grant("g1"), _grant("g2", client="other"), _grant("gb", user="bob")
        for g in (g1, g2, gb, _grant("g-old", revoked_at=50)):
            await s.create_grant(g)
        await s.save_refresh_token(_rt("rt1", g1))

        changed, ended, revoked = await s.set_user_disabled("alice", True, 200)  # type: ignore[misc]
        assert (changed, ended, sorted(revoked)) == (True, 2, ["g1", "g2"])
        assert await s.get_session("s1", 150) is None and await s.get_session("s2", 150) is None
        assert await s.get_session("s3", 150) is not None
        assert (await s.get_grant("g1")).revoked_at == 200  # type: ignore[union-attr]
        assert (await s.get_grant("g-old")).revoked_at == 50  # type: ignore[union-attr]
        assert await s.get_refresh_token("rt1") is None  # a disabled user's refresh tokens are dead
        assert await s.grant_live("g1") is False and await s.grant_live("gb") is True

        # Fail closed: what slips in after the disable is refused where it is read.
        await s.create_session(Session(id_hash="s4", user_id="alice", auth_time=300, expires_at=10_000))
        g3 = _grant("g3", created_at=300)
        await s.create_grant(g3)
        await s.save_refresh_token(_rt("rt3", g3))
        assert await s.get_session("s4", 300) is None
        assert await s.grant_live("g3") is False
        assert await s.token_status("jti-3", "g3") is False
        assert await s.get_refresh_token("rt3") is None
        # Disabling again ends what slipped in.
        assert await s.set_user_disabled("alice", True, 400) == (False, 1, ["g3"])

        # Enabling restores sign-in only: revoked grants stay revoked.
        assert await s.set_user_disabled("alice", False, 500) == (True, 0, [])
        assert await s.set_user_disabled("alice", False, 500) == (False, 0, [])
        assert await s.grant_live("g1") is False
        assert (await s.get_refresh_token("rt1")) is not None  # readable again; its grant is revoked

    run(body)


def test_sessions_expire_and_end(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("alice"))
        session = Session(id_hash="h" * 64, user_id="alice", auth_time=100, expires_at=1000, amr=["pwd", "otp"])
        await s.create_session(session)
        assert await s.get_session("h" * 64, 999) == session
        assert await s.get_session("h" * 64, 1000) is None  # expired at expires_at
        assert await s.get_session("absent", 100) is None
        with pytest.raises(DUPLICATE):
            await s.create_session(session)
        await s.delete_session("h" * 64)
        assert await s.get_session("h" * 64, 100) is None
        await s.delete_session("h" * 64)  # ending an ended session is no error
        # A session whose user does not exist is not a session.
        await s.create_session(Session(id_hash="orphan", user_id="nobody", auth_time=100, expires_at=1000))
        assert await s.get_session("orphan", 100) is None

    run(body)


# -- consents ----------------------------------------------------------------------------------


def test_consents_merge_and_are_listed(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        assert await s.get_consent("alice", "tpp") == frozenset()
        await s.save_consent("alice", "tpp", frozenset({"openid", "accounts"}), 100)
        await s.save_consent("alice", "tpp", frozenset({"openid", "payments"}), 200)
        await s.save_consent("alice", "other", frozenset({"openid"}), 150)
        await s.save_consent("bob", "tpp", frozenset({"openid"}), 150)
        assert await s.get_consent("alice", "tpp") == {"openid", "accounts", "payments"}
        listed = sorted(await s.list_consents("alice"), key=lambda c: c[0])
        assert listed == [
            ("other", frozenset({"openid"}), 150),
            ("tpp", frozenset({"openid", "accounts", "payments"}), 200),
        ]
        assert await s.list_consents("carol") == []
        # Concurrent first consents merge: no scope is lost.
        await asyncio.gather(*(s.save_consent("carol", "tpp", frozenset({sc}), 300) for sc in ("a", "b", "c", "d")))
        assert await s.get_consent("carol", "tpp") == {"a", "b", "c", "d"}

    run(body)


def test_revoking_a_clients_access_is_scoped_to_the_user(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        for g in (
            _grant("g1"),
            _grant("g2"),
            _grant("g-old", revoked_at=50),
            _grant("g-other-client", client="other"),
            _grant("g-bob", user="bob"),
        ):
            await s.create_grant(g)
        await s.save_consent("alice", "tpp", frozenset({"openid"}), 100)
        await s.save_consent("bob", "tpp", frozenset({"openid"}), 100)
        assert sorted(await s.revoke_client_access("alice", "tpp", 200)) == ["g1", "g2"]
        assert await s.get_consent("alice", "tpp") == frozenset()
        assert await s.get_consent("bob", "tpp") == {"openid"}
        assert (await s.get_grant("g-old")).revoked_at == 50  # type: ignore[union-attr]
        assert await s.grant_live("g-other-client") is True and await s.grant_live("g-bob") is True
        assert await s.revoke_client_access("alice", "tpp", 300) == []

    run(body)


# -- grants and tokens -------------------------------------------------------------------------


def test_grants_are_kept_revoked_once_and_listed(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        details = [{"type": "account_information", "actions": ["balances"], "locations": ["https://bank.example"]}]
        g1 = _grant("g1", created_at=300, authorization_details=details)
        await s.create_grant(g1)
        assert await s.get_grant("g1") == g1
        with pytest.raises(DUPLICATE):
            await s.create_grant(_grant("g1"))
        await s.create_grant(_grant("gempty", authorization_details=[]))
        assert (await s.get_grant("gempty")).authorization_details is None  # type: ignore[union-attr]
        assert await s.get_grant("absent") is None

        assert await s.grant_live("g1") is True
        await s.revoke_grant("g1", 400)
        await s.revoke_grant("g1", 500)  # the first revocation's time stays
        assert (await s.get_grant("g1")).revoked_at == 400  # type: ignore[union-attr]
        assert await s.grant_live("g1") is False
        assert await s.grant_live("absent") is False
        await s.revoke_grant("absent", 400)  # nothing to revoke: no error

        # Listing: oldest first (then by id), with the latest expiry of an unused refresh token.
        ga, gb, gc = _grant("ga", created_at=100), _grant("gb", created_at=100), _grant("gc", user="bob", created_at=50)
        for g in (ga, gb, gc, _grant("g-cc", user=None, created_at=10)):  # client credentials: no user
            await s.create_grant(g)
        await s.save_refresh_token(_rt("rt-a1", ga, expires_at=1000))
        await s.save_refresh_token(_rt("rt-a2", ga, expires_at=2000))
        await s.save_refresh_token(_rt("rt-a3", ga, expires_at=3000, used_at=150))  # rotated away
        listed = [(g.id, until) for g, until in await s.list_user_grants("alice")]
        assert listed == [("ga", 2000), ("gb", None), ("gempty", None), ("g1", None)]
        assert [g.id for g, _ in await s.list_user_grants()] == ["gc", "ga", "gb", "gempty", "g1"]
        assert await s.list_user_grants("carol") == []

    run(body)


def test_refresh_rotation_is_compare_and_set(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("alice"))
        grant = _grant("g1")
        await s.create_grant(grant)
        rt = _rt("old", grant, dpop_jkt="j" * 43, binding="dpop")
        await s.save_refresh_token(rt)
        assert await s.get_refresh_token("old") == (rt, grant)
        assert await s.get_refresh_token("absent") is None
        with pytest.raises(DUPLICATE):
            await s.save_refresh_token(rt)

        assert await s.rotate_refresh_token("old", _rt("new1", grant), 200) is True
        assert await s.rotate_refresh_token("old", _rt("new2", grant), 201) is False  # a second rotation fails
        assert await s.get_refresh_token("new2") is None  # and writes nothing
        assert (await s.get_refresh_token("old"))[0].used_at == 200  # type: ignore[index]
        assert (await s.get_refresh_token("new1"))[0] == _rt("new1", grant)  # type: ignore[index]
        assert await s.rotate_refresh_token("absent", _rt("new3", grant), 200) is False
        assert await s.get_refresh_token("new3") is None

        # Of concurrent rotations of one token exactly one wins, and only its successor is stored.
        news = [f"n{i}" for i in range(6)]
        won = await asyncio.gather(*(s.rotate_refresh_token("new1", _rt(n, grant), 300) for n in news))
        assert sorted(won) == [False] * 5 + [True]
        assert [n for n in news if await s.get_refresh_token(n)] == [news[won.index(True)]]

        # A refresh token whose grant is gone is unknown.
        await s.save_refresh_token(RefreshToken("orphan", "no-grant", "tpp", "alice", "openid", 100, 10_000))
        assert await s.get_refresh_token("orphan") is None

    run(body)


def test_token_status_follows_the_jti_and_the_grant(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("alice"))
        await s.create_grant(_grant("g1"))
        await s.create_grant(_grant("g-cc", user=None))
        assert await s.token_status("jti-1", None) is True
        assert await s.token_status("jti-1", "g1") is True
        assert await s.token_status("jti-1", "g-cc") is True
        assert await s.token_status("jti-1", "absent") is False
        await s.revoke_access_token("jti-1", 10_000)
        await s.revoke_access_token("jti-1", 20_000)  # idempotent
        await asyncio.gather(*(s.revoke_access_token("jti-2", 10_000) for _ in range(5)))
        assert await s.token_status("jti-1", None) is False
        assert await s.token_status("jti-2", "g1") is False
        assert await s.token_status("jti-3", "g1") is True
        await s.revoke_grant("g1", 200)
        assert await s.token_status("jti-3", "g1") is False  # the grant's revocation kills its tokens

    run(body)


# -- consent resources -------------------------------------------------------------------------


def _lodged(cid: str, client: str = "tpp", created_at: int = 50) -> ConsentResource:
    return ConsentResource(
        id=cid,
        client_id=client,
        status="AwaitingAuthorisation",
        authorization_details=[{"type": "account_information", "actions": ["accounts"]}],
        data={"Permissions": ["ReadAccountsBasic"]},
        created_at=created_at,
        status_updated_at=created_at,
    )


def test_consent_resource_is_authorised_once_with_its_grant(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.create_consent_resource(_lodged("c1"))
        assert await s.get_consent_resource("c1") == (_lodged("c1"), None)
        assert await s.get_consent_resource("absent") is None
        with pytest.raises(DUPLICATE):
            await s.create_consent_resource(_lodged("c1"))

        approved = [{"type": "account_information", "actions": ["accounts"], "accounts": ["acc-1"]}]
        assert await s.authorise_consent_resource("c1", _grant("g-stale"), lodged_after=50) is False
        assert await s.authorise_consent_resource("c1", _grant("g-other", client="other"), 0) is False
        ids = [f"g{i}" for i in range(6)]
        won = await asyncio.gather(
            *(s.authorise_consent_resource("c1", _grant(g, authorization_details=approved), 0) for g in ids)
        )
        assert sorted(won) == [False] * 5 + [True]
        winner = ids[won.index(True)]
        assert [g for g in [*ids, "g-stale", "g-other"] if await s.get_grant(g)] == [winner]
        assert await s.grant_live(winner) is True
        resource, revoked_at = await s.get_consent_resource("c1")  # type: ignore[misc]
        assert revoked_at is None
        assert (resource.status, resource.grant_id, resource.user_id) == ("Authorised", winner, "alice")
        assert resource.status_updated_at == 100 and resource.authorization_details == approved
        assert resource.data == {"Permissions": ["ReadAccountsBasic"]}
        assert await s.consent_resource_ids([winner, "g-stale", "absent"]) == {winner: "c1"}
        assert await s.consent_resource_ids([]) == {}

        # The grant's revocation shows on the consent (the status Revoked is derived from it).
        await s.revoke_grant(winner, 150)
        assert (await s.get_consent_resource("c1"))[1] == 150  # type: ignore[index]

    run(body)


def test_consent_resource_status_moves_only_from_what_is_expected(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.create_consent_resource(_lodged("c-reject"))
        assert await s.set_consent_resource_status("c-reject", ("Authorised",), "Revoked", 200) is False
        assert await s.set_consent_resource_status("absent", ("AwaitingAuthorisation",), "Rejected", 200) is False
        assert (
            await s.set_consent_resource_status("c-reject", ("AwaitingAuthorisation",), "Rejected", 200, user_id="bob")
            is True
        )
        resource = (await s.get_consent_resource("c-reject"))[0]  # type: ignore[index]
        assert (resource.status, resource.status_updated_at, resource.user_id) == ("Rejected", 200, "bob")
        assert await s.authorise_consent_resource("c-reject", _grant("g-late"), 0) is False
        assert await s.get_grant("g-late") is None

        # Revoked revokes the consent's grant in the same step.
        await s.create_consent_resource(_lodged("c-auth"))
        assert await s.authorise_consent_resource("c-auth", _grant("g1"), 0) is True
        assert await s.set_consent_resource_status("c-auth", ("Authorised",), "Revoked", 300) is True
        assert (await s.get_grant("g1")).revoked_at == 300  # type: ignore[union-attr]
        resource, revoked_at = await s.get_consent_resource("c-auth")  # type: ignore[misc]
        assert (resource.status, resource.user_id, revoked_at) == ("Revoked", "alice", 300)
        assert await s.set_consent_resource_status("c-auth", ("Authorised",), "Revoked", 400) is False

        # Revoking a consent that was never authorised revokes nothing else.
        await s.create_consent_resource(_lodged("c-app-deleted"))
        await s.create_grant(_grant("g-unrelated"))
        assert await s.set_consent_resource_status("c-app-deleted", ("AwaitingAuthorisation",), "Revoked", 500)
        assert await s.grant_live("g-unrelated") is True

    run(body)


# -- signing keys, registration tokens, audit --------------------------------------------------


def _key(kid: str, created_at: int, status: str = "next") -> SigningKey:
    return SigningKey(
        kid=kid,
        alg="ES256",
        status=status,
        private_jwk={"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "d": f"d-{kid}", "kid": kid},
        public_jwk={"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": kid},
        created_at=created_at,
    )


def test_signing_keys_are_listed_oldest_first_and_updated_in_place(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        assert await s.list_signing_keys() == []
        await s.save_signing_key(_key("k2", 200))
        await s.save_signing_key(_key("k1", 100))
        assert await s.list_signing_keys() == [_key("k1", 100), _key("k2", 200)]
        active = _key("k1", 100, status="active")
        active.activated_at = 150
        await s.save_signing_key(active)
        retired = _key("k2", 200, status="retired")
        retired.retired_at = 250
        await s.save_signing_key(retired)
        assert await s.list_signing_keys() == [active, retired]
        await s.delete_signing_key("k2")
        await s.delete_signing_key("absent")
        assert await s.list_signing_keys() == [active]

    run(body)


def test_registration_tokens_expire_and_are_revoked_by_label(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.create_registration_token("h2", "second", 1000, 200)
        await s.create_registration_token("h1", "first", None, 100)
        assert await s.registration_token_valid("h1", 10**9) is True  # no expiry
        assert await s.registration_token_valid("h2", 999) is True
        assert await s.registration_token_valid("h2", 1000) is False  # expired at expires_at
        assert await s.registration_token_valid("absent", 100) is False
        with pytest.raises(DUPLICATE):
            await s.create_registration_token("h3", "first", None, 300)  # one label, one token
        assert await s.list_registration_tokens() == [
            {"label": "first", "created_at": 100, "expires_at": None, "revoked_at": None},
            {"label": "second", "created_at": 200, "expires_at": 1000, "revoked_at": None},
        ]
        before = int(time.time())
        assert await s.revoke_registration_token("first") is True
        after = int(time.time())
        assert await s.revoke_registration_token("first") is False  # already revoked
        assert await s.revoke_registration_token("absent") is False
        assert await s.registration_token_valid("h1", 150) is False
        revoked_at = (await s.list_registration_tokens())[0]["revoked_at"]
        assert before <= revoked_at <= after

    run(body)


def test_audit_events_are_appended(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.audit("login_failed", 100, user_id="alice", ip="192.0.2.1", detail={"reason": "password"})
        await s.audit("client_removed", 200, client_id="tpp", detail={})
        assert await audit_events(s) == [
            dict(
                at=100,
                event="login_failed",
                client_id=None,
                user_id="alice",
                ip="192.0.2.1",
                detail={"reason": "password"},
            ),
            dict(at=200, event="client_removed", client_id="tpp", user_id=None, ip=None, detail=None),
        ]

    run(body)


# -- housekeeping ------------------------------------------------------------------------------


def test_purge_expired_removes_only_what_can_no_longer_be_used(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        now = 10 * DAY
        await s.save_user(_user("alice"))
        await s.create_session(Session(id_hash="s-old", user_id="alice", auth_time=1, expires_at=now))
        await s.create_session(Session(id_hash="s-live", user_id="alice", auth_time=1, expires_at=now + 1))
        await s.revoke_access_token("jti-old", now)
        await s.revoke_access_token("jti-live", now + 1)
        old_with_rt = _grant("g-old-rt", created_at=now - 2 * DAY)
        old_expired_rt = _grant("g-old-expired-rt", created_at=now - 2 * DAY)
        for g in (
            old_with_rt,
            old_expired_rt,
            _grant("g-old", created_at=now - 2 * DAY),  # nothing left to present: removed
            _grant("g-young", created_at=now - DAY + 1),  # kept a day for audit
        ):
            await s.create_grant(g)
        await s.save_refresh_token(_rt("rt-live", old_with_rt, expires_at=now + 1))
        await s.save_refresh_token(_rt("rt-old", old_expired_rt, expires_at=now))

        # Expired: s-old, jti-old, rt-old; then the grants left with nothing: g-old, g-old-expired-rt.
        assert await s.purge_expired(now) == 5
        assert await s.get_session("s-old", now - 1) is None
        assert await s.get_session("s-live", now) is not None
        assert await s.token_status("jti-old", None) is True  # forgotten: the token itself has expired
        assert await s.token_status("jti-live", None) is False
        assert await s.get_refresh_token("rt-old") is None and await s.get_refresh_token("rt-live") is not None
        kept = [g for g in ("g-old-rt", "g-old-expired-rt", "g-old", "g-young") if await s.get_grant(g)]
        assert kept == ["g-old-rt", "g-young"]
        assert await s.purge_expired(now) == 0

    run(body)


def _totp(fid: str, user: str = "alice", created_at: int = 100) -> Factor:
    return Factor(id=fid, user_id=user, kind=FactorKind.TOTP, name="Phone", created_at=created_at, secret=b"s" * 20)


def _passkey(fid: str, cred: bytes, user: str = "alice", count: int = 0) -> Factor:
    return Factor(
        id=fid,
        user_id=user,
        kind=FactorKind.PASSKEY,
        name="Laptop",
        created_at=200,
        credential_id=cred,
        credential=b"attested-credential-data",
        sign_count=count,
        backup_eligible=True,
    )


def test_factors_round_trip_and_are_listed_per_user_oldest_first(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("alice"))
        await s.save_user(_user("bob"))
        assert await s.add_factor(_passkey("f2", b"\x01cred"), limit=5)
        assert await s.add_factor(_totp("f1"), limit=5)
        assert await s.add_factor(_totp("f3", user="bob"), limit=5)
        mine = await s.list_factors("alice")
        assert [f.id for f in mine] == ["f1", "f2"]
        assert mine[0] == _totp("f1")  # the secret opens again
        assert mine[1] == _passkey("f2", b"\x01cred")
        assert await s.factor_by_credential(b"\x01cred") == _passkey("f2", b"\x01cred")
        assert await s.factor_by_credential(b"\x02") is None

    run(body)


def test_factor_limit_and_unique_credential(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("alice"))
        await s.save_user(_user("bob"))
        assert await s.add_factor(_totp("f1"), limit=2)
        assert await s.add_factor(_totp("f2"), limit=2)
        assert not await s.add_factor(_totp("f3"), limit=2)
        assert [f.id for f in await s.list_factors("alice")] == ["f1", "f2"]
        assert await s.add_factor(_passkey("p1", b"same", user="bob"), limit=5)
        # One credential belongs to one account (W3C WebAuthn §7.1 step 26): refused, never an error.
        assert not await s.add_factor(_passkey("p2", b"same", user="bob"), limit=5)
        assert not await s.add_factor(_passkey("p3", b"same", user="alice"), limit=5)
        assert [f.id for f in await s.list_factors("bob")] == ["p1"]

    run(body)


def test_factor_removal_is_per_user(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("alice"))
        assert await s.add_factor(_totp("f1"), limit=5)
        assert not await s.remove_factor("bob", "f1")
        assert await s.remove_factor("alice", "f1")
        assert not await s.remove_factor("alice", "f1")
        assert await s.list_factors("alice") == []

    run(body)


def test_passkey_counter_only_moves_forward(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("alice"))
        assert await s.add_factor(_passkey("p1", b"c", count=5), limit=5)
        assert not await s.factor_used("p1", 300, sign_count=5)  # a clone, or a replay
        assert not await s.factor_used("p1", 300, sign_count=4)
        assert await s.factor_used("p1", 300, sign_count=6)
        (f,) = await s.list_factors("alice")
        assert (f.sign_count, f.last_used_at) == (6, 300)
        assert await s.add_factor(_totp("t1"), limit=5)
        assert await s.factor_used("t1", 400)
        assert not await s.factor_used("missing", 400)

    run(body)


def test_recovery_codes_are_single_use_and_replaced(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("alice"))
        await s.save_user(_user("bob"))
        await s.set_recovery_codes("alice", ["h1", "h2"], 100)
        await s.set_recovery_codes("bob", ["h3"], 100)
        assert await s.recovery_codes_left("alice") == 2
        assert not await s.use_recovery_code("alice", "h3")  # bob's
        assert await s.use_recovery_code("alice", "h1")
        assert not await s.use_recovery_code("alice", "h1")
        assert await s.recovery_codes_left("alice") == 1
        await s.set_recovery_codes("alice", ["h4"], 200)
        assert not await s.use_recovery_code("alice", "h2")  # replaced
        assert await s.recovery_codes_left("alice") == 1

    run(body)


def test_concurrent_uses_of_one_recovery_code_succeed_once(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("alice"))
        await s.set_recovery_codes("alice", ["h1"], 100)
        results = await asyncio.gather(*(s.use_recovery_code("alice", "h1") for _ in range(8)))
        assert sorted(results) == [False] * 7 + [True]

    run(body)


def test_reset_removes_factors_and_recovery_codes_of_one_user(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        await s.save_user(_user("alice"))
        await s.save_user(_user("bob"))
        assert await s.add_factor(_totp("f1"), limit=5)
        assert await s.add_factor(_passkey("p1", b"c"), limit=5)
        assert await s.add_factor(_totp("f2", user="bob"), limit=5)
        await s.set_recovery_codes("alice", ["h1"], 100)
        assert await s.reset_factors("alice") == 2
        assert await s.list_factors("alice") == [] and await s.recovery_codes_left("alice") == 0
        assert len(await s.list_factors("bob")) == 1

    run(body)


def test_grant_keeps_how_the_customer_authenticated(run: Callable[[Body], None]) -> None:
    async def body(s: DurableStore) -> None:
        g = _grant(
            "g1",
            acr="urn:fingrade:acr:sca",
            amr=["pwd", "otp", "mfa"],
            linked_details_hash="ab" * 16,
            linked_factors=["f1"],
        )
        await s.create_grant(g)
        assert await s.get_grant("g1") == g
        plain = _grant("g2")
        await s.create_grant(plain)
        assert await s.get_grant("g2") == plain

    run(body)
