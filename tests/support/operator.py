"""Users and clients added the way an operator adds them: with the command line (`fingrade users
add`, `fingrade clients add`) on the server's configuration."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from .demo import BACKEND_REDIRECT
from .server import DEMO_PASSWORD, Server


def new_user(server: Server, password: str | None = None) -> tuple[str, str]:
    """A user nobody else has touched (no session, no consent) via `fingrade users add`."""
    username = "u" + secrets.token_hex(5)
    password = password or DEMO_PASSWORD
    server.cli(
        "users",
        "add",
        username,
        "--name",
        "Test " + username,
        "--email",
        f"{username}@example.test",
        "--password-stdin",
        input=password + "\n",
    )
    return username, password


def new_confidential_client(server: Server, *extra: str) -> tuple[str, str]:
    """A confidential client (client_secret_basic) of our own; returns (client_id, secret)."""
    out = server.add_client(
        "--name",
        "Test fintech " + secrets.token_hex(3),
        "--profile",
        "confidential",
        "--redirect-uri",
        BACKEND_REDIRECT,
        "--scope",
        "openid profile email offline_access accounts payments",
        *extra,
    )
    return out["client_id"], out["client_secret"]


def jwks_client(server: Server, key: Any, tmp: Path, *extra: str) -> str:
    """Register a private_key_jwt client with `key`'s public half; returns its client_id."""
    path = tmp / f"jwks-{key.kid}.json"
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    out = server.add_client(
        "--name",
        "Key client " + key.kid,
        "--profile",
        "confidential",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(path),
        "--redirect-uri",
        BACKEND_REDIRECT,
        "--grant-type",
        "client_credentials",
        "--scope",
        "accounts payments",
        *extra,
    )
    return out["client_id"]
