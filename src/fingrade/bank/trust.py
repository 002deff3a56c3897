"""How the bank's resource server trusts the authorization server: only through public protocols.

- RFC 8414 metadata, fetched from `bank_issuer` + /.well-known/oauth-authorization-server; its
  `issuer` must equal the configured one (§3.3). It names `jwks_uri` and `introspection_endpoint`.
- The AS's JWKS (RFC 7517), cached; an unknown `kid` triggers a refresh, at most one per
  `bank_jwks_refresh_seconds` (a stream of made-up kids cannot turn the bank into a JWKS hammer).
  A signature by a key that is not in the (refreshed) set is refused.
- RFC 7662 introspection, authenticated as a `resource_server` client (client_secret_basic), for
  revocation status. Positive answers are cached for `bank_introspection_cache_seconds` (0: every
  call asks); that is the revocation latency. Negative answers are never cached (they are final).
- The AS's consent resources (`/consent-resources`, `ConsentResources` below), with the same
  credentials, for the UK-style account-access-consents the TPP lodges at the bank.

The transport is an `httpx.AsyncClient`: HTTPS with certificate verification against
`bank_ca_file` (or the system CAs) when the bank runs on its own, or an in-process ASGI transport
into the AS's own application when both run in one process (docs/architecture.md).

Every failure to reach the AS fails closed: the request is answered 503 temporarily_unavailable,
never let through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from fingrade.protocol import jws_signatures, jwt, strict_json
from fingrade.protocol.crypto import token_hash
from fingrade.protocol.errors import OAuthError, invalid_token
from fingrade.protocol.failures import RETRY_AFTER
from fingrade.protocol.jose import ALLOWED_ALGS, check_key_strength, has_private_members

log = logging.getLogger("fingrade.bank")

LEEWAY = 5  # seconds of clock skew tolerated on exp / nbf / iat
JWKS_MAX_AGE = 300.0  # a known kid is still re-checked against a fresh set this often (removed keys)
MAX_CACHE = 10_000
MAX_TOKEN_LENGTH = 8192


def unavailable(desc: str) -> OAuthError:
    return OAuthError("temporarily_unavailable", desc, 503, headers={"Retry-After": RETRY_AFTER})


def refusal(status: int) -> str:
    """What an error status from the AS means for the operator (the log line), without guessing:
    only 401/403 point at the bank's own credentials."""
    if status in (401, 403):
        return (
            f"the authorization server refused the bank's credentials ({status}): "
            "check bank_client_id / bank_client_secret and that the client is a resource server"
        )
    if status == 503:
        return "the authorization server is temporarily unavailable (503)"
    if status == 429:
        return "the authorization server is limiting the bank's calls (429)"
    return f"the authorization server answered {status}"


def _key_error(desc: str) -> OAuthError:
    return OAuthError("invalid_token", desc, 401)


class AsTrust:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        issuer: str,
        audience: str,
        client_id: str,
        client_secret: str,
        cache_seconds: float,
        jwks_refresh_seconds: float,
        clock: Callable[[], int],
    ) -> None:
        self.http = http
        self.issuer = issuer
        self.audience = audience
        # RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Basic encoding.
        self._auth = (quote(client_id, safe=""), quote(client_secret, safe=""))
        self.cache_seconds = cache_seconds
        self.jwks_refresh_seconds = jwks_refresh_seconds
        self.clock = clock
        self._meta: dict[str, Any] | None = None
        self._keys: dict[str, jws_signatures.VerificationKey] = {}
        self._verified = jws_signatures.VerifiedTokens()  # tokens whose signature a key of ours verified
        self._jwks_at = float("-inf")  # monotonic time of the last fetch attempt
        self._jwks_ok_at = float("-inf")  # ... and of the last successful one
        self._lock = asyncio.Lock()
        self._active: dict[str, float] = {}  # token hash -> monotonic time until which "active" is believed

    async def close(self) -> None:
        await self.http.aclose()

    # -- metadata and keys --------------------------------------------------------------------

    async def _get_json(self, url: str) -> Any:
        try:
            resp = await self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            log.error("authorization server unreachable (%s): %s", url, type(exc).__name__)
            raise unavailable("the authorization server cannot be reached") from None
        if resp.status_code != 200:
            log.error("authorization server answered %s for %s", resp.status_code, url)
            raise unavailable("the authorization server cannot be reached")
        try:
            return strict_json.loads(resp.content)
        except strict_json.JsonError:
            raise unavailable("the authorization server sent malformed JSON") from None

    def _check_endpoint(self, url: Any) -> str:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme != urlsplit(self.issuer).scheme or not parts.hostname:
            raise unavailable("the authorization server metadata is not usable")
        return url

    async def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            meta = await self._get_json(self.issuer + "/.well-known/oauth-authorization-server")
            # RFC 8414 §3.3: the issuer in the metadata must be the one we asked.
            if not isinstance(meta, dict) or meta.get("issuer") != self.issuer:
                log.error("authorization server metadata names another issuer")
                raise unavailable("the authorization server metadata is not usable")
            self._check_endpoint(meta.get("jwks_uri"))
            self._check_endpoint(meta.get("introspection_endpoint"))
            self._meta = meta
        return self._meta

    async def _fetch_jwks(self) -> None:
        meta = await self.metadata()
        self._jwks_at = time.monotonic()
        data = await self._get_json(meta["jwks_uri"])
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise unavailable("the authorization server JWKS is malformed")
        keys: dict[str, jws_signatures.VerificationKey] = {}
        for jwk in data["keys"]:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or has_private_members(jwk):
                continue
            if jwk.get("use", "sig") != "sig" or (jwk.get("alg") is not None and jwk.get("alg") not in ALLOWED_ALGS):
                continue
            try:
                key = jws_signatures.verification_key(jwk)
                check_key_strength(key.public, _key_error)
            except (jws_signatures.JwkError, OAuthError):
                continue
            keys[jwk["kid"]] = key
        self._keys = keys
        self._jwks_ok_at = time.monotonic()
        log.info("fetched the authorization server's JWKS: %d keys", len(keys))

    async def key(self, kid: str) -> jws_signatures.VerificationKey:
        """The AS's public key `kid`; refreshes the set when the kid is unknown (rate-limited) or the
        set is old. Unknown after that: the token was not signed by the AS."""
        now = time.monotonic()
        if kid in self._keys and now - self._jwks_ok_at < JWKS_MAX_AGE:
            return self._keys[kid]
        async with self._lock:
            now = time.monotonic()
            stale = now - self._jwks_ok_at >= JWKS_MAX_AGE
            if (kid not in self._keys or stale) and now - self._jwks_at >= self.jwks_refresh_seconds:
                await self._fetch_jwks()
            elif stale and kid in self._keys:
                pass  # refreshed very recently without success: keep using what we know
        key = self._keys.get(kid)
        if key is None:
            log.info("access token signed by unknown kid %.40r (known: %s)", kid, ", ".join(sorted(self._keys)))
            raise invalid_token("the access token is signed by an unknown key")
        return key

    # -- tokens -------------------------------------------------------------------------------

    async def verify(self, token: str) -> dict[str, Any]:
        """RFC 9068 §4: validate a JWT access token, then ask the AS whether it is still active."""
        seen = self._verified.get(token)
        if seen is not None and seen[0] is not None and seen[1] is await self.key(seen[0]):
            claims = dict(seen[2])  # its signature was verified by the key still published under its kid
        else:
            claims = await self._verified_claims(token)
        self._check_claims(claims)
        await self._check_active(token, claims)
        return claims

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            parsed = jwt.parse(token, max_length=MAX_TOKEN_LENGTH)
        except jwt.JwtError:
            raise invalid_token("the access token is malformed") from None
        header = parsed.header
        if (header.typ or "").lower() not in ("at+jwt", "application/at+jwt"):
            raise invalid_token("not an access token")  # RFC 9068 §4 item 1
        if header.alg not in ALLOWED_ALGS:  # RFC 9068 §4 item 6, FAPI 2.0 SP 5.4.1
            raise invalid_token("the access token algorithm is not accepted")
        kid = header.kid
        if not kid or len(kid) > 200:
            raise invalid_token("the access token has no key id")
        key = await self.key(kid)
        try:
            jwt.verify(parsed, key, [header.alg])
        except jwt.JwtError:
            raise invalid_token("the access token signature is not valid") from None
        self._verified.add(token, kid, key, parsed.claims)
        return dict(parsed.claims)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        if claims.get("iss") != self.issuer:  # RFC 9068 §4 item 3
            raise invalid_token("the access token was not issued by the trusted authorization server")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if self.audience not in auds:  # item 4
            raise invalid_token("the access token was not issued for this API")
        now = self.clock()
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        if type(exp) is not int or exp + LEEWAY <= now:  # item 7
            raise invalid_token("the access token has expired")
        if nbf is not None and (type(nbf) is not int or nbf > now + LEEWAY):
            raise invalid_token("the access token is not valid yet")
        if iat is not None and (type(iat) is not int or iat > now + LEEWAY):
            raise invalid_token("the access token was issued in the future")
        for name in ("sub", "client_id", "jti"):
            if not isinstance(claims.get(name), str) or not claims[name]:
                raise invalid_token(f"the access token has no {name}")

    async def _check_active(self, token: str, claims: dict[str, Any]) -> None:
        digest = token_hash(token)
        now = time.monotonic()
        if self.cache_seconds > 0 and self._active.get(digest, 0.0) > now:
            return
        meta = await self.metadata()
        try:
            resp = await self.http.post(
                meta["introspection_endpoint"],
                auth=self._auth,
                data={"token": token, "token_type_hint": "access_token"},
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.error("introspection failed: %s", type(exc).__name__)
            raise unavailable("the authorization server cannot be reached") from None
        if resp.status_code != 200:
            log.error("introspection: %s", refusal(resp.status_code))
            raise unavailable("the token status cannot be checked")
        try:
            body = strict_json.loads(resp.content)
        except strict_json.JsonError:
            raise unavailable("the token status cannot be checked") from None
        if not isinstance(body, dict) or body.get("active") is not True:
            raise invalid_token("the access token is not active (revoked or expired)")
        if body.get("jti") != claims.get("jti") or body.get("sub") != claims.get("sub"):
            raise invalid_token("the access token is not active")
        if self.cache_seconds > 0:
            if len(self._active) >= MAX_CACHE:
                self._active = {k: v for k, v in self._active.items() if v > now}
                if len(self._active) >= MAX_CACHE:
                    self._active.clear()
            until = min(now + self.cache_seconds, now + max(0, int(claims["exp"]) - self.clock()))
            self._active[digest] = until


class ConsentResources:
    """The AS's consent resources (`{bank_issuer}/consent-resources`: UK-style consents lodged before the
    customer authorises them), called over AsTrust's HTTP client with the bank's resource-server
    credentials (HTTP Basic, as for introspection). Scoped to the TPP's client_id: another client's
    consent is not found. Any failure to get an answer fails closed (503 temporarily_unavailable)."""

    def __init__(self, trust: AsTrust) -> None:
        self.trust = trust
        self.url = trust.issuer + "/consent-resources"

    async def _call(self, method: str, url: str, **kw: Any) -> dict[str, Any] | None:
        try:
            resp = await self.trust.http.request(
                method, url, auth=self.trust._auth, headers={"Accept": "application/json"}, **kw
            )
        except httpx.HTTPError as exc:
            log.error("consent resources: authorization server unreachable: %s", type(exc).__name__)
            raise unavailable("the authorization server cannot be reached") from None
        try:
            body = strict_json.loads(resp.content)
        except strict_json.JsonError:
            body = None
        if resp.status_code == 404:
            return None
        if resp.status_code == 400 and isinstance(body, dict):
            # The AS's own check of the details (with the TPP's registered types): the TPP's error.
            desc = body.get("error_description")
            raise OAuthError("invalid_request", desc if isinstance(desc, str) and desc else "the consent was refused")
        if resp.status_code not in (200, 201) or not isinstance(body, dict):
            log.error("consent resources (%s): %s", method, refusal(resp.status_code))
            raise unavailable("the consent cannot be handled now")
        return body

    def _one(self, consent_id: str) -> str:
        return f"{self.url}/{quote(consent_id, safe='')}"

    async def create(self, client_id: str, details: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
        body = await self._call(
            "POST", self.url, json={"client_id": client_id, "authorization_details": details, "data": data}
        )
        if body is None:
            log.error("consent resources: the authorization server has no consent endpoint (404)")
            raise unavailable("the consent cannot be handled now")
        return body

    async def get(self, client_id: str, consent_id: str) -> dict[str, Any] | None:
        return await self._call("GET", self._one(consent_id), params={"client_id": client_id})

    async def revoke(self, client_id: str, consent_id: str) -> dict[str, Any] | None:
        return await self._call("DELETE", self._one(consent_id), params={"client_id": client_id})
