"""When a grant gets a refresh token: only when the customer approved staying connected.

A refresh token lets the app keep access while the customer is away, long after the access token
(minutes) has expired. The customer must have seen and approved that, so the same rule decides what
the token endpoint issues and whether the consent page says "Stay connected":

- OIDC Core §11: `offline_access` asks for a refresh token; the consent page shows it, and a
  remembered consent covers it only if that consent included the scope (authorize.consent_needed).
- Open banking: an approved `account_information` authorization detail is itself a standing consent:
  the customer approves access to their accounts until its `expires_at`, which the app uses while
  they are away (as UK Open Banking account-access consents and Berlin Group recurring consents do).
  It counts as staying connected, and the consent page says so. A `payment_initiation` is approved
  once and needs no refresh token; with `offline_access` asked for as well it gets one.

And the client must be registered for the refresh_token grant (RFC 6749 §6). The rule is the same
for every profile; public clients' refresh tokens rotate (profiles.rotate_refresh_tokens).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fingrade.oauth.models import Client
from fingrade.oauth.profiles import get_profile

OFFLINE_ACCESS = "offline_access"
_STANDING_CONSENTS = frozenset({"account_information"})


def stays_connected(client: Client, scope: Iterable[str], details: list[dict[str, Any]] | None) -> bool:
    """Will this grant get a refresh token?"""
    if "refresh_token" not in client.grant_types or "refresh_token" not in get_profile(client.profile).grant_types:
        return False
    return OFFLINE_ACCESS in scope or any(d.get("type") in _STANDING_CONSENTS for d in details or ())


def approved_scopes(client: Client, scope: list[str], details: list[dict[str, Any]] | None) -> list[str]:
    """The requested scopes the customer is asked to approve, and so the ones a remembered consent must
    cover: `offline_access` only when a refresh token will follow. A consent given while it was not
    shown (the client had no refresh_token grant) then never covers a refresh token later."""
    stays = stays_connected(client, scope, details)
    return [s for s in scope if s != OFFLINE_ACCESS or stays]


def consent_scopes(client: Client, scope: list[str], details: list[dict[str, Any]] | None) -> list[str]:
    """The scopes as the consent page lists them: `offline_access` ("Stay connected") exactly when a
    refresh token will be issued, whether or not the request named it."""
    shown = [s for s in scope if s != OFFLINE_ACCESS]
    return shown + [OFFLINE_ACCESS] if stays_connected(client, scope, details) else shown
