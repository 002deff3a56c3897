"""A request's single-use values are claimed together (protocol/single_use.py): one step of the
replay cache for all of them, each refused with its own error, in the order they were checked."""

from __future__ import annotations

import asyncio

import pytest

from fingrade.protocol.single_use import SingleUseClaims
from fingrade.store.memory import MemoryOneTimeStore


class _Counting(MemoryOneTimeStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def add(self, kind: str, key: str, ttl: int) -> bool:
        self.calls.append("add")
        return await super().add(kind, key, ttl)

    async def add_all(self, entries):  # type: ignore[no-untyped-def]
        self.calls.append(f"add_all {len(entries)}")
        return [await MemoryOneTimeStore.add(self, kind, key, ttl) for kind, key, ttl in entries]


def _claims(*entries: tuple[str, str, str]) -> SingleUseClaims:
    claims = SingleUseClaims()
    for kind, key, error in entries:
        claims.expect(kind, key, 60, LookupError(error))
    return claims


def test_all_are_claimed_in_one_step() -> None:
    async def main() -> None:
        store = _Counting()
        await _claims(("assertion_jti", "a", "assertion"), ("dpop_jti", "p", "proof")).settle(store)
        assert store.calls == ["add_all 2"]
        await _claims(("dpop_jti", "q", "proof")).settle(store)
        assert store.calls == ["add_all 2", "add"]
        await SingleUseClaims().settle(store)  # nothing presented, nothing written
        assert store.calls == ["add_all 2", "add"]

    asyncio.run(main())


@pytest.mark.parametrize(
    ("seen", "refusal"),
    [({"a"}, "assertion"), ({"p"}, "proof"), ({"a", "p"}, "assertion")],
)
def test_the_first_value_seen_before_gives_its_refusal(seen: set[str], refusal: str) -> None:
    async def main() -> None:
        store = _Counting()
        for key, kind in (("a", "assertion_jti"), ("p", "dpop_jti")):
            if key in seen:
                assert await store.add(kind, key, 60)
        with pytest.raises(LookupError, match=refusal):
            await _claims(("assertion_jti", "a", "assertion"), ("dpop_jti", "p", "proof")).settle(store)
        # Whatever was new is spent now too.
        assert await store.add("assertion_jti", "a", 60) is False
        assert await store.add("dpop_jti", "p", 60) is False

    asyncio.run(main())


def test_claims_are_settled_once() -> None:
    async def main() -> None:
        store = _Counting()
        claims = _claims(("dpop_jti", "p", "proof"))
        await claims.settle(store)
        await claims.settle(store)  # nothing left to claim: not a replay of itself
        assert store.calls == ["add"]

    asyncio.run(main())
