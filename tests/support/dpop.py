"""Make DPoP proofs (RFC 9449 §4.2) with joserfc, the way a client would, plus knobs to break them."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

import orjson
from joserfc import jws
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry

# Lets tests add unknown header members, which servers must ignore (RFC 9449 §4.3).
_LAX = JWSRegistry(strict_check_header=False)


def ath(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


class DPoPKey:
    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256")
        self.jkt = self.key.thumbprint()

    def proof(
        self,
        htm: str,
        htu: str,
        *,
        token: str | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        iat: float | None = None,
    ) -> str:
        """A valid proof; `header`/`claims` override members, `drop` removes header or claim names."""
        head: dict[str, Any] = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": htm,
            "htu": htu,
            "iat": int(time.time()) if iat is None else iat,
        }
        if token is not None:
            body["ath"] = ath(token)
        head.update(header or {})
        body.update(claims or {})
        for name in drop:
            head.pop(name, None)
            body.pop(name, None)
        return jws.serialize_compact(
            head, orjson.dumps(body), self.key, algorithms=[head.get("alg", "ES256")], registry=_LAX
        )
