"""Certificates for the mutual-TLS tests (RFC 8705): a test CA issuing client certificates, self-signed
client certificates, and their JWK form (`x5c`) for self_signed_tls_client_auth."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc.jwk import ECKey


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ClientCert:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def httpx_cert(self) -> tuple[str, str]:
        return str(self.cert_path), str(self.key_path)

    @property
    def x5t_s256(self) -> str:
        """RFC 8705 §3.1: base64url SHA-256 of the DER certificate."""
        return base64.urlsafe_b64encode(hashlib.sha256(self.der).digest()).rstrip(b"=").decode()

    def escaped_pem(self) -> str:
        """What nginx puts into $ssl_client_escaped_cert: the PEM, URL-encoded."""
        return quote(self.pem, safe="")

    def jwk(self, kid: str | None = None) -> dict[str, Any]:
        """The certificate's public key as a JWK carrying the certificate in x5c (RFC 7517 §4.7)."""
        key = ECKey.import_key(self.key.public_key())
        return {
            **key.as_dict(private=False),
            "kid": kid or secrets.token_hex(4),
            "use": "sig",
            "x5c": [base64.b64encode(self.der).decode()],
        }


def _write(tmp: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> ClientCert:
    tmp.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = tmp / f"{stem}.crt", tmp / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ClientCert(cert, key, cert_path, key_path)


@dataclass
class CA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path  # PEM file, for FINGRADE_MTLS_CA_FILE

    @classmethod
    def create(cls, tmp: Path, name: str = "Fingrade Test Client CA") -> CA:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name, "Test Bank Ecosystem")
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        tmp.mkdir(parents=True, exist_ok=True)
        path = tmp / f"ca-{secrets.token_hex(3)}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert, key, path)

    def issue(
        self,
        tmp: Path,
        cn: str,
        *,
        org: str | None = "Fintech Ltd",
        dns: list[str] | None = None,
        uri: list[str] | None = None,
        ip: list[str] | None = None,
        email: list[str] | None = None,
    ) -> ClientCert:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
        names += [x509.UniformResourceIdentifier(u) for u in uri or []]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip or []]
        names += [x509.RFC822Name(e) for e in email or []]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _write(tmp, f"client-{secrets.token_hex(4)}", cert, key)


def self_signed(tmp: Path, cn: str = "Self-signed fintech") -> ClientCert:
    """RFC 8705 §2.2: a certificate the client made itself, registered in its JWKS."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _write(tmp, f"selfsigned-{secrets.token_hex(4)}", cert, key)


def write_jwks(tmp: Path, *jwks: dict[str, Any]) -> Path:
    path = tmp / f"jwks-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps({"keys": list(jwks)}))
    return path


def server_certificate(tmp: Path) -> tuple[Path, Path]:
    """A self-signed TLS server certificate for localhost (the nginx front end in the tests)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("Test proxy")
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=7))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    written = _write(tmp, "proxy-server", cert, key)
    return written.cert_path, written.key_path


NGINX_CONF = """\
daemon off;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    upstream fingrade {{ server 127.0.0.1:{upstream}; }}

    # Browser-facing host: no certificate request; a client-sent certificate header is removed.
    server {{
        listen 127.0.0.1:{port} ssl;
        location / {{
            proxy_pass http://fingrade;
            proxy_set_header Host $host:$server_port;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header {header} "";
        }}
    }}

    # mTLS host (RFC 8705 §5 mtls_endpoint_aliases): any client certificate is accepted here and
    # forwarded; Fingrade checks the chain and the client's registration itself.
    server {{
        listen 127.0.0.1:{mtls_port} ssl;
        ssl_verify_client optional_no_ca;
        location / {{
            proxy_pass http://fingrade;
            proxy_set_header Host $host:$server_port;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header {header} $ssl_client_escaped_cert;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    process: Any
    port: int
    mtls_port: int
    cert: Path
    prefix: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:  # noqa: BLE001
                self.process.kill()


def nginx_binary() -> str | None:
    import shutil

    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def start_nginx(tmp: Path, upstream: int, port: int, mtls_port: int, header: str = "X-Client-Cert") -> Nginx:
    """nginx as a foreground subprocess with its own prefix (no system service, no root paths)."""
    import os
    import socket
    import subprocess
    import time

    binary = nginx_binary()
    assert binary, "nginx is not installed: run tests/mtls/install-nginx.sh"
    prefix = tmp / f"nginx-{port}"
    for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    cert, key = server_certificate(prefix)
    # Running as root, nginx would hand its workers to `nobody`, who cannot enter the test's temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            prefix=prefix,
            cert=cert,
            key=key,
            upstream=upstream,
            port=port,
            mtls_port=mtls_port,
            header=header,
            user=user,
        )
    )
    log = open(prefix / "stderr.log", "wb")  # noqa: SIM115 -- nginx writes to it while it runs
    proc = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("nginx exited: " + (prefix / "error.log").read_text()[-2000:])
        try:
            for p in (port, mtls_port):
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
            return Nginx(proc, port, mtls_port, cert, prefix)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("nginx did not start: " + (prefix / "error.log").read_text()[-2000:])
