"""A node configured with a key-encryption key other than the one its database's signing keys were
sealed with (AES-256-GCM, keys/sealing.py) cannot start: one clear line naming the setting, exit
status 1, no traceback."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.server import start_server


@pytest.mark.parametrize("command", [("serve",), ("keys", "list")])
def test_a_key_encryption_key_that_does_not_match_the_database_is_one_clear_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    server = start_server(tmp_path)
    server.stop()
    secrets = json.loads((server.data_dir / "secrets.json").read_text())
    other = base64.urlsafe_b64encode(os.urandom(32)).decode()
    env = {**server.env, "FINGRADE_SECRET_KEY": secrets["secret_key"], "FINGRADE_KEY_ENCRYPTION_KEY": other}
    proc = subprocess.run(
        [sys.executable, "-m", "fingrade.cli", *command], env=env, capture_output=True, text=True, timeout=120
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out and "InvalidTag" not in out, out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("cannot start")]
    assert len(errors) == 1 and "key_encryption_key" in errors[0], out
