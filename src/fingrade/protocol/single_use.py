"""The single-use values a request presents - a client assertion's `jti` (RFC 7523 §3 item 7), a DPoP
proof's `jti` (RFC 9449 §11.1) - claimed together in one step of the replay cache.

Each check verifies its token and then, instead of writing to the replay cache on its own, names
what must be new (`expect`); the endpoint claims them all in one statement (`settle`) before it acts
on the request. A FAPI 2.0 token request or PAR presents both, so this halves their replay-cache
writes. `settle` runs whatever the request's fate once the values are verified (oauth/client_auth.py
`authenticate_with_proof` calls it in a `finally`): a value seen once stays used even when its request failed for another reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class ReplayCache(Protocol):
    """The shared one-time store, as far as replay caches go."""

    async def add(self, kind: str, key: str, ttl: int) -> bool:
        """True if `key` was not there yet (and is now, for `ttl` seconds)."""
        ...

    async def add_all(self, entries: Sequence[tuple[str, str, int]]) -> list[bool]:
        """`add` of each entry, in one atomic step."""
        ...


@dataclass(frozen=True, slots=True)
class Expected:
    kind: str
    key: str
    ttl: int
    refusal: Exception  # what the request gets when the value was seen before


class SingleUseClaims:
    """The values one request must present for the first time, in the order they were checked."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: list[Expected] = []

    def expect(self, kind: str, key: str, ttl: int, refusal: Exception) -> None:
        self._pending.append(Expected(kind, key, ttl, refusal))

    async def settle(self, cache: ReplayCache) -> None:
        """Claims every expected value; raises the refusal of the first one seen before."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        if len(pending) == 1:
            fresh = [await cache.add(pending[0].kind, pending[0].key, pending[0].ttl)]
        else:
            fresh = await cache.add_all([(e.kind, e.key, e.ttl) for e in pending])
        for expected, new in zip(pending, fresh, strict=True):
            if not new:
                raise expected.refusal


async def claim(
    cache: ReplayCache, pending: SingleUseClaims | None, kind: str, key: str, ttl: int, refusal: Exception
) -> None:
    """A check's single-use value: named in the request's `pending` claims when the caller gathers
    them, else claimed here and now (raising `refusal` when it was seen before)."""
    if pending is not None:
        pending.expect(kind, key, ttl, refusal)
    elif not await cache.add(kind, key, ttl):
        raise refusal
