"""When a store cannot be reached the server answers 503 temporarily_unavailable with Retry-After
(fail closed, no 500 and no partial write), and recovers by itself when the store is back."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from support.server import DEMO_SECRET, drop_pg_database, free_port, start_server


def _redis(port: int, workdir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    for _ in range(50):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
            return proc
        time.sleep(0.1)
    raise RuntimeError("redis did not start")


def test_redis_outage_gives_503_then_recovers(tmp_path: Path) -> None:
    port = free_port()
    redis = _redis(port, tmp_path)
    server = start_server(tmp_path, backend="postgres", extra_env={"FINGRADE_REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    try:
        with server.client() as http:
            auth = ("demo-backend", DEMO_SECRET)
            # A code redemption reads the one-time store (Redis here).
            data = {"grant_type": "authorization_code", "code": "x" * 43, "redirect_uri": "https://localhost:9443/callback",
                    "code_verifier": "v" * 43}
            assert http.post("/token", auth=auth, data=data).json()["error"] == "invalid_grant"
            redis.terminate()
            redis.wait(10)
            resp = http.post("/token", auth=auth, data=data)
            assert resp.status_code == 503 and resp.json() == {"error": "temporarily_unavailable"}
            assert resp.headers["retry-after"] and resp.headers["cache-control"] == "no-store"
            redis = _redis(port, tmp_path)
            assert http.post("/token", auth=auth, data=data).json()["error"] == "invalid_grant"
    finally:
        server.stop()
        redis.terminate()
        drop_pg_database(server.env["FINGRADE_DATABASE_URL"])
