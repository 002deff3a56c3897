#!/usr/bin/env python
"""A FAPI 2.0 client in one file: PAR + PKCE S256 + private_key_jwt + DPoP against Fingrade.

    python examples/fapi2_client.py keygen                       # writes fintech-private.jwk, fintech-public-jwks.json
    fingrade clients add --name Fintech --profile fapi2 --auth-method private_key_jwt \
        --jwks-file fintech-public-jwks.json --redirect-uri https://localhost:9443/fapi-callback \
        --grant-type authorization_code --grant-type refresh_token --scope "openid accounts"
    python examples/fapi2_client.py flow --client-id <client_id>  # prints a URL, asks for the callback URL

With mutual TLS instead (server started with FINGRADE_MTLS_PORT=9444): the same key pair also gets
a self-signed certificate (fintech-cert.pem, in the JWKS as x5c); register the client with
`--auth-method self_signed_tls_client_auth` and run `flow --mtls`: the back-channel calls go to the
server's mtls_endpoint_aliases with the certificate, which authenticates the client and binds the
tokens (RFC 8705), so there is no client assertion and no DPoP proof.

The browser ends on https://localhost:9443/fapi-callback?code=... (nothing listens there): paste
that address back. The script checks `iss` and `state`, redeems the code with a DPoP proof and
calls /userinfo with the DPoP-bound token. Uses httpx and joserfc, as a real back end would.

For the bank API (docs/banking-api.md, "Journey"): `--authorization-details '<RFC 9396 JSON>'` goes
into the pushed request; the script prints the details the customer approved (with the accounts she
picked) and `--save session.json` writes the access token and the DPoP private key, which the bank
calls need (the file is secret: mode 0600).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import ssl
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from joserfc import jws, jwt
from joserfc.jwk import ECKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def keygen(out: Path) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": secrets.token_hex(4), "use": "sig"}, private=True)
    (out / "fintech-private.jwk").write_text(json.dumps(key.as_dict(private=True)))
    os.chmod(out / "fintech-private.jwk", 0o600)
    # The same key in a self-signed certificate, for self_signed_tls_client_auth (RFC 8705 §2.2).
    private = key.private_key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fintech-example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(private, hashes.SHA256())
    )
    (out / "fintech-cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "fintech-key.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(out / "fintech-key.pem", 0o600)
    public = {
        **key.as_dict(private=False),
        "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()],
    }
    (out / "fintech-public-jwks.json").write_text(json.dumps({"keys": [public]}, indent=2))
    print(
        f"wrote {out / 'fintech-private.jwk'} and {out / 'fintech-key.pem'} (keep them secret), "
        f"{out / 'fintech-cert.pem'} and {out / 'fintech-public-jwks.json'} (register it)"
    )


class Fintech:
    def __init__(
        self, issuer: str, client_id: str, key: ECKey, cacert: str | None, cert: tuple[str, str] | None = None
    ) -> None:
        tls = ssl.create_default_context(cafile=cacert or None)
        self.http = httpx.Client(base_url=issuer, verify=tls)
        self.meta = self.http.get("/.well-known/openid-configuration").json()
        assert self.meta["issuer"] == issuer, "issuer mismatch (RFC 8414 §3.3)"
        self.client_id, self.key, self.mtls = client_id, key, cert is not None
        if cert is not None:
            # RFC 8705 §5: back-channel calls go to the mTLS aliases, with the client certificate.
            self.meta = {**self.meta, **self.meta["mtls_endpoint_aliases"]}
            tls = ssl.create_default_context(cafile=cacert or None)
            tls.load_cert_chain(*cert)
            self.http = httpx.Client(base_url=issuer, verify=tls)
        self.dpop_key = ECKey.generate_key("P-256", private=True)  # one key per session
        self.nonce: str | None = None

    def assertion(self) -> dict[str, str]:
        # FAPI 2.0 SP 5.3.2.1-8: aud is the issuer identifier, as a string.
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.meta["issuer"],
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 60,
        }
        token = jwt.encode({"alg": "ES256", "kid": self.key.kid}, claims, self.key, algorithms=["ES256"])
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token}

    def proof(self, method: str, url: str, token: str | None = None) -> str:
        claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
        if token:
            claims["ath"] = b64(hashlib.sha256(token.encode()).digest())
        if self.nonce:
            claims["nonce"] = self.nonce
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.dpop_key.as_dict(private=False)}
        return jws.serialize_compact(header, json.dumps(claims).encode(), self.dpop_key, algorithms=["ES256"])

    def post(self, endpoint: str, data: dict[str, str]) -> httpx.Response:
        """POST with client authentication and a DPoP proof; retries once with a server nonce (RFC 9449 §8).
        With mutual TLS the certificate does both jobs."""
        url = self.meta[endpoint]
        if self.mtls:
            return self.http.post(url, data={**data, "client_id": self.client_id})
        for _ in range(2):
            resp = self.http.post(url, data={**data, **self.assertion()}, headers={"DPoP": self.proof("POST", url)})
            self.nonce = resp.headers.get("DPoP-Nonce", self.nonce)
            if not (resp.status_code == 400 and resp.json().get("error") == "use_dpop_nonce"):
                break
        return resp

    def get(self, endpoint: str, token: str) -> httpx.Response:
        url = self.meta[endpoint]
        if self.mtls:
            return self.http.get(url, headers={"Authorization": f"Bearer {token}"})
        for _ in range(2):
            resp = self.http.get(url, headers={"Authorization": f"DPoP {token}", "DPoP": self.proof("GET", url, token)})
            self.nonce = resp.headers.get("DPoP-Nonce", self.nonce)
            if 'error="use_dpop_nonce"' not in resp.headers.get("WWW-Authenticate", ""):
                break
        return resp


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def flow(args: argparse.Namespace) -> int:
    key = ECKey.import_key(json.loads(Path(args.key).read_text()))
    cert = (args.cert, args.cert_key) if args.mtls else None
    app = Fintech(args.issuer, args.client_id, key, args.cacert, cert)
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(16)
    request = {
        "response_type": "code",
        "client_id": args.client_id,
        "redirect_uri": args.redirect_uri,
        "scope": args.scope,
        "state": state,
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": b64(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
    }
    if args.authorization_details:
        request["authorization_details"] = json.dumps(json.loads(args.authorization_details))  # must be JSON
    pushed = app.post("pushed_authorization_request_endpoint", request)
    if pushed.status_code != 201:
        print("PAR refused:", pushed.text, file=sys.stderr)
        return 1
    print("Open this in a browser and sign in (alice):\n")
    print(
        app.meta["authorization_endpoint"]
        + "?"
        + urlencode({"client_id": args.client_id, "request_uri": pushed.json()["request_uri"]})
    )
    callback = input("\nPaste the address the browser ended on: ").strip()
    params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    # RFC 9207 §2.4 and CSRF: the response must come from our issuer and carry our state.
    if params.get("iss") != app.meta["issuer"] or params.get("state") != state:
        print("authorization response not for this request:", params, file=sys.stderr)
        return 1
    if "error" in params:
        print("authorization refused:", params["error"], params.get("error_description", ""), file=sys.stderr)
        return 1
    tokens = app.post(
        "token_endpoint",
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": args.redirect_uri,
            "code_verifier": verifier,
        },
    )
    if tokens.status_code != 200:
        print("token request refused:", tokens.text, file=sys.stderr)
        return 1
    body = tokens.json()
    print(f"\ntoken_type {body['token_type']}, expires_in {body['expires_in']}, scope {body.get('scope')}")
    if "authorization_details" in body:  # what the customer approved, e.g. the accounts she picked
        print("authorization_details:", json.dumps(body["authorization_details"]))
    if args.save:
        saved = {"access_token": body["access_token"], "authorization_details": body.get("authorization_details")}
        if not app.mtls:  # the token is bound to this key: every call needs a proof made with it
            saved["dpop_key"] = app.dpop_key.as_dict(private=True)
        fd = os.open(args.save, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when the file was there before
        with os.fdopen(fd, "w") as f:
            json.dump(saved, f)
        print("saved the access token and the DPoP key to", args.save)
    info = app.get("userinfo_endpoint", body["access_token"])
    print("userinfo:", info.status_code, info.text)
    return 0 if info.status_code == 200 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("--out", default=".")
    f = sub.add_parser("flow")
    f.add_argument("--client-id", required=True)
    f.add_argument("--issuer", default="https://localhost:8443")
    f.add_argument("--key", default="fintech-private.jwk")
    f.add_argument("--redirect-uri", default="https://localhost:9443/fapi-callback")
    f.add_argument("--scope", default="openid accounts")
    f.add_argument("--authorization-details", help="RFC 9396 authorization_details (JSON array) for PAR")
    f.add_argument("--save", help="write the access token and the DPoP private key to this file (mode 0600)")
    f.add_argument("--cacert", default="fingrade-data/dev-tls-cert.pem", help="'' to use the system store")
    f.add_argument("--mtls", action="store_true", help="authenticate and bind tokens with the certificate")
    f.add_argument("--cert", default="fintech-cert.pem")
    f.add_argument("--cert-key", default="fintech-key.pem")
    args = p.parse_args()
    if args.cmd == "keygen":
        keygen(Path(args.out))
        return 0
    return flow(args)


if __name__ == "__main__":
    sys.exit(main())
