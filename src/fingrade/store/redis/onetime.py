"""One-time store on Redis: GETDEL for take, SET NX for replay caches, a Lua script for consume.

Connections: a pooled connection that Redis closed (a restart, a failover) is found when it is taken
from the pool and replaced before a command is sent on it, so the first requests after a restart
are served. Commands themselves are never sent twice: one that may already have run (a replay-cache
SET NX, the consume script) must not run again, so a connection that fails mid-command is a 503 the
client retries. redis-py skips that check on checkout while RESP3 maintenance notifications are on
(they are for Redis Enterprise / cluster maintenance, which this store does not use), so they are off.

Durability: the replay caches (DPoP proof, client assertion and request object jti) are only as
durable as Redis. Without an append-only file a Redis restart forgets them, and an artifact used
before it can be used once more while still valid; the README's Operations section says what to
configure, and `check_persistence` warns at start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as redis
from redis.exceptions import ResponseError
from redis.maint_notifications import MaintNotificationsConfig

from fingrade.oauth.ports import AttemptLimit

log = logging.getLogger("fingrade.redis")

CONNECT_TIMEOUT = 2.0  # seconds: an unreachable Redis is a quick 503, not a request hanging for minutes
COMMAND_TIMEOUT = 5.0

# consume: the first caller flips `u` from 0 to 1 and is told so; everyone sees the value until expiry.
_CONSUME = """
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return nil end
local n = redis.call('HINCRBY', KEYS[1], 'u', 1)
return {v, n}
"""

# exchange: the first key is used up and the value stored under the second, or nothing happens.
_EXCHANGE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'v', ARGV[1], 'u', 0)
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""

# add_all: SET NX EX of every key, in one script (atomic); 1 for each key that was new, else 0.
_ADD_ALL = """
local added = {}
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[i]) then added[i] = 1 else added[i] = 0 end
end
return added
"""

# incr with the window starting at the first failure (the TTL is not extended by later calls).
_INCR = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


# reserve: attempt counters as hashes {n: count, nb: no attempt before}; all or none in one script.
# ARGV: now, then per key free, backoff, max_wait, window. The wait is AttemptLimit.wait_after.
_RESERVE = """
local now = tonumber(ARGV[1])
local counts, wait = {}, 0
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'n', 'nb')
  counts[i] = tonumber(v[1]) or 0
  local nb = tonumber(v[2]) or 0
  if nb - now > wait then wait = nb - now end
end
if wait > 0 then return wait end
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 4
  local free, backoff = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local max_wait, window = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local n = counts[i] + 1
  local w = 0
  if n >= free then w = math.floor(math.min(backoff * 2 ^ math.min(n - free, 40), max_wait)) end
  redis.call('HSET', KEYS[i], 'n', n, 'nb', now + w)
  redis.call('EXPIRE', KEYS[i], math.max(window, w))
end
return 0
"""

# release: one attempt fewer; the wait is lifted when the count is back below the free ones.
_RELEASE = """
for i = 1, #KEYS do
  local n = tonumber(redis.call('HGET', KEYS[i], 'n'))
  if n then
    n = math.max(n - 1, 0)
    if n < tonumber(ARGV[i]) then redis.call('HSET', KEYS[i], 'n', n, 'nb', 0)
    else redis.call('HSET', KEYS[i], 'n', n) end
  end
end
return 0
"""


class RedisOneTimeStore:
    def __init__(self, url: str, prefix: str = "fingrade:") -> None:
        self.redis = redis.Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        self.prefix = prefix
        self._consume = self.redis.register_script(_CONSUME)
        self._exchange = self.redis.register_script(_EXCHANGE)
        self._incr = self.redis.register_script(_INCR)
        self._add_all = self.redis.register_script(_ADD_ALL)
        self._reserve = self.redis.register_script(_RESERVE)
        self._release = self.redis.register_script(_RELEASE)

    def _k(self, kind: str, key: str) -> str:
        return f"{self.prefix}{kind}:{key}"

    async def ping(self) -> None:
        await self.redis.ping()

    async def check_persistence(self) -> None:
        """Warn (once, at start) when Redis keeps no append-only file: a restart would forget the
        replay caches. RDB snapshots alone lose everything since the last one."""
        try:
            # Keys are bytes (decode_responses=False), whatever redis-py's annotation says.
            config: dict[Any, Any] = await self.redis.config_get("appendonly")
        except ResponseError:  # CONFIG is often disabled on managed Redis
            log.info(
                "cannot read the Redis persistence settings (CONFIG refused): the replay caches need "
                "appendonly yes (README, Operations)"
            )
            return
        if config.get(b"appendonly", config.get("appendonly")) in (b"no", "no"):
            log.warning(
                "Redis runs without an append-only file (appendonly no): after a Redis restart a DPoP proof, "
                "client assertion or request object used before it is accepted once more while still valid "
                "(replay caches are lost); configure appendonly yes (README, Operations)"
            )

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

    async def exchange(self, kind: str, key: str, new_kind: str, new_key: str, value: dict[str, Any], ttl: int) -> bool:
        keys = [self._k(kind, key), self._k(new_kind, new_key)]
        return bool(await self._exchange(keys=keys, args=[orjson.dumps(value), max(ttl, 1)]))

    async def consume(self, kind: str, key: str) -> tuple[dict[str, Any], bool] | None:
        got = await self._consume(keys=[self._k(kind, key)])
        if not got:
            return None
        raw, n = got
        return orjson.loads(raw), int(n) == 1

    async def add(self, kind: str, key: str, ttl: int) -> bool:
        return bool(await self.redis.set(self._k(kind, key), b"1", ex=max(ttl, 1), nx=True))

    async def add_all(self, entries: Sequence[tuple[str, str, int]]) -> list[bool]:
        if not entries:
            return []
        keys = [self._k(kind, key) for kind, key, _ttl in entries]
        added = await self._add_all(keys=keys, args=[max(ttl, 1) for _kind, _key, ttl in entries])
        return [bool(a) for a in added]

    async def incr(self, kind: str, key: str, ttl: int) -> int:
        return int(await self._incr(keys=[self._k(kind, key)], args=[ttl]))

    async def count(self, kind: str, key: str) -> int:
        raw = await self.redis.get(self._k(kind, key))
        return int(raw) if raw else 0

    async def reserve(self, limits: Sequence[AttemptLimit], now: int) -> int:
        args: list[int] = [now]
        for lim in limits:
            args += [lim.free, lim.backoff, lim.max_wait, lim.window]
        return int(await self._reserve(keys=[self._k(lim.kind, lim.key) for lim in limits], args=args))

    async def release(self, limits: Sequence[AttemptLimit], now: int) -> None:
        await self._release(keys=[self._k(lim.kind, lim.key) for lim in limits], args=[lim.free for lim in limits])

    async def forget(self, kind: str, prefix: str) -> int:
        if not prefix:
            raise ValueError("forget needs a key prefix")
        # SCAN's pattern is a glob: escape it so the prefix is matched literally.
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._k(kind, prefix)) + "*"
        removed = 0
        async for found in self.redis.scan_iter(match=pattern, count=1000):
            removed += await self.redis.delete(found)
        return removed

    async def delete(self, kind: str, key: str) -> None:
        await self.redis.delete(self._k(kind, key))

    async def purge_expired(self) -> int:
        return 0  # Redis expires keys itself

    async def close(self) -> None:
        await self.redis.aclose()
