#!/usr/bin/env python
"""Fingrade side by side with node-oidc-provider 8.8.1 (bench/peer/): both servers pinned to the
same core, driven by the same driver from the other core, the same workloads alternately on one
and the other; prints per-workload medians and the ratio Fingrade/peer, writes JSON to
bench/results/.

    python bench/side_by_side.py                              # all workloads, plain HTTP, 3 runs x 10 s
    python bench/side_by_side.py --runs 1 --duration 3        # a quick check that everything works
    python bench/side_by_side.py --mode tls                   # both on TLS (the same self-signed cert)
    python bench/side_by_side.py --peer-tokens jwt            # peer's client_credentials tokens as ES256 JWTs

See bench/README.md ("Side by side with node-oidc-provider").
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEER_DIR = HERE / "peer"
PEER_VERSION = "8.8.1"
sys.path.insert(0, str(HERE))

import httpx  # noqa: E402
import run as fg  # noqa: E402  -- Fingrade's server, client set-up, discovery, medians
import scenarios as sc  # noqa: E402
import uvloop  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from driver import Connection, CookieJar, HttpError, Result, Target, _proc_cpu_seconds  # noqa: E402

SERVER_CORE, DRIVER_CORE = fg.SERVER_CORE, fg.DRIVER_CORE

# workload: (Fingrade's scenario, the peer's scenario, what one operation is)
WORKLOADS: dict[str, tuple[str, str, str]] = {
    "cc_basic": ("cc_basic", "cc_basic", "req"),
    "cc_jwt_dpop": ("cc_jwt_dpop", "cc_jwt_dpop", "req"),
    "code_flow": ("code_flow_par", "code_flow_par", "flow"),
    "fapi_flow": ("fapi_flow", "fapi_flow", "flow"),
    "introspect": ("introspect", "introspect", "req"),
    "resource": ("bank_balances", "userinfo", "req"),
    "userinfo": ("userinfo", "userinfo", "req"),
}
DEFAULT_WORKLOADS = list(WORKLOADS)
USERS = {
    "alice": {
        "name": "Alice Andersen",
        "given_name": "Alice",
        "family_name": "Andersen",
        "email": "alice@example.com",
        "email_verified": True,
    },
    "bob": {
        "name": "Bob Berg",
        "given_name": "Bob",
        "family_name": "Berg",
        "email": "bob@example.com",
        "email_verified": True,
    },
}


# -- the peer -------------------------------------------------------------------------------------


def ensure_peer_installed() -> str:
    """`npm ci` in bench/peer when node_modules is missing or holds another version; returns node's version."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise SystemExit("the side-by-side benchmark needs Node.js 20+ and npm (apt-get install nodejs npm)")
    installed = PEER_DIR / "node_modules" / "oidc-provider" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != PEER_VERSION:
        print(f"installing node-oidc-provider {PEER_VERSION} (npm ci in {PEER_DIR})", flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER_DIR, check=True)
    return subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()


class PeerServer:
    """bench/peer/provider.mjs on the server core, with clients equivalent to Fingrade's bench clients:
    demo-backend (client_secret_basic), demo-native (public, loopback redirect, verified by the
    operator), bench-fapi (private_key_jwt ES256, DPoP-bound tokens, PAR required, FAPI 2.0) and
    bench-rs (a resource server that may introspect)."""

    def __init__(self, http: bool, pin: bool, keep: bool, token_format: str) -> None:
        self.http, self.keep = http, keep
        self.port = fg.free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="fingrade-peer-"))
        self.base_url = f"http://127.0.0.1:{self.port}" if http else f"https://localhost:{self.port}"
        self.cafile: str | None = None
        tls = None
        if not http:  # the same kind of self-signed certificate as Fingrade's dev TLS
            from fingrade.devtls import ensure_dev_certificate

            cert, key = ensure_dev_certificate(self.tmp, ["localhost"])
            self.cafile, tls = str(cert), {"cert": str(cert), "key": str(key)}
        self.fapi_key = ec.generate_private_key(ec.SECP256R1())
        self.fapi_kid = "bench-fapi-" + secrets.token_hex(4)
        self.rs_secret = secrets.token_urlsafe(32)
        config = {
            "issuer": self.base_url,
            "host": "127.0.0.1",
            "port": self.port,
            "tls": tls,
            "users": USERS,
            "password": fg.DEMO_PASSWORD,
            "verified_native": ["demo-native"],
            "resource_servers": ["bench-rs"],
            "access_token_format": token_format,
            "clients": self._clients(),
        }
        cfg = self.tmp / "peer.json"
        cfg.write_text(json.dumps(config, indent=2))
        self.log_path = self.tmp / "peer.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 -- the server process writes to it until stop()
        env = {**os.environ, "NODE_ENV": "production"}
        cmd = [*fg.taskset(SERVER_CORE if pin else None), "node", str(PEER_DIR / "provider.mjs"), str(cfg)]
        self.proc = subprocess.Popen(cmd, cwd=PEER_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _clients(self) -> list[dict[str, Any]]:
        return [
            {
                "client_id": "demo-backend",
                "client_secret": fg.DEMO_SECRET,
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "redirect_uris": [],
                "scope": "accounts payments",
            },
            {
                "client_id": "demo-native",
                "application_type": "native",
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "redirect_uris": [sc.REDIRECT_URI],
                "scope": "openid profile email accounts payments",
            },
            {
                "client_id": "bench-fapi",
                "token_endpoint_auth_method": "private_key_jwt",
                "token_endpoint_auth_signing_alg": "ES256",
                "jwks": {
                    "keys": [{**sc.public_jwk(self.fapi_key), "kid": self.fapi_kid, "use": "sig", "alg": "ES256"}]
                },
                "grant_types": ["authorization_code", "client_credentials"],
                "response_types": ["code"],
                "redirect_uris": [sc.FAPI_REDIRECT],
                "scope": "openid accounts payments",
                "dpop_bound_access_tokens": True,
                "require_pushed_authorization_requests": True,
            },
            {
                "client_id": "bench-rs",
                "client_secret": self.rs_secret,
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": [],
                "response_types": [],
                "redirect_uris": [],
            },
        ]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the peer exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.base_url + "/healthz", verify=self.cafile or True, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"the peer did not start:\n{self.log_path.read_text()[-3000:]}")

    def configure(self, bench: sc.Bench) -> None:
        bench.fapi_client_id, bench.fapi_key, bench.fapi_kid = "bench-fapi", self.fapi_key, self.fapi_kid
        bench.dpop_key = ec.generate_private_key(ec.SECP256R1())
        bench.dpop_jwk = sc.public_jwk(bench.dpop_key)
        bench.rs_client_id, bench.rs_secret = "bench-rs", self.rs_secret
        bench.returning_user = peer_returning_user

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.keep:
            print(f"kept the peer's config and log: {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


async def peer_returning_user(b: sc.Bench, conn: Connection, jar: CookieJar, username: str, client: str) -> None:
    """One authorization of `client` through PAR with the peer's login form (set-up, not measured):
    the consent is the grant that provider.mjs's loadExistingGrant establishes for the bench clients,
    so later authorizations come straight back. Only the session cookies are kept, as a browser
    would send only those (the interaction cookies are scoped to their interaction's path)."""
    if client == "native":
        _verifier, challenge = sc.pkce_pair()
        loc = await sc.native_authorize(b, conn, jar, challenge, secrets.token_urlsafe(12), secrets.token_urlsafe(12))
        redirect = sc.REDIRECT_URI
    else:
        loc = await sc.fapi_authorize(b, conn, jar, sc.fapi_item(b, int(time.time())))
        redirect = sc.FAPI_REDIRECT
    for _ in range(6):
        if loc.startswith(redirect + "?"):
            break
        if loc.startswith(b.target.base_url):
            loc = loc[len(b.target.base_url) :]
        page = await sc._get(b, conn, jar, loc)
        if page.status == 303:
            loc = sc._location(page)
            continue
        sc._expect(page, 200, "interaction page")
        action = sc.LOGIN_ACTION.search(page.body)
        if not action:
            raise HttpError(f"expected the login form: {page.body[:200]!r}")
        resp = await sc._post(
            b, conn, jar, action.group(1).decode(), {"username": username, "password": b.demo_password}
        )
        loc = sc._location(resp)
    else:
        raise HttpError("sign-in did not come back to the client")
    if "code" not in sc.query_of(loc):
        raise HttpError(f"sign-in ended without a code: {loc[:200]}")
    jar.cookies = {k: v for k, v in jar.cookies.items() if k.startswith("_session")}
    if "_session" not in jar.cookies:
        raise HttpError("sign-in did not set a session cookie")


# -- runs -----------------------------------------------------------------------------------------


class Side:
    """One server under test and what the driver knows about it."""

    def __init__(self, name: str, server: Any, bench: sc.Bench) -> None:
        self.name, self.server, self.bench = name, server, bench
        self.results: dict[str, list[Result]] = {}


async def start_sides(args: argparse.Namespace, http: bool) -> tuple[Side, Side]:
    pin = not args.no_pin
    env = {"FINGRADE_TRUSTED_PROXIES": "127.0.0.1"} if http else None  # the driver is the TLS-terminating proxy
    fingrade = await asyncio.to_thread(fg.Server, "sqlite", http, pin, args.keep, False, env)
    try:
        target = Target(fingrade.base_url, fingrade.cafile)
        bench = sc.Bench(target, await fg.discover(target), fg.DEMO_SECRET, fg.DEMO_PASSWORD)
        fg.register_clients(fingrade, bench)
        peer = await asyncio.to_thread(PeerServer, http, pin, args.keep, args.peer_tokens)
    except BaseException:
        await asyncio.to_thread(fingrade.stop)
        raise
    try:
        ptarget = Target(peer.base_url, peer.cafile)
        pbench = sc.Bench(ptarget, await fg.discover(ptarget), fg.DEMO_SECRET, fg.DEMO_PASSWORD)
        peer.configure(pbench)
    except BaseException:
        await asyncio.to_thread(peer.stop)
        await asyncio.to_thread(fingrade.stop)
        raise
    return Side("fingrade", fingrade, bench), Side("peer", peer, pbench)


async def measured_run(side: Side, idle: Side, workload: str, run: int, args: argparse.Namespace) -> Result:
    """One run of `workload` against `side`; the other server (`idle`) runs on the same core meanwhile,
    so its CPU time over the run (set-up, warm-up and window) is recorded: it should be ~0."""
    scenario = WORKLOADS[workload][0 if side.name == "fingrade" else 1]
    for attempt in range(args.retries + 1):
        idle0, t0 = _proc_cpu_seconds(idle.server.proc.pid), time.perf_counter()
        r = await fg.run_scenario(scenario, side.bench, run, args, args.concurrency, side.server.proc.pid)
        idle1, elapsed = _proc_cpu_seconds(idle.server.proc.pid), time.perf_counter() - t0
        if idle0 is not None and idle1 is not None:
            r.extra["idle_partner_cpu"] = round((idle1 - idle0) / elapsed, 3)
        noise = r.noise(None if args.no_pin else SERVER_CORE, DRIVER_CORE)
        if noise <= args.max_noise or attempt == args.retries:
            break
        print(f"  {side.name}: {workload}: other processes took {noise:.0%} of the server core; again", flush=True)
        await asyncio.sleep(5)
    r.extra["attempts"] = attempt + 1
    r.extra["scenario"] = scenario
    print(
        f"  run {run + 1}: {side.name:<8} {workload:<11} {r.rate:>9,.1f}/s  p50 {r.percentile(50):7.2f} ms  "
        f"p99 {r.percentile(99):7.2f} ms  errors {r.errors}  cpu drv {r.driver_cpu:.2f} srv {r.server_cpu or 0:.2f} "
        f"noise {r.noise(SERVER_CORE, DRIVER_CORE):.2f} (idle {idle.name} {r.extra.get('idle_partner_cpu', 0):.2f})",
        flush=True,
    )
    for e in r.error_samples[:3]:
        print(f"      error: {e}", flush=True)
    return r


async def bench_mode(args: argparse.Namespace, http: bool, workloads: list[str]) -> dict[str, Any]:
    mode = "http" if http else "tls"
    fingrade, peer = await start_sides(args, http)
    try:
        print(f"[{mode}] Fingrade at {fingrade.bench.target.base_url}, peer at {peer.bench.target.base_url}")
        for run in range(args.runs):
            for k, workload in enumerate(workloads):
                # Fingrade first, then the peer, then the other way round, so drift hits both alike.
                first, second = (fingrade, peer) if (run + k) % 2 == 0 else (peer, fingrade)
                for side, idle in ((first, second), (second, first)):
                    r = await measured_run(side, idle, workload, run, args)
                    side.results.setdefault(workload, []).append(r)
    finally:
        await asyncio.to_thread(peer.server.stop)
        await asyncio.to_thread(fingrade.server.stop)
    out: dict[str, Any] = {"mode": mode, "comparison": []}
    for side in (fingrade, peer):
        out[side.name] = {
            "base_url": side.bench.target.base_url,
            "runs": {
                w: [{**r.summary(), "noise": round(r.noise(SERVER_CORE, DRIVER_CORE), 3)} for r in rs]
                for w, rs in side.results.items()
            },
            "medians": {w: fg.median_row(rs) for w, rs in side.results.items()},
        }
    for w in workloads:
        f, p = out["fingrade"]["medians"][w], out["peer"]["medians"][w]
        fc, pc = f["rate_per_server_core_median"], p["rate_per_server_core_median"]
        out["comparison"].append(
            {
                "workload": w,
                "fingrade_scenario": WORKLOADS[w][0],
                "peer_scenario": WORKLOADS[w][1],
                "unit": WORKLOADS[w][2],
                "fingrade_rate": f["rate_median"],
                "peer_rate": p["rate_median"],
                "ratio": round(f["rate_median"] / p["rate_median"], 3) if p["rate_median"] else None,
                "ratio_per_server_core": round(fc / pc, 3) if fc and pc else None,
                "errors": {"fingrade": f["errors"], "peer": p["errors"]},
            }
        )
    return out


def print_table(title: str, m: dict[str, Any]) -> None:
    print(f"\n{title}")
    head = (
        f"{'workload':<12} {'Fingrade/s':>10} {'p50':>7} {'p99':>7} {'err':>4} {'srv':>5} | "
        f"{'peer/s':>10} {'p50':>7} {'p99':>7} {'err':>4} {'srv':>5} | {'F/peer':>6} {'per core':>8} {'noise':>5}"
    )
    print(head)
    print("-" * len(head))
    for c in m["comparison"]:
        w = c["workload"]
        f, p = m["fingrade"]["medians"][w], m["peer"]["medians"][w]

        def cols(r: dict[str, Any]) -> str:
            srv = "-" if r["server_cpu_median"] is None else f"{r['server_cpu_median']:.2f}"
            return (
                f"{r['rate_median']:>10,.1f} {r['p50_ms_median']:>7.2f} {r['p99_ms_median']:>7.2f} "
                f"{r['errors']:>4} {srv:>5}"
            )

        ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}"
        per_core = "-" if c["ratio_per_server_core"] is None else f"{c['ratio_per_server_core']:.2f}"
        noise = max(f["noise_max"], p["noise_max"])
        print(f"{w:<12} {cols(f)} | {cols(p)} | {ratio:>6} {per_core:>8} {noise:>5.2f}")
    print(
        "rate = completed operations per second (flows/s for code_flow and fapi_flow), medians; p50/p99 in ms; "
        "srv = share of the server core the server used; F/peer = Fingrade's median rate / the peer's; "
        "per core = the same ratio of operations per second of server CPU; noise = the largest share of the "
        "server core that other processes took in any run (the idle server of the pair included)"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="all", help=f"comma-separated, from: {', '.join(WORKLOADS)}; default all")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each run (default 2)")
    p.add_argument("--concurrency", type=int, default=32, help="connections (= workers), default 32")
    p.add_argument("--runs", type=int, default=3, help="runs per workload and server; medians (default 3)")
    p.add_argument(
        "--mode",
        choices=["http", "tls", "both"],
        default="http",
        help="plain HTTP for both (default; Fingrade behind the driver as its trusted proxy), TLS for both "
        "(the same self-signed certificate kind), or both one after the other",
    )
    p.add_argument(
        "--peer-tokens",
        choices=["opaque", "jwt"],
        default="opaque",
        help="the peer's client_credentials access tokens: opaque (its default: a stored record) or ES256 "
        "JWTs like Fingrade's (then its introspection does not apply, and `introspect` is left out)",
    )
    p.add_argument("--max-noise", type=float, default=0.10, help="repeat a run noisier than this (default 0.10)")
    p.add_argument("--retries", type=int, default=2, help="how often a noisy run is repeated (default 2)")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run both servers and the driver at this nice level (e.g. -10, as root) so other processes on a "
        "shared machine take less of their cores",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin (numbers are then not comparable)")
    p.add_argument("--keep", action="store_true", help="keep both servers' temp dirs and logs")
    p.add_argument("--results-dir", default=str(HERE / "results"), help="where the JSON goes (empty: nowhere)")
    p.add_argument("--label", default="", help="added to the result file name")
    args = p.parse_args()
    args.engine, args.backend, args.profile = "python", "sqlite", False  # what fg.run_scenario reads

    names = DEFAULT_WORKLOADS if args.workload == "all" else [w.strip() for w in args.workload.split(",") if w.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s): {', '.join(unknown)}")
    if args.peer_tokens == "jwt" and "introspect" in names:
        print("--peer-tokens jwt: the peer introspects only tokens it stores; leaving `introspect` out")
        names = [n for n in names if n != "introspect"]
    if args.runs < 1 or args.duration <= 0 or args.warmup + args.duration > 50:
        p.error("runs >= 1, duration > 0, and warmup + duration <= 50 (pre-signed proofs live 60 s)")
    if args.nice:
        fg.NICE = args.nice  # fg.taskset() starts both servers at this level
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    if not args.no_pin:
        if (os.cpu_count() or 1) < 2:
            p.error("pinning needs 2 cores; use --no-pin")
        os.sched_setaffinity(0, {DRIVER_CORE})
    node = ensure_peer_installed()

    started = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "machine": {**fg.machine(), "node": node, "oidc_provider": PEER_VERSION},
        "settings": dict(vars(args)),
        "workloads": {w: {"fingrade": f, "peer": pe, "unit": u} for w, (f, pe, u) in WORKLOADS.items() if w in names},
        "modes": [],
    }
    for http in {"http": [True], "tls": [False], "both": [True, False]}[args.mode]:
        report["modes"].append(uvloop.run(bench_mode(args, http, names)))
    for m in report["modes"]:
        print_table(
            f"Fingrade vs node-oidc-provider {PEER_VERSION} / {m['mode']}: median of {args.runs} run(s), "
            f"{args.duration:g} s each, {args.concurrency} connections (server core {SERVER_CORE}, driver core "
            f"{DRIVER_CORE}{', unpinned' if args.no_pin else ''}; peer tokens {args.peer_tokens})",
            m,
        )
    if args.results_dir:
        out_dir = Path(args.results_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        label = f"-{args.label}" if args.label else ""
        path = out_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}-side-by-side-{args.mode}{label}.json"
        path.write_text(json.dumps(report, indent=2))
        print(f"\nresults: {path}")
    errors = sum(c["errors"]["fingrade"] + c["errors"]["peer"] for m in report["modes"] for c in m["comparison"])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
