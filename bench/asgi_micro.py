#!/usr/bin/env python
"""In-process micro-benchmark of what is in front of the protocol core: the same request handed, as a
pre-built ASGI scope, receive and send (no socket, no HTTP parsing, no TLS), to the application
alone (Starlette's routing and middleware stack, web/app.py `create_app`) and to the lean path in
front of it (web/lean_path.py). Both run on one demo server (SQLite in a temporary directory,
uvloop), one after the other in alternating batches; the medians of the batches are reported, in
µs of CPU time per request.

    python bench/asgi_micro.py                       # every scenario
    python bench/asgi_micro.py --scenario cc_basic --batches 21 --requests 2000

Scenarios: `cc_basic` (POST /token, client_credentials, demo-backend with client_secret_basic: the
request of bench/run.py's cc_basic), `introspect` (POST /introspect of a client token by
demo-backend), `authorize` (GET /authorize of demo-native without a browser cookie: a new interaction
and a 303 to its page), `bank_refused` (GET /bank/v1/accounts/{id}/balances with a token that is not
one: the bank API's 401 after its first check, so nearly all of it is what is in front of the route). These are the costs of the application code only; end-to-end throughput
(with uvicorn, TLS and the network) is bench/run.py's (docs/performance.md).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvloop

HERE = Path(__file__).resolve().parent
SECRET = "bench-demo-backend-secret-0123456789abcdef"
PASSWORD = "bench-demo-password-0123"
ISSUER = "https://localhost:8443"


def environment(data_dir: Path) -> dict[str, str]:
    return {
        "FINGRADE_DATA_DIR": str(data_dir),
        "FINGRADE_ISSUER": ISSUER,
        "FINGRADE_DEMO_PASSWORD": PASSWORD,
        "FINGRADE_DEMO_CLIENT_SECRET": SECRET,
        "FINGRADE_JANITOR_INTERVAL": "3600",  # nothing else runs on the loop while measuring
    }


def scope(method: str, path: str, headers: dict[str, str], query: str = "", body: bytes = b"") -> dict[str, Any]:
    raw = [(b"host", b"localhost:8443")] + [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if method == "POST":
        raw.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8443),
        "client": ("127.0.0.1", 40000),
        "scheme": "https",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": raw,
        "state": {},
    }


def basic() -> str:
    return "Basic " + base64.b64encode(f"demo-backend:{SECRET}".encode()).decode()


def requests(token: str) -> dict[str, tuple[dict[str, Any], bytes, int]]:
    """scenario -> (scope, body, expected status)."""
    form = "application/x-www-form-urlencoded"
    cc = urlencode({"grant_type": "client_credentials", "scope": "accounts"}).encode()
    introspect = urlencode({"token": token}).encode()
    authorize = urlencode(
        {
            "response_type": "code",
            "client_id": "demo-native",
            "redirect_uri": "http://127.0.0.1:8765/callback",
            "scope": "openid profile",
            "state": "bench",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        }
    )
    return {
        "cc_basic": (scope("POST", "/token", {"Authorization": basic(), "Content-Type": form}, body=cc), cc, 200),
        "introspect": (
            scope("POST", "/introspect", {"Authorization": basic(), "Content-Type": form}, body=introspect),
            introspect,
            200,
        ),
        "authorize": (scope("GET", "/authorize", {"Accept": "text/html"}, query=authorize), b"", 303),
        "bank_refused": (
            scope("GET", "/bank/v1/accounts/acc_1/balances", {"Authorization": "DPoP not-a-token", "DPoP": "x"}),
            b"",
            401,
        ),
    }


async def batch(app: Any, template: dict[str, Any], body: bytes, expected: int, n: int) -> float:
    """µs of this process's CPU time per request, over `n` requests (CPU time, not wall time: the
    machine may be shared, and time other processes take is not ours)."""
    message = {"type": "http.request", "body": body, "more_body": False}
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scopes = [{**template, "headers": list(template["headers"]), "state": {}} for _ in range(n)]
    start = time.process_time()
    for s in scopes:
        await app(s, receive, send)
    elapsed = time.process_time() - start
    if set(status) != {expected}:
        raise SystemExit(f"unexpected answers {sorted(set(status))} (expected {expected})")
    return elapsed / n * 1e6


async def calls(app: Any, template: dict[str, Any], body: bytes, expected: int, n: int = 200) -> float:
    """Python function calls per request (cProfile's count): what the CPU time above is made of,
    without the noise of a shared machine."""
    profile = cProfile.Profile()
    profile.enable()
    await batch(app, template, body, expected, n)
    profile.disable()
    return pstats.Stats(profile).total_calls / n  # type: ignore[attr-defined]  # set by Stats


async def main(args: argparse.Namespace) -> None:
    from fingrade.config import load_settings
    from fingrade.demo import seed_demo
    from fingrade.runtime import build_core, close_core
    from fingrade.web.app import create_server_app

    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp))
        os.environ.update({k: v for k, v in env.items() if k.startswith("FINGRADE_DEMO_")})
        settings = load_settings(environ=env)
        core = await build_core(settings)
        await seed_demo(core, say=lambda _: None)
        lean = create_server_app(settings, core)
        full = lean.app
        async with full.router.lifespan_context(full):
            token_scope, token_body, _ = requests("")["cc_basic"]
            sent: list[bytes] = []

            async def collect(message: dict[str, Any]) -> None:
                sent.append(message.get("body", b""))

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": token_body, "more_body": False}

            await full(dict(token_scope, headers=list(token_scope["headers"])), receive, collect)
            token = __import__("orjson").loads(b"".join(sent))["access_token"]
            table = requests(token)
            print(
                f"{'scenario':12} {'application µs':>15} {'lean path µs':>13} {'saved µs':>9} {'saved':>6}"
                f" {'calls/request':>14} {'lean path':>10}"
            )
            for name in args.scenario.split(","):
                template, body, expected = table[name]
                for app in (full, lean):  # warm up both
                    await batch(app, template, body, expected, args.requests // 4 or 1)
                times: dict[str, list[float]] = {"full": [], "lean": []}
                for i in range(args.batches):
                    order = (("full", full), ("lean", lean)) if i % 2 == 0 else (("lean", lean), ("full", full))
                    for label, app in order:
                        times[label].append(await batch(app, template, body, expected, args.requests))
                f, le = statistics.median(times["full"]), statistics.median(times["lean"])
                cf, cl = await calls(full, template, body, expected), await calls(lean, template, body, expected)
                print(f"{name:12} {f:15.1f} {le:13.1f} {f - le:9.1f} {(f - le) / f:6.0%} {cf:14.0f} {cl:10.0f}")
        await close_core(core)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="cc_basic,introspect,authorize,bank_refused")
    parser.add_argument("--batches", type=int, default=11, help="batches per front (alternating); medians")
    parser.add_argument("--requests", type=int, default=1000, help="requests per batch")
    arguments = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    uvloop.run(main(arguments))
