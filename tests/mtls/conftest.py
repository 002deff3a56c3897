"""Mutual TLS (RFC 8705) in both deployments, on both store backends:

- `direct`: Fingrade terminates TLS itself; the back channel is its second listener (mtls_port)
  that asks for client certificates.
- `nginx`: nginx terminates TLS (a browser host, and an mTLS host with `ssl_verify_client
  optional_no_ca`) and forwards the certificate in a header to `fingrade serve --http`, which
  believes that header from its trusted proxy only.
"""

from __future__ import annotations

import dataclasses
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support.backends import BACKENDS
from support.mtls import CA, ClientCert, Nginx, start_nginx
from support.server import Server, drop_pg_database, free_port, start_server

CERT_HEADER = "X-Client-Cert"


@dataclass
class Pki:
    tmp: Path
    ca: CA  # the configured trust anchor (mtls_ca_file)
    rogue: CA  # a CA the server does not trust


@dataclass
class Deployment:
    kind: str  # direct | nginx
    server: Server  # base_url: the browser-facing host (the issuer)
    mtls_url: str  # the mTLS host of mtls_endpoint_aliases
    pki: Pki
    upstream: str = ""  # nginx: Fingrade's own plain-HTTP address (reachable from the trusted proxy address)

    def mtls(self, cert: ClientCert | None = None, **kw) -> httpx.Client:
        """A back-channel client on the mTLS host, presenting `cert` (or no certificate)."""
        ctx = self.server.ssl_context()
        if cert is not None:
            ctx.load_cert_chain(*cert.httpx_cert)
        return httpx.Client(base_url=self.mtls_url, verify=ctx, timeout=20, **kw)

    def front(self, **kw) -> httpx.Client:
        return self.server.client(**kw)

    def wait_trusted(self, cert: ClientCert) -> None:
        """The direct listener's trust store learns newly registered self-signed certificates within
        client_cache_seconds (web/server.py TrustStore); nginx accepts any certificate."""
        deadline = time.monotonic() + 15
        while True:
            try:
                with self.mtls(cert) as c:
                    c.get("/healthz").raise_for_status()
                return
            except (httpx.HTTPError, ssl.SSLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    return Pki(tmp=tmp, ca=CA.create(tmp), rogue=CA.create(tmp, "Rogue CA"))


def _direct(tmp: Path, backend: str, pki: Pki) -> Iterator[Deployment]:
    mtls_port = free_port()
    srv = start_server(
        tmp,
        backend,
        extra_env={
            "FINGRADE_MTLS_PORT": str(mtls_port),
            "FINGRADE_MTLS_CA_FILE": str(pki.ca.path),
            "FINGRADE_MTLS_CERT_HEADER": CERT_HEADER,
            # A proxy address that is not ours: a forged certificate header from us must be ignored.
            "FINGRADE_TRUSTED_PROXIES": "192.0.2.1",
            "FINGRADE_CLIENT_CACHE_SECONDS": "1",
        },
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"https://localhost:{mtls_port}/healthz", verify=srv.ssl_context(), timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield Deployment("direct", srv, f"https://localhost:{mtls_port}", pki)
    finally:
        srv.stop()
        if backend == "postgres":
            drop_pg_database(srv.env["FINGRADE_DATABASE_URL"])


def _nginx(tmp: Path, backend: str, pki: Pki) -> Iterator[Deployment]:
    front, mtls_port, upstream = free_port(), free_port(), free_port()
    srv = start_server(
        tmp,
        backend,
        port=upstream,
        plain_http=True,
        extra_env={
            "FINGRADE_ISSUER": f"https://localhost:{front}",
            "FINGRADE_TRUSTED_PROXIES": "127.0.0.1",
            "FINGRADE_MTLS_BASE_URL": f"https://localhost:{mtls_port}",
            "FINGRADE_MTLS_CA_FILE": str(pki.ca.path),
            "FINGRADE_MTLS_CERT_HEADER": CERT_HEADER,
        },
    )
    proxy: Nginx | None = None
    try:
        proxy = start_nginx(tmp, upstream, front, mtls_port, CERT_HEADER)
        public = dataclasses.replace(srv, base_url=f"https://localhost:{front}", ca=str(proxy.cert), process=None)
        yield Deployment("nginx", public, f"https://localhost:{mtls_port}", pki, upstream=srv.base_url)
    finally:
        if proxy is not None:
            proxy.stop()
        srv.stop()
        if backend == "postgres":
            drop_pg_database(srv.env["FINGRADE_DATABASE_URL"])


@pytest.fixture(scope="session", params=[f"{k}-{b}" for k in ("direct", "nginx") for b in BACKENDS])
def deployment(
    request: pytest.FixtureRequest, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    kind, backend = request.param.split("-")
    tmp = tmp_path_factory.mktemp(request.param)
    yield from (_direct if kind == "direct" else _nginx)(tmp, backend, pki)


@pytest.fixture
def browser(deployment: Deployment) -> Iterator[httpx.Client]:
    with deployment.front(follow_redirects=False) as client:
        yield client
