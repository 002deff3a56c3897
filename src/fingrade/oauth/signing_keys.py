"""The signing keys a node uses, reloaded from the durable store so rotation needs no restart.

Lifecycle: a key is created as `next` (published, not used), becomes `active` (signs) at the next
rotation, then `retired` (published so tokens it signed still verify) and is finally removed once
nothing it signed can still be valid.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, KeyParameters, OKPKey, RSAKey

from fingrade.oauth.models import SigningKey
from fingrade.oauth.ports import SigningKeyStore
from fingrade.protocol.jws_signatures import Signer, VerificationKeySet, VerifiedTokens, key_set


def generate_key(alg: str, now: int) -> SigningKey:
    kid = secrets.token_urlsafe(12)
    params: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        key: Any = ECKey.generate_key("P-256", parameters=params, private=True)
    elif alg == "PS256":
        key = RSAKey.generate_key(3072, parameters=params, private=True)
    elif alg == "EdDSA":
        key = OKPKey.generate_key("Ed25519", parameters=params, private=True)
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    return SigningKey(
        kid=kid,
        alg=alg,
        status="next",
        private_jwk=key.as_dict(private=True),
        public_jwk=key.as_dict(private=False),
        created_at=now,
    )


@dataclass
class KeyView:
    """What a node signs and publishes at one moment. The key objects are built here, once per
    reload, never per token."""

    active: SigningKey
    signer: Signer  # the active key, ready to sign
    published: list[dict[str, Any]]
    verify_set: VerificationKeySet  # every published key, to verify our own tokens


class KeyManager:
    def __init__(
        self, store: SigningKeyStore, alg: str = "ES256", reload_seconds: float = 10.0, retired_retention: int = 86400
    ) -> None:
        self.store = store
        self.alg = alg
        self.reload_seconds = reload_seconds
        self.retired_retention = retired_retention
        self._view: KeyView | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self.verified = VerifiedTokens()  # our access tokens whose signature these keys verified

    async def ensure_keys(self) -> None:
        """First start: create an active key and a next key."""
        keys = await self.store.list_signing_keys()
        now = int(time.time())
        if not any(k.status == "active" for k in keys):
            k = generate_key(self.alg, now)
            k.status, k.activated_at = "active", now
            await self.store.save_signing_key(k)
        if not any(k.status == "next" for k in keys):
            await self.store.save_signing_key(generate_key(self.alg, now))
        await self.reload()

    async def rotate(self) -> SigningKey:
        """next -> active, active -> retired, and a fresh next. Other nodes follow on their next reload."""
        now = int(time.time())
        keys = await self.store.list_signing_keys()
        nxt = next((k for k in keys if k.status == "next"), None) or generate_key(self.alg, now)
        for k in keys:
            if k.status == "active":
                k.status, k.retired_at = "retired", now
                await self.store.save_signing_key(k)
        nxt.status, nxt.activated_at = "active", now
        await self.store.save_signing_key(nxt)
        await self.store.save_signing_key(generate_key(self.alg, now))
        await self.reload()
        return nxt

    async def purge_retired(self, now: int) -> None:
        for k in await self.store.list_signing_keys():
            if k.status == "retired" and k.retired_at and k.retired_at + self.retired_retention < now:
                await self.store.delete_signing_key(k.kid)

    async def reload(self) -> KeyView:
        keys = await self.store.list_signing_keys()
        actives = sorted((k for k in keys if k.status == "active"), key=lambda k: k.activated_at or 0)
        if not actives:
            raise RuntimeError("no active signing key: run `fingrade migrate` and start the server once")
        active = actives[-1]  # during a rotation race the newest activation wins
        published = [k.public_jwk for k in keys]
        self._view = KeyView(
            active=active,
            signer=self._signer_for(active),
            published=published,
            verify_set=key_set({"keys": published}),
        )
        self._loaded_at = time.monotonic()
        return self._view

    def _signer_for(self, active: SigningKey) -> Signer:
        """The active key ready to sign; while it stays the active key, reloads keep its objects."""
        kept = self._view
        same = kept is not None and (kept.active.kid, kept.active.alg) == (active.kid, active.alg)
        if kept is not None and same and kept.active.private_jwk == active.private_jwk:
            return kept.signer
        return Signer(active.private_jwk, active.alg, active.kid)

    async def view(self) -> KeyView:
        if self._view is None or time.monotonic() - self._loaded_at > self.reload_seconds:
            async with self._lock:
                if self._view is None or time.monotonic() - self._loaded_at > self.reload_seconds:
                    await self.reload()
        assert self._view is not None
        return self._view

    async def verification_key(self, kid: str | None) -> Any:
        """Public key set for verifying our own tokens; reload once on an unknown kid (rotation elsewhere)."""
        view = await self.view()
        if (
            kid and not any(k.get("kid") == kid for k in view.published) and time.monotonic() - self._loaded_at > 1.0
        ):  # random kids must not hammer the store
            async with self._lock:
                view = await self.reload()
        return view.verify_set
