"""Human passwords: argon2id (RFC 9106), verified off the event loop, with a dummy hash so an
unknown username costs the same time as a wrong password."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._dummy = self._hasher.hash("fingrade dummy password for timing equalisation")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, stored: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, stored, password)

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


def check_password_policy(password: str) -> None:
    # NIST SP 800-63B §3.1.1.2: length matters, composition rules do not.
    if len(password) < 12:
        raise ValueError("passwords must be at least 12 characters")
    if len(password) > 256:
        raise ValueError("passwords may be at most 256 characters")
