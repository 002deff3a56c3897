"""Getting and using tokens the way clients do: redeem a code (RFC 6749 §4.1.3), the code flow to
tokens, client credentials, introspection, a bearer header; `Kit`, the steps every attack and retry
test repeats; and `race`, for requests that must arrive at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .demo import BACKEND, BACKEND_REDIRECT, BASIC, NATIVE, NATIVE_REDIRECT
from .flow import Authorized, run_flow
from .server import DEMO_SECRET, Server


def exchange(
    client: httpx.Client,
    got: Authorized,
    client_id: str | None = None,
    auth: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Redeem the code of a finished authorization (RFC 6749 §4.1.3)."""
    assert got.code, got.params
    data = {
        "grant_type": "authorization_code",
        "code": got.code,
        "redirect_uri": got.redirect_uri,
        "code_verifier": got.verifier,
    }
    if client_id is not None:
        data["client_id"] = client_id
    return client.post("/token", data=data, auth=auth, headers=headers)


def user_tokens(
    browser: httpx.Client,
    client_id: str = NATIVE,
    redirect_uri: str = NATIVE_REDIRECT,
    scope: str = "openid profile",
    auth: Any = None,
    **extra: str,
) -> dict[str, Any]:
    """Run the code flow for a user and return the token response. `auth` for confidential clients."""
    got = run_flow(browser, client_id, redirect_uri, scope=scope, **extra)
    resp = exchange(browser, got, client_id=None if auth else client_id, auth=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


def backend_tokens(
    browser: httpx.Client, scope: str = "openid profile offline_access accounts", **extra: str
) -> dict[str, Any]:
    """Tokens of the confidential demo client (with offline_access, a non-rotating refresh token)."""
    return user_tokens(browser, BACKEND, BACKEND_REDIRECT, scope, auth=BASIC, **extra)


def client_credentials(http: httpx.Client, scope: str | None = None, auth: Any = BASIC) -> dict[str, Any]:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    resp = http.post("/token", auth=auth, data=data)
    assert resp.status_code == 200, resp.text
    return resp.json()


def introspect(http: httpx.Client, token: str, auth: Any = BASIC, **extra: str) -> httpx.Response:
    return http.post("/introspect", auth=auth, data={"token": token, **extra})


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


@dataclass
class Kit:
    """A server, a cookie-keeping browser on it and a resource server's credentials (RFC 7662 §4)."""

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
