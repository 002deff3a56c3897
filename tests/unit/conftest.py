"""Unit-test fixtures: a real `Core` on an SQLite file (no server, no network), for the few rules
that need one (client assertions need the issuer, a clock and the one-time store)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from fingrade.config import load_settings
from fingrade.oauth.context import Core
from fingrade.runtime import build_core, close_core


@pytest.fixture(scope="session")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture(scope="session")
def base_core(loop: asyncio.AbstractEventLoop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    data = tmp_path_factory.mktemp("unit-core")
    # environ={} keeps the developer's FINGRADE_* variables out of the unit tests.
    settings = load_settings(
        overrides={
            "data_dir": str(data),
            "issuer": "https://as.example.com",
            "argon2_memory_kib": 8192,
            "argon2_time_cost": 1,
            "argon2_parallelism": 1,
        },
        environ={},
    )
    core = loop.run_until_complete(build_core(settings))
    yield core
    loop.run_until_complete(close_core(core))


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Any:
    return loop.run_until_complete
