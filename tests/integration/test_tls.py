"""TLS on Fingrade's own (browser-facing) listener: TLS 1.2 or later, and with TLS 1.2 only the
BCP 195 recommended ECDHE + AES-GCM suites (FAPI 2.0 SP 5.2.1-2, 5.2.2, 5.2.3-2; RFC 9325 §4.2).
The mTLS listener has the same policy (tests/mtls/test_rfc8705.py)."""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import pytest
from support.server import Server


def _handshake(
    server: Server, max_version: ssl.TLSVersion, ciphers: str | None = None, min_version: ssl.TLSVersion | None = None
) -> tuple[str, str]:
    ctx = server.ssl_context()
    ctx.maximum_version = max_version
    if min_version is not None:
        ctx.minimum_version = min_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    port = urlsplit(server.base_url).port
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version() or "", tls.cipher()[0]


def test_fapi2_5_2_1_tls13_is_offered(server: Server) -> None:
    assert _handshake(server, ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"


def test_fapi2_5_2_2_tls12_negotiates_a_recommended_suite(server: Server) -> None:
    version, cipher = _handshake(server, ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2" and cipher.startswith("ECDHE-") and "GCM" in cipher


@pytest.mark.parametrize(
    "ciphers",
    ["ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-CHACHA20-POLY1305", "AES128-GCM-SHA256"],
)
def test_fapi2_5_2_2_tls12_other_suites_refused(server: Server, ciphers: str) -> None:
    with pytest.raises(ssl.SSLError):
        _handshake(server, ssl.TLSVersion.TLSv1_2, ciphers)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_fapi2_5_2_1_2_tls11_refused(server: Server) -> None:
    """TLS 1.1 is refused. The probe itself can speak TLS 1.1 (checked against `openssl s_server
    -tls1_1` when this test was written), so the refusal is the server's."""
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(server, ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0", min_version=ssl.TLSVersion.TLSv1)
