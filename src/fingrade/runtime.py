"""Wiring: builds the core (stores, keys, secrets) from settings. Used by the server and the CLI."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import orjson
from sqlalchemy.exc import SQLAlchemyError

from fingrade.config import ConfigError, Settings
from fingrade.keys.keystore import KeyManager
from fingrade.keys.sealing import Sealer
from fingrade.oauth.context import Core
from fingrade.oauth.mtls import check_ca_file
from fingrade.oauth.passwords import Passwords
from fingrade.private_files import private_dir, secure_data_dir
from fingrade.store.interfaces import OneTimeStore
from fingrade.store.sql.db import Database
from fingrade.store.sql.durable import SqlDurableStore
from fingrade.store.sql.migrate import upgrade
from fingrade.store.sql.onetime import SqlOneTimeStore

log = logging.getLogger("fingrade")


def _decode_key(name: str, value: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise ConfigError(f"{name}: not base64url") from None
    if len(raw) != 32:
        raise ConfigError(f"{name}: must decode to 32 bytes (generate with `openssl rand -base64 32`)")
    return raw


def load_secrets(settings: Settings) -> tuple[bytes, bytes]:
    """The server key and the key-encryption key: from configuration, or (single-node default)
    generated once into the data directory with owner-only permissions."""
    if settings.secret_key and settings.key_encryption_key:
        return (
            _decode_key("secret_key", settings.secret_key),
            _decode_key("key_encryption_key", settings.key_encryption_key),
        )
    path = Path(settings.data_dir) / "secrets.json"
    if path.exists():
        data = orjson.loads(path.read_bytes())
    else:
        private_dir(path.parent)
        data = {
            name: base64.urlsafe_b64encode(os.urandom(32)).decode() for name in ("secret_key", "key_encryption_key")
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(data))
        log.warning(
            "generated secrets in %s; a multi-node deployment must configure secret_key and key_encryption_key instead",
            path,
        )
    server_key = settings.secret_key or data["secret_key"]
    kek = settings.key_encryption_key or data["key_encryption_key"]
    return _decode_key("secret_key", server_key), _decode_key("key_encryption_key", kek)


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
    sealer = Sealer(kek)
    store = SqlDurableStore(db, sealer, settings.client_cache_seconds)
    onetime: OneTimeStore
    if settings.onetime_backend == "redis":
        from fingrade.store.redis.onetime import RedisOneTimeStore

        redis_store = RedisOneTimeStore(settings.redis_url, settings.redis_prefix)
        await redis_store.ping()
        onetime = redis_store
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
