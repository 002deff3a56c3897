"""The steps every attack repeats: get a code, redeem it, check a token; and the assertions
that say how a refusal must look."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from support.flow import Authorized, run_flow
from support.server import DEMO_SECRET, Server

NATIVE = "demo-native"
NATIVE_REDIRECT = "http://127.0.0.1:51234/callback"
SPA = "demo-spa"
SPA_REDIRECT = "https://localhost:3000/callback"
BACKEND = "demo-backend"
BACKEND_REDIRECT = "https://localhost:9443/callback"


@dataclass
class Kit:
    server: Server
    browser: httpx.Client
    rs: tuple[str, str]

    # offline_access: these flows get refresh tokens (OIDC Core §11; oauth/offline_access.py).
    def native_code(self, **kw: Any) -> Authorized:
        got = run_flow(self.browser, NATIVE, NATIVE_REDIRECT, **{"scope": "openid profile offline_access", **kw})
        assert got.code, got.location
        return got

    def backend_code(self, **kw: Any) -> Authorized:
        got = run_flow(self.browser, BACKEND, BACKEND_REDIRECT, **{"scope": "openid offline_access accounts", **kw})
        assert got.code, got.location
        return got

    def redeem_native(
        self, code: str, verifier: str | None, client: httpx.Client | None = None, **extra: str
    ) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": NATIVE_REDIRECT,
            "client_id": NATIVE,
            **extra,
        }
        if verifier is not None:
            data["code_verifier"] = verifier
        return (client or self.browser).post("/token", data=data)

    def redeem_backend(self, code: str, verifier: str | None, **extra: str) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": BACKEND_REDIRECT, **extra}
        if verifier is not None:
            data["code_verifier"] = verifier
        return self.browser.post("/token", data=data, auth=(BACKEND, DEMO_SECRET))

    def refresh(self, client_id: str, refresh_token: str, client: httpx.Client | None = None) -> httpx.Response:
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if client_id == BACKEND:
            return (client or self.browser).post("/token", data=data, auth=(BACKEND, DEMO_SECRET))
        return (client or self.browser).post("/token", data={**data, "client_id": client_id})

    def introspect(self, token: str) -> dict[str, Any]:
        resp = self.browser.post("/introspect", data={"token": token}, auth=self.rs)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def active(self, token: str) -> bool:
        return self.introspect(token)["active"] is True

    def userinfo(self, access_token: str) -> httpx.Response:
        return self.browser.get("/userinfo", headers={"Authorization": "Bearer " + access_token})


def assert_oauth_error(resp: httpx.Response, error: str, status: int = 400) -> None:
    """RFC 6749 §5.2: the status, a JSON body with `error`, and no caching."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"] == error, resp.text[:300]
    assert resp.headers.get("cache-control") == "no-store"


def assert_bearer_refused(resp: httpx.Response) -> None:
    """RFC 6750 §3.1: 401 invalid_token with a Bearer challenge that says so."""
    assert resp.status_code == 401, (resp.status_code, resp.text[:300])
    challenge = resp.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert resp.json()["error"] == "invalid_token"


def assert_error_page(resp: httpx.Response, status: int = 400) -> None:
    """RFC 6749 §4.1.2.1, RFC 9700 §4.11: an untrusted redirect URI gets a page, never a redirect."""
    assert resp.status_code == status, (resp.status_code, resp.headers.get("location"), resp.text[:300])
    assert "location" not in resp.headers
    assert resp.headers["content-type"].startswith("text/html")


def race(server: Server, n: int, call: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """Run `call` from n threads, each with its own connection, released at the same moment."""
    clients = [server.client() for _ in range(n)]
    for c in clients:  # open the TLS connections before the start line
        c.get("/healthz")
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(clients[i])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in clients:
        c.close()
    assert all(isinstance(r, httpx.Response) for r in results), results
    return results
