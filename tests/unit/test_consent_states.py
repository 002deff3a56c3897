"""Grant states for the consent lifecycle (issue 4 item 5): active, expired, revoked."""

from __future__ import annotations

from types import SimpleNamespace

from fingrade.oauth.consents import grant_state
from fingrade.oauth.models import Grant

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
CORE = SimpleNamespace(settings=SimpleNamespace(access_token_ttl=300))


def grant(**over: object) -> Grant:
    return Grant(**{"id": "g", "client_id": "c", "user_id": "u", "scope": "openid accounts", "auth_time": NOW - 10,
                    "created_at": NOW - 10, **over})  # type: ignore[arg-type]


def test_fresh_grant_is_active() -> None:
    assert grant_state(CORE, grant(), None, NOW) == "active"  # type: ignore[arg-type]


def test_revoked_grant_is_revoked_whatever_else() -> None:
    assert grant_state(CORE, grant(revoked_at=NOW - 1), NOW + 3600, NOW) == "revoked"  # type: ignore[arg-type]


def test_rfc9396_grant_past_expires_at_is_expired() -> None:
    """An account access past its `expires_at` is over even though a refresh token still lives."""
    details = [{"type": "account_information", "actions": ["balances"], "expires_at": "2027-01-15T07:59:59Z"}]
    assert grant_state(CORE, grant(authorization_details=details), NOW + 3600, NOW) == "expired"  # type: ignore[arg-type]
    details[0]["expires_at"] = "2027-01-15T08:00:01Z"
    assert grant_state(CORE, grant(authorization_details=details), NOW + 3600, NOW) == "active"  # type: ignore[arg-type]


def test_grant_without_a_usable_token_is_expired() -> None:
    """No refresh token left and the last access token's lifetime is over: nothing can use it."""
    old = grant(created_at=NOW - 301)
    assert grant_state(CORE, old, None, NOW) == "expired"  # type: ignore[arg-type]
    assert grant_state(CORE, old, NOW - 1, NOW) == "expired"  # type: ignore[arg-type]
    assert grant_state(CORE, old, NOW + 60, NOW) == "active"  # type: ignore[arg-type]
