"""Access tokens verified once per key set (oauth/signing_keys.py `VerifiedTokens`): a resource
server presents the same token again and again, so its signature is checked once, while every rule
that can change is checked on every use (RFC 9068 §4: expiry, RFC 7009 revocation) and any change
of the signing keys makes every token be verified again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.memory_core import Clock, memory_core

from fingrade.oauth.models import Grant
from fingrade.oauth.token_formats import mint_access_token, verify_access_token
from fingrade.protocol import jwt
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.jws_signatures import VerifiedTokens


async def _core_with_token(tmp: Path):
    clock = Clock()
    core = memory_core(tmp, clock)
    await core.keys.ensure_keys()
    grant = Grant(id="g1", client_id="c1", user_id="u1", scope="accounts", auth_time=clock.now, created_at=clock.now)
    await core.store.create_grant(grant)
    token, _ = await mint_access_token(
        core, sub="u1", client_id="c1", scope="accounts", grant_id="g1", auth_time=clock.now, extra={}
    )
    return core, clock, token


def test_a_token_is_verified_once_while_the_keys_stay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body() -> None:
        core, _, token = await _core_with_token(tmp_path)
        calls = []
        original = jwt.verify

        def counting(*args, **kwargs):
            calls.append(1)
            return original(*args, **kwargs)

        monkeypatch.setattr(jwt, "verify", counting)
        for _ in range(5):
            assert (await verify_access_token(core, token))["sub"] == "u1"
        assert len(calls) == 1
        # Reloading the same keys changes nothing; a rotation (here or on another node) is a new key
        # set, so the token is verified again (by its now retired, still published key).
        await core.keys.reload()
        await verify_access_token(core, token)
        assert len(calls) == 1
        await core.keys.rotate()
        await verify_access_token(core, token)
        assert len(calls) == 2

    asyncio.run(body())


def test_expiry_and_revocation_are_checked_on_every_use(tmp_path: Path) -> None:
    async def body() -> None:
        core, clock, token = await _core_with_token(tmp_path)
        await verify_access_token(core, token)
        await core.store.revoke_grant("g1", clock.now)
        with pytest.raises(OAuthError) as revoked:
            await verify_access_token(core, token)
        assert revoked.value.error == "invalid_token"
        core2, clock2, token2 = await _core_with_token(tmp_path / "b")
        await verify_access_token(core2, token2)
        clock2.now += core2.settings.access_token_ttl + 1
        with pytest.raises(OAuthError) as expired:
            await verify_access_token(core2, token2)
        assert expired.value.error == "invalid_token"

    asyncio.run(body())


def test_a_token_verified_by_one_deployment_is_not_trusted_by_another(tmp_path: Path) -> None:
    """Another core (other keys) never takes this one's verification: the entry is bound to the key set."""

    async def body() -> None:
        core, _, token = await _core_with_token(tmp_path / "a")
        other, _, _ = await _core_with_token(tmp_path / "b")
        await verify_access_token(core, token)
        with pytest.raises(OAuthError) as refused:
            await verify_access_token(other, token)
        assert refused.value.error == "invalid_token"

    asyncio.run(body())


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=120), st.data())
def test_tampered_tokens_never_hit_the_cache(tmp_path_factory: pytest.TempPathFactory, position: int, data) -> None:
    """RFC 7515 §5.2: any change to the token's bytes is a different token, verified from scratch."""

    async def body() -> None:
        core, _, token = await _core_with_token(tmp_path_factory.mktemp("t"))
        await verify_access_token(core, token)
        i = position % len(token)
        replacement = data.draw(st.sampled_from("ABCabc012-_"))
        tampered = token[:i] + replacement + token[i + 1 :]
        if tampered == token:
            return
        with pytest.raises(OAuthError):
            await verify_access_token(core, tampered)

    asyncio.run(body())


def test_the_cache_is_bounded() -> None:
    cache = VerifiedTokens(size=3)
    keys = object()
    for i in range(10):
        cache.add(f"t{i}", "k", keys, {"i": i})
    assert [cache.get(f"t{i}") is not None for i in range(10)] == [False] * 7 + [True] * 3
