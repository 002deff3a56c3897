"""A small load driver: raw keep-alive HTTP/1.1 connections (TLS or plain) on uvloop, one
connection per worker, responses parsed with httptools (C). Written so the driver's own cost per
request stays far below the server's; `run.py --scenario null` measures that ceiling.

Each worker runs one *operation* after another (a request, or a whole flow) until the window
closes; an operation is counted when it completes inside the measured window, after a warm-up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import resource
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httptools


class HttpError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def set_cookies(self) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == b"set-cookie"]


class _Protocol(asyncio.Protocol):
    """One HTTP/1.1 connection; one request in flight at a time (no pipelining, like a browser)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self.closed = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpError("connection closed"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        resp = Response(self.parser.get_status_code(), self._headers, b"".join(self._body))
        self._headers, self._body = [], []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(resp)

    async def request(self, raw: bytes) -> Response:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


class Target:
    """Where the server is and how to reach it (TLS context, Host header)."""

    def __init__(self, base_url: str, cafile: str | None) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname or "localhost"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.host_header = parts.netloc
        self.ssl: ssl.SSLContext | None = None
        if self.tls:
            self.ssl = ssl.create_default_context(cafile=cafile)
        # Connect to the loopback address directly so name resolution is not part of any number.
        self.addr = "127.0.0.1" if self.host in ("localhost", "127.0.0.1") else self.host


class Connection:
    """A keep-alive connection that reconnects if the server closes it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.proto: _Protocol | None = None
        self.reconnects = 0

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        t = self.target
        _, proto = await loop.create_connection(
            _Protocol, t.addr, t.port, ssl=t.ssl, server_hostname=t.host if t.ssl else None
        )
        self.proto = proto  # type: ignore[assignment]

    async def send(self, raw: bytes) -> Response:
        if self.proto is None or self.proto.closed:
            if self.proto is not None:
                self.reconnects += 1
            await self._connect()
        assert self.proto is not None
        resp = await self.proto.request(raw)
        if (resp.header(b"connection") or b"").lower() == b"close":
            self.close()
        return resp

    def close(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()
        self.proto = None


def build_request(
    target: Target, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {target.host_header}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append("Content-Type: application/x-www-form-urlencoded")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def form(params: dict[str, str]) -> bytes:
    return urlencode(params).encode()


def basic(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: form-urlencode each part before Basic encoding.
    from urllib.parse import quote_plus

    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


class CookieJar:
    """Just enough of a cookie jar for one host: name=value pairs, Max-Age=0 deletes."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def update(self, resp: Response) -> None:
        for raw in resp.set_cookies():
            first, *attrs = raw.decode("latin-1").split(";")
            name, _, value = first.strip().partition("=")
            if any(a.strip().lower() in ("max-age=0",) for a in attrs) or value in ('""', ""):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}


# -- measurement ----------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    concurrency: int
    duration: float
    ops: int
    errors: int
    latencies_ms: list[float] = field(repr=False)
    driver_cpu: float  # fraction of one core the driver used during the window
    server_cpu: float | None  # fraction of one core the server used during the window
    core_busy: list[float] = field(default_factory=list)  # busy fraction of each core (all processes)
    extra: dict[str, Any] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ops / self.duration

    @property
    def rate_per_core(self) -> float | None:
        """Operations per second of server CPU: what one whole core would do if the server is
        CPU-bound. Less sensitive to other processes stealing the server's core than `rate`."""
        return self.ops / (self.duration * self.server_cpu) if self.server_cpu else None

    def other_load(self, server_core: int | None, driver_core: int | None) -> dict[str, float]:
        """CPU used on the server's and the driver's core by anything else (noise)."""
        out = {}
        if server_core is not None and len(self.core_busy) > server_core and self.server_cpu is not None:
            out["server_core"] = max(0.0, self.core_busy[server_core] - self.server_cpu)
        if driver_core is not None and len(self.core_busy) > driver_core:
            out["driver_core"] = max(0.0, self.core_busy[driver_core] - self.driver_cpu)
        if self.core_busy and self.server_cpu is not None:
            # Everything that is not the system under test (server, driver, its database services).
            out["foreign"] = max(
                0.0, sum(self.core_busy) - self.server_cpu - self.driver_cpu - self.extra.get("postgres_redis_cpu", 0.0)
            )
        return out

    def noise(self, server_core: int | None, driver_core: int | None) -> float:
        """The share of a core that other processes took: on the server's core for SQLite; for
        PostgreSQL (whose services run on either core) the foreign load on the whole machine."""
        load = self.other_load(server_core, driver_core)
        if "postgres_redis_cpu" in self.extra or server_core is None:
            return load.get("foreign", 0.0)
        return load.get("server_core", 0.0)

    def percentile(self, p: float) -> float:
        if p in self.extra.get("fixed_percentiles_ms", {}):  # from an external driver (wrk)
            return self.extra["fixed_percentiles_ms"][p]
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        # nearest-rank percentile
        idx = min(len(data) - 1, max(0, int(round(p / 100 * len(data) + 0.5)) - 1))
        return data[idx]

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "concurrency": self.concurrency,
            "duration_s": round(self.duration, 3),
            "ops": self.ops,
            "errors": self.errors,
            "rate": round(self.rate, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "rate_per_server_core": None if self.rate_per_core is None else round(self.rate_per_core, 1),
            "driver_cpu": round(self.driver_cpu, 3),
            "server_cpu": None if self.server_cpu is None else round(self.server_cpu, 3),
            "core_busy": [round(x, 3) for x in self.core_busy],
            **({"extra": self.extra} if self.extra else {}),
            **({"error_samples": self.error_samples[:5]} if self.error_samples else {}),
        }


def _proc_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def _core_ticks() -> list[tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat."""
    out = []
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("cpu") and line[3].isdigit():
                    v = [int(x) for x in line.split()[1:]]
                    idle = v[3] + (v[4] if len(v) > 4 else 0)
                    out.append((sum(v) - idle, sum(v)))
    except OSError:
        pass
    return out


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cu = resource.getrusage(resource.RUSAGE_CHILDREN)  # an external driver (wrk) runs as our child
    return ru.ru_utime + ru.ru_stime + cu.ru_utime + cu.ru_stime


SERVICE_NAMES = ("postgres", "redis-server")


def _services_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL and Redis process (shared services: not pinned, and other
    users of them are counted too)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as fh:
                if fh.read().strip() not in SERVICE_NAMES:
                    continue
        except OSError:
            continue
        cpu = _proc_cpu_seconds(int(entry))
        if cpu is not None:
            out[int(entry)] = cpu
    return out


def rss_mib(pid: int | None) -> float | None:
    """Resident set size of a process in MiB (VmRSS), or None."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class CpuWindow:
    """CPU used by the driver, the server and each core between start() and stop()."""

    def __init__(self, server_pid: int | None, services: bool = False) -> None:
        self.server_pid = server_pid
        self.services = services
        self.services_cpu: float | None = None

    def start(self) -> None:
        self.svc0 = _services_cpu() if self.services else {}
        self.cpu0 = _self_cpu()
        self.srv0 = _proc_cpu_seconds(self.server_pid) if self.server_pid else None
        self.cores0 = _core_ticks()
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self.elapsed = time.perf_counter() - self.t0
        cpu1 = _self_cpu()
        srv1 = _proc_cpu_seconds(self.server_pid) if self.server_pid else None
        cores1 = _core_ticks()
        self.driver_cpu = (cpu1 - self.cpu0) / self.elapsed
        self.server_cpu = (srv1 - self.srv0) / self.elapsed if self.srv0 is not None and srv1 is not None else None
        self.core_busy = [(b1 - b0) / max(1, t1 - t0) for (b0, t0), (b1, t1) in zip(self.cores0, cores1)]
        if self.services:
            svc1 = _services_cpu()
            self.services_cpu = sum(v - self.svc0.get(pid, 0.0) for pid, v in svc1.items()) / self.elapsed


Op = Callable[[Connection, int], Awaitable[None]]
MakeOp = Callable[[int, Connection], Awaitable[Op]]


async def measure(
    name: str,
    target: Target,
    concurrency: int,
    warmup: float,
    duration: float,
    make_op: MakeOp,
    server_pid: int | None = None,
    services: bool = False,
    window_hook: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
) -> Result:
    """Run `concurrency` workers; each gets its op from `make_op(worker_index)` (which may do
    per-worker setup such as a login) and repeats it. Only completions inside the window count."""
    latencies: list[float] = []
    errors = 0
    error_samples: list[str] = []
    state = {"measuring": False, "stop": False}
    ops = 0

    async def worker(i: int, op: Op, conn: Connection) -> None:
        nonlocal ops, errors
        n = 0
        while not state["stop"]:
            t0 = time.perf_counter()
            try:
                await op(conn, n)
                ok = True
            except Exception as exc:  # noqa: BLE001 - count and continue; the error rate is reported
                ok = False
                if len(error_samples) < 20:
                    error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
                conn.close()
            n += 1
            if state["measuring"] and not state["stop"]:
                if ok:
                    ops += 1
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

    conns = [Connection(target) for _ in range(concurrency)]
    ops_ready = await asyncio.gather(*(make_op(i, conns[i]) for i in range(concurrency)))
    tasks = [asyncio.create_task(worker(i, op, conns[i])) for i, op in enumerate(ops_ready)]
    await asyncio.sleep(warmup)
    hook_start = await window_hook("start") if window_hook else {}
    state["measuring"] = True
    window = CpuWindow(server_pid, services)
    window.start()
    await asyncio.sleep(duration)
    state["stop"] = True
    window.stop()
    hook_stop = await window_hook("stop") if window_hook else {}
    await asyncio.wait(tasks, timeout=30)
    for c in conns:
        c.close()
    reconnects = sum(c.reconnects for c in conns)
    extra: dict[str, Any] = {"reconnects": reconnects} if reconnects else {}
    if window.services_cpu is not None:
        extra["postgres_redis_cpu"] = round(window.services_cpu, 3)
    rss = rss_mib(server_pid)  # the server's memory at the end of the window (bounded caches stay flat)
    if rss is not None:
        extra["server_rss_mib"] = rss
    if ops and hook_start and hook_stop:  # counters from the server (SQL statements ...), per operation
        extra["per_op"] = {
            k: round((hook_stop[k] - hook_start[k]) / ops, 2) for k in hook_start if k in hook_stop and k != "seq"
        }
    return Result(
        name,
        concurrency,
        window.elapsed,
        ops,
        errors,
        latencies,
        window.driver_cpu,
        window.server_cpu,
        window.core_busy,
        extra,
        error_samples,
    )
