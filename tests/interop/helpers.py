"""Helpers for the interop tests. The user's part of each flow (login and consent) is done with our own
flow helpers on a cookie-keeping httpx client, as a browser would; everything else is done by the
third-party client."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.flow import consent, follow_to_client, login
from support.sca import Authenticator, walk
from support.server import DEMO_PASSWORD

NODE_DIR = Path(__file__).parent / "node"


def user_part(
    browser: httpx.Client,
    url: str,
    redirect_uri: str,
    username: str = "alice",
    decision: str = "approve",
    app: Authenticator | None = None,
) -> str:
    """What the user does between the client's authorization URL and the redirect back to it:
    log in and consent (and, with `app`, the second factor on a server with SCA on). Returns the
    callback URL (the Location of the redirect to the client)."""
    prefix = redirect_uri.split("?")[0]
    resp = follow_to_client(browser, browser.get(url), prefix)
    if app is not None:
        resp = walk(browser, resp, prefix, lambda: int(time.time()), app, username, decision=decision)
    if resp.status_code == 200 and 'name="password"' in resp.text:
        resp = login(browser, resp, username, DEMO_PASSWORD)
        assert resp.status_code == 303, resp.text[:500]
        resp = follow_to_client(browser, resp, prefix)
    if resp.status_code == 200 and 'name="decision"' in resp.text:
        resp = consent(browser, resp, decision)
    elif decision != "approve":
        raise AssertionError("no consent page was shown, so the user could not deny (remembered consent?)")
    assert resp.status_code == 303, (resp.status_code, resp.text[:500])
    location = resp.headers["location"]
    assert location.startswith(prefix), location
    return location


@dataclass
class NodeRun:
    authorize: dict[str, Any]
    callback: str
    result: dict[str, Any]
    stderr: str


def converse(
    proc: subprocess.Popen,
    browser: httpx.Client,
    redirect_uri: str,
    timeout: float,
    tamper: Callable[[str], str] | None = None,
    decision: str = "approve",
    app: Authenticator | None = None,
) -> NodeRun:
    """The protocol of the Node scripts: they print {"step": "authorize", "url": ...}, read the
    callback URL on stdin and end with one JSON result line. The user's part happens in between."""
    assert proc.stdout is not None
    watchdog = threading.Timer(timeout, proc.kill)  # a stuck client must not hang the suite
    watchdog.start()
    try:
        first = json.loads(proc.stdout.readline() or '{"step": "no output"}')
        if first.get("step") != "authorize":
            proc.kill()
            stderr = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"openid-client did not produce an authorization URL: {first} {stderr}")
        callback = user_part(browser, first["url"], redirect_uri, decision=decision, app=app)
        if tamper is not None:
            callback = tamper(callback)
        out, err = proc.communicate(callback + "\n")
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    lines = [line for line in out.splitlines() if line.strip()]
    result = json.loads(lines[-1]) if lines else {"step": "no output", "exit": proc.returncode}
    return NodeRun(authorize=first, callback=callback, result=result, stderr=err)
