"""A FAPI 2.0 client the way a fintech back end would be written: a registered key pair for
private_key_jwt (or a client certificate for RFC 8705 mutual TLS), a DPoP key, PAR for every
authorization request, PKCE S256."""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from support.dpop import DPoPKey
from support.flow import Authorized, consent, follow_to_client, login, pkce_pair, query_of
from support.sca import Authenticator, walk
from support.server import DEMO_PASSWORD, Server

FAPI_REDIRECT = "https://localhost:9443/fapi-callback"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REQUEST_OBJECT_TYP = "oauth-authz-req+jwt"
FORM = re.compile(r'<form method="post" action="([^"]+)" id="authorization-response">(.*?)</form>', re.S)
FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def client_assertion(key: Any, alg: str, client_id: str, audience: str, lifetime: int = 60) -> str:
    """RFC 7523 §3 / OIDC Core §9 client assertion (private_key_jwt) of any client."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])


def form_post_fields(page: str) -> tuple[str, dict[str, str]]:
    """The action and the hidden fields of a form_post.jwt page (JARM §2.3.3)."""
    found = FORM.search(page)
    assert found, page[:500]
    fields = {html.unescape(k): html.unescape(v) for k, v in FIELD.findall(found.group(2))}
    return html.unescape(found.group(1)), fields


def new_key(alg: str = "ES256", kid: str | None = None) -> Any:
    params = {"kid": kid or secrets.token_hex(4), "use": "sig"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, private=True)
    if alg == "PS256":
        return RSAKey.generate_key(2048, parameters=params, private=True)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", parameters=params, private=True)
    raise ValueError(alg)


@dataclass
class FapiClient:
    server: Server
    client_id: str
    key: Any
    alg: str = "ES256"
    dpop: DPoPKey = field(default_factory=DPoPKey)
    redirect_uri: str = FAPI_REDIRECT
    # RFC 8705 §2: with tls_client_auth / self_signed_tls_client_auth the client sends only its
    # client_id; the TLS client certificate (configured on the httpx client) authenticates it.
    auth_method: str = "private_key_jwt"

    @classmethod
    def register(
        cls,
        server: Server,
        tmp: Path,
        *extra: str,
        profile: str = "fapi2",
        alg: str = "ES256",
        scope: str = "openid profile offline_access accounts payments",
    ) -> FapiClient:
        """Register with the CLI, as an operator would (README: "Registering a FAPI 2.0 client")."""
        key = new_key(alg)
        path = tmp / f"fapi-jwks-{key.kid}.json"
        path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
        out = server.add_client(
            "--name",
            f"Fintech {key.kid}",
            "--profile",
            profile,
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            str(path),
            "--redirect-uri",
            FAPI_REDIRECT,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--grant-type",
            "client_credentials",
            "--scope",
            scope,
            *extra,
        )
        return cls(server=server, client_id=out["client_id"], key=key, alg=alg)

    # -- client authentication (RFC 7523 §3; FAPI 2.0 SP 5.3.2.1-8: aud is the issuer, a string)
    def assertion(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.server.issuer,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 60,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode({"alg": self.alg, "kid": self.key.kid}, claims, self.key, algorithms=[self.alg])

    @classmethod
    def register_mtls(
        cls,
        server: Server,
        tmp: Path,
        auth_method: str,
        *extra: str,
        profile: str = "fapi2",
        scope: str = "openid profile offline_access accounts payments",
    ) -> FapiClient:
        """A mutual-TLS client (RFC 8705 §2): pass --tls-subject-dn ... for tls_client_auth, or
        --jwks-file with the certificate in x5c for self_signed_tls_client_auth."""
        out = server.add_client(
            "--name",
            f"mTLS fintech {secrets.token_hex(3)}",
            "--profile",
            profile,
            "--auth-method",
            auth_method,
            "--redirect-uri",
            FAPI_REDIRECT,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--grant-type",
            "client_credentials",
            "--scope",
            scope,
            *extra,
        )
        return cls(server=server, client_id=out["client_id"], key=None, auth_method=auth_method)

    # -- signed request objects (RFC 9101 §4; FAPI 2.0 Message Signing 5.3.1)
    def request_object(
        self,
        params: dict[str, str],
        *,
        key: Any = None,
        alg: str | None = None,
        typ: str | None = REQUEST_OBJECT_TYP,
        **claims: Any,
    ) -> str:
        """Sign `params` as a request object. Claims default to a valid object (iss, aud, client_id,
        nbf, exp 5 min, iat, jti); a claim given as None is left out."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.client_id,
            "aud": self.server.issuer,
            "client_id": self.client_id,
            "nbf": now,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(16),
            **params,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        key = key or self.key
        alg = alg or self.alg
        if typ is None:  # jwt.encode would add typ JWT
            return jws.serialize_compact({"alg": alg, "kid": key.kid}, json.dumps(body), key, algorithms=[alg])
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": typ}, body, key, algorithms=[alg])

    def push_signed(
        self, http: httpx.Client, params: dict[str, str], *, dpop: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """PAR with the request object as the only request parameter (plus client authentication)."""
        return self.push(http, {"request": self.request_object(params, **kwargs)}, dpop=dpop)

    def decode_response(self, http: httpx.Client, token: str) -> dict[str, Any]:
        """Verify a JARM response JWT with the server's /jwks and check iss, aud, exp (JARM §2.4)."""
        keys = KeySet.import_key_set(http.get("/jwks").json())
        claims = jwt.decode(token, keys, algorithms=["ES256", "PS256", "EdDSA"]).claims
        assert claims["iss"] == self.server.issuer, claims
        assert claims["aud"] == self.client_id, claims
        assert claims["exp"] > time.time(), claims
        return claims

    def auth_params(self, **overrides: Any) -> dict[str, str]:
        if self.auth_method != "private_key_jwt":
            return {"client_id": self.client_id}
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion(**overrides)}

    def dpop_header(self, path: str, method: str = "POST", token: str | None = None) -> dict[str, str]:
        return {"DPoP": self.dpop.proof(method, self.server.issuer + path, token=token)}

    # -- PAR (RFC 9126 §2)
    def request_params(self, **extra: str) -> tuple[dict[str, str], str]:
        verifier, challenge = pkce_pair()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid accounts",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(extra)
        return {k: v for k, v in params.items() if v is not None}, verifier

    def push(
        self,
        http: httpx.Client,
        params: dict[str, str],
        *,
        dpop: bool = True,
        auth: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        hdrs = dict(self.dpop_header("/par")) if dpop else {}
        hdrs.update(headers or {})
        return http.post("/par", data={**params, **(auth if auth is not None else self.auth_params())}, headers=hdrs)

    def authorize(
        self,
        browser: httpx.Client,
        request_uri: str,
        verifier: str,
        username: str = "alice",
        decision: str = "approve",
        app: Authenticator | None = None,
    ) -> Authorized:
        """The browser leg: only client_id and request_uri travel (FAPI 2.0 SP 5.3.3.2). `app`: the
        customer's authenticator app, for a server with strong customer authentication on."""
        resp = browser.get("/authorize?" + urlencode({"client_id": self.client_id, "request_uri": request_uri}))
        if app is not None:
            resp = walk(browser, resp, self.redirect_uri, lambda: int(time.time()), app, username, decision=decision)
        resp = follow_to_client(browser, resp, self.redirect_uri)
        if resp.status_code == 200 and 'name="password"' in resp.text:
            resp = follow_to_client(browser, login(browser, resp, username, DEMO_PASSWORD), self.redirect_uri)
        if resp.status_code == 200 and 'name="decision"' in resp.text:
            resp = consent(browser, resp, decision)
        if resp.status_code == 200 and 'id="authorization-response"' in resp.text:
            # form_post.jwt (JARM §2.3.3): the page posts the response field to the redirect URI.
            location, params = form_post_fields(resp.text)
        else:
            assert resp.status_code == 303, (resp.status_code, resp.text[:500])
            location = resp.headers["location"]
            params = query_of(location)
        jarm = self.decode_response(browser, params["response"]) if "response" in params else None
        code = (jarm or params).get("code")
        return Authorized(
            code=code, params=params, verifier=verifier, redirect_uri=self.redirect_uri, location=location, jarm=jarm
        )

    def redeem(
        self, http: httpx.Client, got: Authorized, *, dpop: bool = True, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": got.code or "",
            "redirect_uri": got.redirect_uri,
            "code_verifier": got.verifier,
            **self.auth_params(),
        }
        hdrs = dict(self.dpop_header("/token")) if dpop else {}
        hdrs.update(headers or {})
        return http.post("/token", data=data, headers=hdrs)

    def flow(
        self, http: httpx.Client, browser: httpx.Client, *, dpop: bool = True, signed: bool = False, **extra: str
    ) -> httpx.Response:
        """PAR → authorization → token, with DPoP unless `dpop=False` (then `http` should present a
        client certificate, RFC 8705); returns the token response. `signed`: the request goes as a
        signed request object (FAPI 2.0 Message Signing)."""
        params, verifier = self.request_params(**extra)
        pushed = self.push_signed(http, params, dpop=dpop) if signed else self.push(http, params, dpop=dpop)
        assert pushed.status_code == 201, pushed.text
        got = self.authorize(browser, pushed.json()["request_uri"], verifier)
        assert got.code, got.params
        return self.redeem(http, got, dpop=dpop)
