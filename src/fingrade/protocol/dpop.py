"""DPoP proof validation (RFC 9449 §4.3) and server-provided nonces (§8, §9). `jwt` parses and
verifies the JWS (its key built once per distinct jwk by `jws_signatures`); this module holds the policy."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from fingrade.protocol import jws_signatures, jwt
from fingrade.protocol.crypto import b64url, equal, sha256_b64url, token_hash
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.http import HttpRequest
from fingrade.protocol.jose import ALLOWED_ALGS, check_key_strength, has_private_members
from fingrade.protocol.single_use import ReplayCache, SingleUseClaims, claim

MAX_AGE = 300  # §11.1: a proof is accepted this long after its iat
FUTURE_LEEWAY = 10  # FAPI 2.0 SP 5.3.2.1-13: iat up to 10 s ahead accepted (more is refused)
MAX_PROOF_LENGTH = 8192
MAX_JTI_LENGTH = 256  # §11.1: huge jti values are refused rather than stored
# §11.1: the one-time store kind of the proof replay cache (oauth.onetime_kinds.OneTimeKind.DPOP_JTI).
REPLAY_KIND = "dpop_jti"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]")

# The default 512-character header limit is too small for an RSA jwk; unknown header members are
# ignored (§4.3), so the header check is not strict.
_HEADER_RULES = jwt.HeaderRules(registered_only=False, max_header_segment=4096)


class DPoPSettings(Protocol):
    """The settings proof checks read (fingrade.config.Settings is one)."""

    @property
    def dpop_nonce(self) -> bool: ...  # §8: require server nonces

    @property
    def dpop_nonce_lifetime(self) -> int: ...  # seconds a nonce window lasts

    @property
    def mtls_base_url(self) -> str: ...  # RFC 8705 §5 alias host of the endpoints, or ""


class ProofContext(Protocol):
    """What checking DPoP proofs needs: the settings (nonces, alias host), the shared replay cache,
    the server key (nonces), the clock and the issuer the endpoint URLs are built from. The
    authorization server's Core is one; the bank's resource server has its own."""

    @property
    def settings(self) -> DPoPSettings: ...

    @property
    def onetime(self) -> ReplayCache: ...

    @property
    def server_key(self) -> bytes: ...

    @property
    def clock(self) -> Callable[[], int]: ...

    @property
    def issuer(self) -> str: ...


class DPoPError(OAuthError):
    """An error met while handling a DPoP-scheme request; protected resources answer it with a
    `WWW-Authenticate: DPoP` challenge (§7.1) instead of a Bearer one."""


def invalid_dpop_proof(desc: str) -> DPoPError:
    # §5: 400 at the token endpoint; resources turn it into 401 with a DPoP challenge (§7.1).
    return DPoPError("invalid_dpop_proof", desc, 400)


def _nonce_for(core: ProofContext, epoch: int) -> str:
    return b64url(hmac.new(core.server_key, b"dpop-nonce:%d" % epoch, hashlib.sha256).digest()[:18])


def current_nonce(core: ProofContext) -> str:
    """§8: the nonce clients must put in their next proofs. Stateless: an HMAC of the current time
    window under the shared server key, so any node issues and accepts the same values."""
    return _nonce_for(core, core.clock() // core.settings.dpop_nonce_lifetime)


def nonce_headers(core: ProofContext) -> dict[str, str]:
    """§8.2: responses of endpoints taking proofs carry the current nonce, so a client learns the
    next one without a failed request."""
    return {"DPoP-Nonce": current_nonce(core)} if core.settings.dpop_nonce else {}


def _check_nonce(core: ProofContext, nonce: Any) -> None:
    epoch = core.clock() // core.settings.dpop_nonce_lifetime
    # The current and the previous window: a nonce handed out just before a window ends stays good.
    if not isinstance(nonce, str) or not any(equal(nonce, _nonce_for(core, e)) for e in (epoch, epoch - 1)):
        # §8: 400 use_dpop_nonce with the nonce to use (resources: 401 with a DPoP challenge, §9).
        raise DPoPError(
            "use_dpop_nonce",
            "use the nonce in the DPoP-Nonce header"
            if nonce is None
            else "the DPoP proof nonce is not valid (any more)",
            400,
            headers=nonce_headers(core),
        )


def challenge(exc: OAuthError | None = None) -> str:
    """§7.1: the DPoP challenge, with the accepted algorithms and the error if there is one."""
    parts = [f'DPoP algs="{" ".join(ALLOWED_ALGS)}"']
    if exc is not None and exc.error != "missing_token":
        parts.append(f'error="{exc.error}"')
        if exc.description:
            parts.append(f'error_description="{exc.description}"')
        parts.extend(f'{k}="{v}"' for k, v in exc.challenge_params.items())
    return ", ".join(parts)


def _normalise_pct(text: str) -> str:
    """RFC 3986 §6.2.2.1/§6.2.2.2: upper-case escapes, decode escaped unreserved characters."""

    def fix(m: re.Match[str]) -> str:
        ch = chr(int(m.group(0)[1:], 16))
        return ch if _UNRESERVED.fullmatch(ch) else m.group(0).upper()

    return _PCT.sub(fix, text)


def normalise_htu(url: str) -> str | None:
    """§4.3 item 9: compare without query and fragment, after RFC 3986 §6.2.2 syntax-based and
    §6.2.3 scheme-based normalisation (case of scheme and host, default port, empty path)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return urlunsplit((scheme, netloc, _normalise_pct(parts.path) or "/", "", ""))


def proof_header(request: HttpRequest) -> str | None:
    return request.header("dpop")


def _endpoint_urls(core: ProofContext, url: str) -> tuple[str | None, ...]:
    """The request URL, and its RFC 8705 §5 mtls_endpoint_aliases twin: the same endpoint may be
    reached on the mutual-TLS host, and a proof names the URL the client actually used."""
    alias = core.settings.mtls_base_url
    if alias and url.startswith(core.issuer + "/"):
        return normalise_htu(url), normalise_htu(alias + url[len(core.issuer) :])
    return (normalise_htu(url),)


async def verify_proof(
    core: ProofContext,
    header_value: str | None,
    method: str,
    url: str,
    access_token: str | None = None,
    single_use: SingleUseClaims | None = None,
) -> str:
    """Check a DPoP proof per RFC 9449 §4.3 and return its key's RFC 7638 SHA-256 thumbprint (jkt).
    `url` is the endpoint URL built from our issuer, never from the Host header. With `single_use`, the
    proof's jti is claimed by the caller with the request's other single-use values (single_use.py);
    without, here."""
    if header_value is None:
        raise invalid_dpop_proof("a DPoP proof is required")
    value = header_value.strip()
    # Item 1: exactly one DPoP header. The web layer joins repeated headers with ", ", and a
    # compact JWS never contains a comma.
    if "," in value:
        raise invalid_dpop_proof("exactly one DPoP header is allowed")
    if not value or len(value) > MAX_PROOF_LENGTH:
        raise invalid_dpop_proof("the DPoP proof is empty or too long")
    try:  # Item 2: a well-formed compact JWS; items 3 and 4 of shape: header and claim types
        proof = jwt.parse(value, max_length=MAX_PROOF_LENGTH)
    except jwt.JwtError:
        raise invalid_dpop_proof("the DPoP proof is not a well-formed JWT") from None
    header = proof.header
    if (header.typ or "").lower() != "dpop+jwt":  # item 4
        raise invalid_dpop_proof("the DPoP proof typ must be dpop+jwt")
    alg = header.alg
    if alg not in ALLOWED_ALGS:  # item 5: asymmetric, allowed by policy (FAPI 2.0 SP 5.4.1)
        raise invalid_dpop_proof("the DPoP proof alg must be one of " + ", ".join(ALLOWED_ALGS))
    jwk = header.jwk
    if jwk is None:
        raise invalid_dpop_proof("the DPoP proof needs a jwk header")
    if has_private_members(jwk):  # item 7
        raise invalid_dpop_proof("the DPoP proof jwk must not contain a private key")
    try:
        # A client signs every proof with the same key, and importing it (point validation) costs
        # more than checking a signature: the key is built once per distinct jwk (bounded cache).
        # The strength check and the signature check below still run on every proof.
        key = jws_signatures.verification_key(jwk)
    except jws_signatures.JwkError:
        raise invalid_dpop_proof("the DPoP proof jwk is not a valid key") from None
    jkt = key.thumbprint  # RFC 7638, the proof key's identity (§6.1)
    check_key_strength(key.public, invalid_dpop_proof)
    try:  # item 6: signed by the embedded key, with the alg the header names
        jwt.verify(proof, key, [alg], _HEADER_RULES)
    except jwt.JwtError:
        raise invalid_dpop_proof("the DPoP proof signature is not valid") from None
    claims = proof.claims
    _check_claims(core, claims, method, url, access_token)
    if core.settings.dpop_nonce:  # item 10
        _check_nonce(core, claims.get("nonce"))
    # §11.1: each proof once, across all nodes (the one-time store is shared). Kept for the whole
    # acceptance window of the proof.
    await claim(
        core.onetime,
        single_use,
        REPLAY_KIND,
        token_hash(f"{jkt}:{claims['jti']}"),
        MAX_AGE + FUTURE_LEEWAY,
        invalid_dpop_proof("the DPoP proof has already been used"),
    )
    return jkt


def _check_claims(core: ProofContext, claims: dict[str, Any], method: str, url: str, access_token: str | None) -> None:
    jti = claims.get("jti")  # item 3: required claims
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise invalid_dpop_proof("the DPoP proof needs a jti")
    if claims.get("htm") != method:  # item 8
        raise invalid_dpop_proof("the DPoP proof htm does not match the request method")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalise_htu(htu) is None or normalise_htu(htu) not in _endpoint_urls(core, url):
        raise invalid_dpop_proof("the DPoP proof htu does not match the request URL")  # item 9
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool):
        raise invalid_dpop_proof("the DPoP proof needs a numeric iat")
    now = core.clock()
    if iat > now + FUTURE_LEEWAY:  # item 11
        raise invalid_dpop_proof("the DPoP proof was issued in the future")
    if iat < now - MAX_AGE:
        raise invalid_dpop_proof("the DPoP proof is too old")
    # Not required by §4.2, but a proof that says when it stops (or starts) being valid is held to it
    # (RFC 7519 §4.1.4, §4.1.5; conformance fapi2 check-dpop-proof-nbf-exp), with the same leeway.
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if exp is not None and (not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp < now - FUTURE_LEEWAY):
        raise invalid_dpop_proof("the DPoP proof has expired")
    if nbf is not None and (not isinstance(nbf, (int, float)) or isinstance(nbf, bool) or nbf > now + FUTURE_LEEWAY):
        raise invalid_dpop_proof("the DPoP proof is not valid yet")
    if access_token is not None:  # item 12: bound to the access token it travels with
        ath = claims.get("ath")
        if not isinstance(ath, str) or not access_token.isascii() or not equal(ath, sha256_b64url(access_token)):
            raise invalid_dpop_proof("the DPoP proof ath does not match the access token")
