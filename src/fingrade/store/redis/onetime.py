"""One-time store on Redis: GETDEL for take, SET NX for replay caches, a Lua script for consume."""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as redis

# consume: the first caller flips `u` from 0 to 1 and is told so; everyone sees the value until expiry.
_CONSUME = """
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return nil end
local n = redis.call('HINCRBY', KEYS[1], 'u', 1)
return {v, n}
"""

# incr with the window starting at the first failure (the TTL is not extended by later calls).
_INCR = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisOneTimeStore:
    def __init__(self, url: str, prefix: str = "fingrade:") -> None:
        self.redis = redis.Redis.from_url(url, decode_responses=False)
        self.prefix = prefix
        self._consume = self.redis.register_script(_CONSUME)
        self._incr = self.redis.register_script(_INCR)

    def _k(self, kind: str, key: str) -> str:
        return f"{self.prefix}{kind}:{key}"

    async def ping(self) -> None:
        await self.redis.ping()

    async def put(self, kind: str, key: str, value: dict[str, Any], ttl: int) -> None:
        k = self._k(kind, key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(k)
            pipe.hset(k, mapping={"v": orjson.dumps(value), "u": 0})
            pipe.expire(k, ttl)
            await pipe.execute()

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(self._k(kind, key), "v")
        return orjson.loads(raw) if raw else None

    async def take(self, kind: str, key: str) -> dict[str, Any] | None:
        k = self._k(kind, key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(k, "v")
            pipe.delete(k)
            raw, deleted = await pipe.execute()
        # MULTI/EXEC makes HGET+DEL one step: only the caller whose DEL removed the key wins.
        return orjson.loads(raw) if raw and deleted else None

    async def consume(self, kind: str, key: str) -> tuple[dict[str, Any], bool] | None:
        got = await self._consume(keys=[self._k(kind, key)])
        if not got:
            return None
        raw, n = got
        return orjson.loads(raw), int(n) == 1

    async def add(self, kind: str, key: str, ttl: int) -> bool:
        return bool(await self.redis.set(self._k(kind, key), b"1", ex=max(ttl, 1), nx=True))

    async def incr(self, kind: str, key: str, ttl: int) -> int:
        return int(await self._incr(keys=[self._k(kind, key)], args=[ttl]))

    async def count(self, kind: str, key: str) -> int:
        raw = await self.redis.get(self._k(kind, key))
        return int(raw) if raw else 0

    async def delete(self, kind: str, key: str) -> None:
        await self.redis.delete(self._k(kind, key))

    async def purge_expired(self) -> int:
        return 0  # Redis expires keys itself

    async def close(self) -> None:
        await self.redis.aclose()
