"""Wiring: builds the core (stores, keys, secrets) from settings. Used by the server and the CLI."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from fingrade.bank import migrate as bank_migrations
from fingrade.config import ConfigError, Settings
from fingrade.oauth.context import Core
from fingrade.oauth.mtls import check_ca_file
from fingrade.oauth.passwords import Passwords
from fingrade.oauth.ports import OneTimeStore
from fingrade.oauth.signing_keys import KeyManager
from fingrade.private_files import secure_data_dir
from fingrade.protocol.sealing import Sealer
from fingrade.server_secrets import load_secrets
from fingrade.store.memory import MemoryOneTimeStore
from fingrade.store.sql.db import Database
from fingrade.store.sql.durable import SqlDurableStore
from fingrade.store.sql.migrate import upgrade
from fingrade.store.sql.onetime import SqlOneTimeStore

log = logging.getLogger("fingrade")


async def build_core(settings: Settings, migrate: bool = True) -> Core:
    if settings.mtls_ca_file:
        try:
            check_ca_file(settings.mtls_ca_file)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    secure_data_dir(settings.data_path)
    server_key, kek = load_secrets(settings)
    db = Database(settings.database_url, settings.database_pool_size)
    if migrate:
        await upgrade(db)
        await bank_migrations.upgrade(db)  # the bank's tables, in its own chain
    sealer = Sealer(kek)
    store = SqlDurableStore(db, sealer, settings.client_cache_seconds)
    onetime: OneTimeStore
    if settings.onetime_backend == "redis":
        from fingrade.store.redis.onetime import RedisOneTimeStore

        onetime = RedisOneTimeStore(settings.redis_url, settings.redis_prefix)
        await onetime.ping()
    elif settings.onetime_backend == "memory":
        # The explicit opt-in for one process that may forget (docs/performance.md): nothing shared
        # with another process, nothing kept across a restart.
        log.warning(
            "onetime_backend = memory: codes, pushed requests, replay caches and sign-in throttles live in this "
            "process only; a restart forgets them (a DPoP proof or client assertion seen before it is accepted "
            "once more while still valid), and no other process or node sees them"
        )
        onetime = MemoryOneTimeStore()
    else:
        onetime = SqlOneTimeStore(db)
    keys = KeyManager(
        store,
        alg=settings.signing_alg,
        reload_seconds=settings.key_reload_seconds,
        retired_retention=max(settings.access_token_ttl, settings.id_token_ttl) + 86400,
    )
    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    core = Core(
        settings=settings,
        store=store,
        onetime=onetime,
        keys=keys,
        server_key=server_key,
        passwords=passwords,
        sealer=sealer,
    )
    await keys.ensure_keys()
    return core


BANK_CLIENT_ID = "fingrade-bank"


async def ensure_bank_client(core: Core) -> tuple[str, str]:
    """Role all without configured bank credentials: the in-process bank API introspects as the
    resource-server client `fingrade-bank`, whose secret is derived from secret_key (so every node
    knows it and nothing new is stored). Created, or repaired after a secret_key change, here."""
    import dataclasses
    import hashlib
    import hmac

    from fingrade.oauth.models import Client
    from fingrade.protocol.crypto import b64url, keyed_hash

    secret = b64url(hmac.new(core.server_key, b"fingrade-bank-introspection", hashlib.sha256).digest())
    wanted = keyed_hash(core.server_key, secret)
    found = await core.store.get_client(BANK_CLIENT_ID)
    if found is None or found.secret_hash != wanted or not found.resource_server:
        now = core.clock()
        client = Client(
            client_id=BANK_CLIENT_ID,
            profile="confidential",
            client_name="Fingrade bank API (in-process)",
            redirect_uris=[],
            token_endpoint_auth_method="client_secret_basic",
            grant_types=[],
            scope="",
            secret_hash=wanted,
            resource_server=True,
            created_at=now,
            updated_at=now,
        )
        if found is not None:
            client = dataclasses.replace(client, created_at=found.created_at)
        try:
            await core.store.save_client(client)
        except SQLAlchemyError:
            # Another node starting at the same moment inserted it first; it wrote the same values.
            again = await core.store.get_client(BANK_CLIENT_ID)
            if again is None or again.secret_hash != wanted:
                raise
    return BANK_CLIENT_ID, secret


async def close_core(core: Core) -> None:
    await core.onetime.close()
    await core.store.close()
