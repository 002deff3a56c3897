#!/usr/bin/env python
"""A FAPI 2.0 client in one file: PAR + PKCE S256 + private_key_jwt + DPoP against Fingrade.

    python examples/fapi2_client.py keygen                       # writes fintech-private.jwk, fintech-public-jwks.json
    fingrade clients add --name Fintech --profile fapi2 --auth-method private_key_jwt \
        --jwks-file fintech-public-jwks.json --redirect-uri https://localhost:9443/fapi-callback \
        --grant-type authorization_code --grant-type refresh_token --scope "openid accounts"
    python examples/fapi2_client.py flow --client-id <client_id>  # prints a URL, asks for the callback URL

The browser ends on https://localhost:9443/fapi-callback?code=... (nothing listens there): paste
that address back. The script checks `iss` and `state`, redeems the code with a DPoP proof and
calls /userinfo with the DPoP-bound token. Uses httpx and joserfc, as a real back end would.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jws, jwt
from joserfc.jwk import ECKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def keygen(out: Path) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": secrets.token_hex(4), "use": "sig"}, private=True)
    (out / "fintech-private.jwk").write_text(json.dumps(key.as_dict(private=True)))
    os.chmod(out / "fintech-private.jwk", 0o600)
    (out / "fintech-public-jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}, indent=2))
    print(f"wrote {out / 'fintech-private.jwk'} (keep it secret) and {out / 'fintech-public-jwks.json'} (register it)")


class Fintech:
    def __init__(self, issuer: str, client_id: str, key: ECKey, verify: str | bool) -> None:
        self.http = httpx.Client(base_url=issuer, verify=verify)
        self.meta = self.http.get("/.well-known/openid-configuration").json()
        assert self.meta["issuer"] == issuer, "issuer mismatch (RFC 8414 §3.3)"
        self.client_id, self.key = client_id, key
        self.dpop_key = ECKey.generate_key("P-256", private=True)  # one key per session
        self.nonce: str | None = None

    def assertion(self) -> dict[str, str]:
        # FAPI 2.0 SP 5.3.2.1-8: aud is the issuer identifier, as a string.
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.meta["issuer"],
                  "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 60}
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
        """POST with client authentication and a DPoP proof; retries once with a server nonce (RFC 9449 §8)."""
        url = self.meta[endpoint]
        for _ in range(2):
            resp = self.http.post(url, data={**data, **self.assertion()}, headers={"DPoP": self.proof("POST", url)})
            self.nonce = resp.headers.get("DPoP-Nonce", self.nonce)
            if not (resp.status_code == 400 and resp.json().get("error") == "use_dpop_nonce"):
                break
        return resp

    def get(self, endpoint: str, token: str) -> httpx.Response:
        url = self.meta[endpoint]
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
    verify: str | bool = args.cacert if args.cacert else True
    app = Fintech(args.issuer, args.client_id, key, verify)
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(16)
    pushed = app.post("pushed_authorization_request_endpoint", {
        "response_type": "code", "client_id": args.client_id, "redirect_uri": args.redirect_uri,
        "scope": args.scope, "state": state, "nonce": secrets.token_urlsafe(16),
        "code_challenge": b64(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256"})
    if pushed.status_code != 201:
        print("PAR refused:", pushed.text, file=sys.stderr)
        return 1
    print("Open this in a browser and sign in (alice):\n")
    print(app.meta["authorization_endpoint"] + "?" + urlencode(
        {"client_id": args.client_id, "request_uri": pushed.json()["request_uri"]}))
    callback = input("\nPaste the address the browser ended on: ").strip()
    params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    # RFC 9207 §2.4 and CSRF: the response must come from our issuer and carry our state.
    if params.get("iss") != app.meta["issuer"] or params.get("state") != state:
        print("authorization response not for this request:", params, file=sys.stderr)
        return 1
    if "error" in params:
        print("authorization refused:", params["error"], params.get("error_description", ""), file=sys.stderr)
        return 1
    tokens = app.post("token_endpoint", {"grant_type": "authorization_code", "code": params["code"],
                                         "redirect_uri": args.redirect_uri, "code_verifier": verifier})
    if tokens.status_code != 200:
        print("token request refused:", tokens.text, file=sys.stderr)
        return 1
    body = tokens.json()
    print(f"\ntoken_type {body['token_type']}, expires_in {body['expires_in']}, scope {body.get('scope')}")
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
    f.add_argument("--cacert", default="fingrade-data/dev-tls-cert.pem", help="'' to use the system store")
    args = p.parse_args()
    if args.cmd == "keygen":
        keygen(Path(args.out))
        return 0
    return flow(args)


if __name__ == "__main__":
    sys.exit(main())
