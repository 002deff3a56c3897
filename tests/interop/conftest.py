"""Fixtures for the interop tests: third-party clients (Authlib, openid-client) against the real server."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from interop.helpers import NODE_DIR


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with openid-client installed next to the script. Missing either is a failure,
    never a skip: interoperability with clients nobody here wrote is a requirement, so this test must run."""
    exe = shutil.which("node")
    if exe is None:
        pytest.fail("node is not installed: the openid-client interop tests need Node.js >= 20 on PATH")
    major = subprocess.run(
        [exe, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if int(major) < 20:
        pytest.fail(f"node {major} is too old: openid-client v6 needs Node.js >= 20")
    if not (NODE_DIR / "node_modules" / "openid-client" / "package.json").is_file():
        pytest.fail(f"openid-client is not installed in {NODE_DIR}: run tests/interop/install-node-deps.sh")
    return exe
