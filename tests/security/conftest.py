"""Fixtures for the attack tests against the real server."""

from __future__ import annotations

import httpx
import pytest
from support.server import Server
from support.tokens import Kit

from .fuzzkit import FuzzCredentials


@pytest.fixture(scope="session")
def resource_server(server: Server) -> tuple[str, str]:
    """A confidential client allowed to introspect tokens issued to other clients (RFC 7662 §4)."""
    out = server.add_client(
        "--name",
        "Bank API",
        "--profile",
        "confidential",
        "--grant-type",
        "client_credentials",
        "--scope",
        "accounts",
        "--resource-server",
    )
    return out["client_id"], out["client_secret"]


@pytest.fixture
def kit(server: Server, browser: httpx.Client, resource_server: tuple[str, str]) -> Kit:
    return Kit(server, browser, resource_server)


@pytest.fixture(scope="session")
def fuzz_credentials(server: Server, resource_server: tuple[str, str]) -> FuzzCredentials:
    """Real credentials that let generated requests past authentication, to the code behind it."""
    return FuzzCredentials.create(server, resource_server)
