"""Grant states for the consent lifecycle: active, expired, revoked."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fingrade.oauth import consent_resources
from fingrade.oauth.consent_lifecycle import grant_state
from fingrade.oauth.models import ConsentResource, Grant

pytestmark = pytest.mark.consent

NOW = 1_800_000_000  # 2027-01-15T08:00:00Z
CORE = SimpleNamespace(settings=SimpleNamespace(access_token_ttl=300))


def grant(**over: object) -> Grant:
    return Grant(
        **{
            "id": "g",
            "client_id": "c",
            "user_id": "u",
            "scope": "openid accounts",
            "auth_time": NOW - 10,
            "created_at": NOW - 10,
            **over,
        }
    )  # type: ignore[arg-type]


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


# -- consent resources (UK Open Banking account-access-consents; oauth/consent_resources.py) ----------


def _lodged(status: str, created_at: int = 1000) -> ConsentResource:
    return ConsentResource(
        id="aac-1",
        client_id="tpp",
        status=status,
        authorization_details=[],
        data={},
        created_at=created_at,
        status_updated_at=created_at + 5,
    )


@pytest.mark.parametrize(
    "stored, revoked_at, now, expected",
    [
        ("AwaitingAuthorisation", None, 1000 + 3599, ("AwaitingAuthorisation", 1005)),
        ("AwaitingAuthorisation", None, 1000 + 3600, ("Rejected", 1000 + 3600)),  # not authorised in time
        ("Authorised", None, 10**9, ("Authorised", 1005)),  # its validity is the details' expires_at
        ("Authorised", 7000, 10**9, ("Revoked", 7000)),  # the grant was revoked: dashboard, bank, RFC 7009
        ("Rejected", None, 2000, ("Rejected", 1005)),
        ("Revoked", None, 2000, ("Revoked", 1005)),
    ],
)
def test_consent_resource_status_is_derived_from_the_grant_and_the_clock(
    stored: str, revoked_at: int | None, now: int, expected: tuple[str, int]
) -> None:
    assert consent_resources.status(_lodged(stored), revoked_at, now, ttl=3600) == expected
