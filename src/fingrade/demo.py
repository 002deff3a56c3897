"""Demo data for `fingrade serve --demo`: bank customers alice and bob, and one client per profile."""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from collections.abc import Callable

from fingrade.oauth.context import Core
from fingrade.oauth.models import Client, User
from fingrade.protocol.crypto import keyed_hash

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
