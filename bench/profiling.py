"""Where the server spends its time: py-spy samples the running server (a separate process, so
the server is not modified), and this module turns py-spy's collapsed stacks into the top
functions by self and by inclusive time, and a split by area (TLS, framework, SQL, JOSE ...).

Only busy samples are kept (py-spy drops idle threads by default), so percentages are of the
server's busy time, which under load is close to all of its core.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# Area of a sample = the innermost frame that belongs to a known area (native libraries first).
AREAS: list[tuple[str, str]] = [
    ("libargon2", "argon2 (password hash)"),
    ("argon2/", "argon2 (password hash)"),
    ("_argon2", "argon2 (password hash)"),
    ("libsqlite3", "sqlite3 (C)"),
    ("_sqlite3", "sqlite3 (C)"),
    ("_rust.abi3", "cryptography (sign/verify, C/Rust)"),
    ("libssl", "TLS (OpenSSL)"),
    ("libcrypto", "TLS (OpenSSL)"),
    ("_ssl.", "TLS (OpenSSL)"),
    ("sslproto", "TLS (uvloop sslproto)"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("asyncpg/", "asyncpg"),
    ("redis/", "redis client"),
    ("joserfc/", "joserfc"),
    ("cryptography/", "cryptography (Python)"),
    ("jinja2/", "jinja2 templates"),
    ("starlette/", "Starlette"),
    ("uvicorn/", "uvicorn"),
    ("httptools", "httptools"),
    ("fingrade/store/", "fingrade stores"),
    ("fingrade/web/", "fingrade web layer"),
    ("fingrade/protocol/", "fingrade protocol"),
    ("fingrade/", "fingrade core"),
    ("orjson", "orjson"),
    ("asyncio/", "asyncio"),
    ("uvloop", "uvloop (event loop, C)"),
    ("loop.c", "uvloop (event loop, C)"),
    ("libuv", "uvloop (event loop, C)"),
    ("libc.so", "libc/kernel calls"),
    ("libpython", "CPython interpreter"),
    ("python3", "CPython interpreter"),
]


def py_spy() -> str:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]' (or pip install py-spy)")
    return exe


def start_py_spy(
    pid: int, out: Path, seconds: float, core: int | None, native: bool = False, rate: int = 200
) -> subprocess.Popen:
    cmd = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--output",
        str(out),
        "--duration",
        str(max(1, int(round(seconds)))),
        "--rate",
        str(rate if not native else 100),
    ]
    # Blocking sampling (py-spy pauses the server for each sample): consistent stacks even when
    # the server is preempted; the profiled run is not part of the medians.
    if native:
        cmd.append("--native")
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# Frames that sit under every request (process entry, server loop): no information in them.
ROOT_FILES = (
    "<frozen runpy>",
    "fingrade/cli.py",
    "serve_counted.py",
    "uvicorn/main.py",
    "uvicorn/server.py",
    "uvicorn/_compat.py",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
)


# With --native py-spy cannot tell a waiting thread from a running one: drop samples that wait
# (idle thread-pool workers on their queue, the event loop in epoll).
IDLE_FUNCS = {"PyThread_acquire_lock_timed", "_queue_SimpleQueue_get_impl", "epoll_wait", "epoll_pwait", "uv__io_poll"}

# An idle thread-pool worker waits in C (queue.get) under this Python frame; py-spy's idle
# detection does not always see it. Argon2 work in the same threads has deeper leaves.
IDLE_LEAVES = {("_worker", "concurrent/futures/thread.py")}


def _frame(raw: str) -> tuple[str, str]:
    m = FRAME.match(raw.strip())
    if not m:
        return raw.strip(), ""
    file = m.group("file")
    # Shorten site-packages paths to the package-relative part.
    for marker in ("site-packages/", "src/", "lib/python3.11/", "lib/python3.12/", "lib/python3.13/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return m.group("func"), file


def _area(frames: list[tuple[str, str]]) -> str:
    for func, file in reversed(frames):
        hay = file or func
        for needle, area in AREAS:
            if needle in hay:
                return area
    return "other"


def analyse(collapsed: str) -> dict[str, Any]:
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames or any(func in IDLE_FUNCS for func, _ in frames) or frames[-1] in IDLE_LEAVES:
            continue
        total += n
        names = [f"{func} ({file})" if file else func for func, file in frames]
        self_t[names[-1]] += n
        for name, (_func, file) in set(zip(names, frames)):
            if file not in ROOT_FILES:
                incl[name] += n
        areas[_area(frames)] += n
    if not total:
        return {"samples": 0}

    def pct(counter: Counter[str], k: int, floor: float = 0.0, ceiling: float = 1.01) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common() if floor <= n / total < ceiling][
            :k
        ]

    return {
        "samples": total,
        "areas_pct": pct(areas, 20),
        "top_self_pct": pct(self_t, 25),
        # Frames present in nearly every sample (the event loop, runners) say nothing; skip them.
        "top_inclusive_pct": pct(incl, 40, floor=0.01, ceiling=0.9),
    }


def finish(proc: subprocess.Popen, out: Path) -> dict[str, Any]:
    _, err = proc.communicate(timeout=120)
    if not out.exists():
        return {"samples": 0, "error": err.decode(errors="replace")[-800:]}
    return analyse(out.read_text())


def render(name: str, prof: dict[str, Any], k: int = 15) -> str:
    if not prof.get("samples"):
        return f"profile {name}: no samples ({prof.get('error', '')})"
    lines = [
        f"\nprofile of the server, scenario {name} ({prof['samples']} busy samples; "
        f"{prof.get('rate_while_profiled', '?')}/s while profiled)"
    ]
    if prof.get("sql_per_op"):
        lines.append("  SQL per operation: " + ", ".join(f"{k} {v}" for k, v in prof["sql_per_op"].items()))
    lines.append("  by area:")
    lines += [f"    {p:5.1f}%  {a}" for a, p in prof["areas_pct"]]
    lines.append("  top self:")
    lines += [f"    {p:5.1f}%  {f}" for f, p in prof["top_self_pct"][:k]]
    lines.append("  top inclusive (under 90%):")
    lines += [f"    {p:5.1f}%  {f}" for f, p in prof["top_inclusive_pct"][: k + 10]]
    return "\n".join(lines)


if __name__ == "__main__":  # analyse a saved collapsed-stack file: python bench/profiling.py FILE
    print(render(Path(sys.argv[1]).name, analyse(Path(sys.argv[1]).read_text()), k=25))
