"""Sign-in throttling rules without I/O: which counters an attempt is counted on, and the device
cookie (an HMAC under the server key binding a browser id to one user; OWASP device cookies)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingrade.config import load_settings
from fingrade.oauth import login_throttle
from fingrade.oauth.context import Core

pytestmark = [pytest.mark.login, pytest.mark.throttle]

NOW = 1_800_000_000


def core(key: bytes = b"k" * 32, now: int = NOW) -> Core:
    return Core(
        settings=load_settings(environ={}),
        store=None,
        onetime=None,
        keys=None,  # type: ignore[arg-type]
        server_key=key,
        passwords=None,
        clock=lambda: now,
    )  # type: ignore[arg-type]


def test_unknown_browsers_share_the_accounts_counter_known_ones_do_not() -> None:
    c = core()
    unknown = login_throttle.limits(c, "alice", "192.0.2.1", None)
    known = login_throttle.limits(c, "alice", "192.0.2.1", "browser-1")
    assert [lim.kind for lim in unknown] == ["login_addr", "login_acct_addr", "login_acct"]
    assert [lim.kind for lim in known] == ["login_addr", "login_device"]
    assert unknown[0] == known[0]  # the address counts every attempt
    assert [lim.free for lim in unknown] == [20, 5, 10]
    # No username or address in clear in the keys.
    assert not any("alice" in lim.key or "192.0.2.1" in lim.key for lim in unknown + known)


def test_device_cookie_is_bound_to_its_user_and_key_and_expires() -> None:
    cookie = login_throttle.remember_device(core(), "u_alice", None)
    device = login_throttle.known_device(core(), "u_alice", cookie)
    assert device is not None
    assert login_throttle.known_device(core(), "u_bob", cookie) is None
    assert login_throttle.known_device(core(key=b"x" * 32), "u_alice", cookie) is None
    later = NOW + login_throttle.DEVICE_TTL + 1
    assert login_throttle.known_device(core(now=later), "u_alice", cookie) is None
    tampered = cookie[:-1] + ("A" if cookie[-1] != "A" else "B")
    assert login_throttle.known_device(core(), "u_alice", tampered) is None


def test_a_browser_remembers_several_accounts_and_keeps_its_id() -> None:
    cookie = login_throttle.remember_device(core(), "u_alice", None)
    cookie = login_throttle.remember_device(core(), "u_bob", cookie)
    alice = login_throttle.known_device(core(), "u_alice", cookie)
    assert alice is not None and login_throttle.known_device(core(), "u_bob", cookie) is not None
    again = login_throttle.remember_device(core(now=NOW + 60), "u_alice", cookie)
    assert login_throttle.known_device(core(now=NOW + 60), "u_alice", again) == alice
    for i in range(10):
        again = login_throttle.remember_device(core(), f"u_{i}", again)
    assert len(again.split("~")) == login_throttle.MAX_DEVICES


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="latin-1"), max_size=700))
def test_any_cookie_value_is_either_a_known_device_or_nothing(raw: str) -> None:
    """A cookie is attacker input: any value yields None or a device id, never an exception."""
    assert login_throttle.known_device(core(), "u_alice", raw) is None
    assert login_throttle.known_device(core(), "u_alice", "²." + raw + ".x") is None
    login_throttle.remember_device(core(), "u_alice", raw)
