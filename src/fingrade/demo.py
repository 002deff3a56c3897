"""Demo data for `fingrade serve --demo`: bank customers alice and bob, and one client per profile."""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
import time
from collections.abc import Callable

from fingrade.oauth import totp
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client, Factor, FactorKind, User
from fingrade.protocol.crypto import keyed_hash, new_token

DEMO_CLIENTS = [
    Client(
        client_id="demo-native",
        profile="native",
        client_name="Fingrade Demo Mobile App",
        redirect_uris=["http://127.0.0.1/callback", "http://[::1]/callback", "com.fingrade.demo:/callback"],
        token_endpoint_auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        scope="openid profile email offline_access accounts payments",
    ),
    Client(
        client_id="demo-spa",
        profile="spa",
        client_name="Fingrade Demo Web App",
        redirect_uris=["https://localhost:3000/callback"],
        allowed_origins=["https://localhost:3000"],
        token_endpoint_auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        scope="openid profile email offline_access accounts",
    ),
    Client(
        client_id="demo-backend",
        profile="confidential",
        client_name="Fingrade Demo Fintech",
        redirect_uris=["https://localhost:9443/callback"],
        token_endpoint_auth_method="client_secret_basic",
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        scope="openid profile email offline_access accounts payments",
        metadata={"authorization_details_types": ["account_information", "payment_initiation"]},
    ),
]


async def seed_demo(core: Core, say: Callable[[str], None] = print) -> None:
    now = int(time.time())
    password = os.environ.get("FINGRADE_DEMO_PASSWORD")
    generated = password is None
    if password is None:
        password = secrets.token_urlsafe(12)
    created_users = []
    for username, name in (("alice", "Alice Andersen"), ("bob", "Bob Berg")):
        if await core.store.get_user_by_username(username) is None:
            await core.store.save_user(
                User(
                    id="u_" + secrets.token_urlsafe(12),
                    username=username,
                    password_hash=core.passwords.hash(password),
                    name=name,
                    email=f"{username}@demo.fingrade.test",
                    email_verified=True,
                    created_at=now,
                )
            )
            created_users.append(username)
    if created_users:
        shown = password if generated else "(from FINGRADE_DEMO_PASSWORD)"
        say(f"demo users {', '.join(created_users)} created; password: {shown}")
        await _seed_totp(core, created_users, say)
    for template in DEMO_CLIENTS:
        if await core.store.get_client(template.client_id) is not None:
            continue
        client = dataclasses.replace(template, created_at=now, updated_at=now)
        secret = None
        if client.token_endpoint_auth_method == "client_secret_basic":
            secret = os.environ.get("FINGRADE_DEMO_CLIENT_SECRET") or secrets.token_urlsafe(32)
            client.secret_hash = keyed_hash(core.server_key, secret)
        await core.store.save_client(client)
        say(
            f"demo client {client.client_id} ({client.profile}) created"
            + (f"; client_secret: {secret}" if secret and not os.environ.get("FINGRADE_DEMO_CLIENT_SECRET") else "")
        )


async def _seed_totp(core: Core, usernames: list[str], say: Callable[[str], None]) -> None:
    """The demo users' authenticator app: one TOTP secret for both, from FINGRADE_DEMO_TOTP_SECRET
    (base32, as an authenticator app shows it) or generated and printed once, so that scripts,
    examples and benchmarks can compute codes (docs/sca.md)."""
    given = os.environ.get("FINGRADE_DEMO_TOTP_SECRET")
    secret = demo_totp_secret(given) if given else totp.new_secret()
    for username in usernames:
        user = await core.store.get_user_by_username(username)
        if user is None or await core.store.list_factors(user.id):
            continue
        factor = Factor(
            id=new_token(12),
            user_id=user.id,
            kind=FactorKind.TOTP,
            name="Demo authenticator",
            created_at=int(time.time()),
            secret=secret,
        )
        await core.store.add_factor(factor, core.settings.max_factors)
    key = "(from FINGRADE_DEMO_TOTP_SECRET)" if given else totp.manual_key(secret).replace(" ", "")
    say(f"demo users {', '.join(usernames)} have an authenticator app (TOTP, RFC 6238); key: {key}")


def demo_totp_secret(base32: str) -> bytes:
    """FINGRADE_DEMO_TOTP_SECRET: base32 as authenticator apps show it (spaces and case ignored)."""
    text = "".join(base32.split()).upper()
    try:
        secret = base64.b32decode(text + "=" * (-len(text) % 8))
    except ValueError:
        raise ValueError("FINGRADE_DEMO_TOTP_SECRET must be base32") from None
    if len(secret) < 16:
        raise ValueError("FINGRADE_DEMO_TOTP_SECRET must hold at least 128 bits")
    return secret
