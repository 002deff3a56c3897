"""Which authentication an authorization needs (docs/sca.md): the deployment's `sca` setting, the
client's profile, what the request asks for (`acr_values`, an essential `acr` claim: OIDC Core
§3.1.2.1, §5.5.1.1) and whether it approves a payment (PSD2 RTS Art. 4, 5: every payment takes a
fresh strong authentication bound to its amount and payee).

sca = required: every sign-in takes two factors. sca = optional: customers who enrolled a second
factor use it, and requests that need SCA (a `fapi2` client, `acr_values` or an essential `acr`
asking for it, a payment) take it. sca = off: the password alone; a request that insists on SCA
(an essential acr) is refused with `unmet_authentication_requirements`.
"""

from __future__ import annotations

from typing import Any

from fingrade.config import Settings
from fingrade.finance.dynamic_linking import payment_details
from fingrade.oauth import authn_level
from fingrade.oauth.authn_level import ACR_PASSWORD, ACR_SCA
from fingrade.oauth.models import Client, Grant
from fingrade.oauth.profiles import get_profile
from fingrade.protocol.errors import OAuthError


def supported(settings: Settings) -> list[str]:
    """acr_values_supported (OIDC Discovery §3)."""
    return [ACR_PASSWORD] if settings.sca == "off" else [ACR_PASSWORD, ACR_SCA]


def requested_acr(settings: Settings, client: Client, acr_values: str | None, essential: list[str] | None) -> str:
    """The acr a request needs, from the deployment, the client and the request.

    `acr_values` are voluntary (OIDC Core §3.1.2.1): the first one this server knows is used, and an
    unknown or unsupported one is ignored. An essential `acr` claim (§5.5.1.1) must be met: when none
    of its values can be, the request is refused (`unmet_authentication_requirements`)."""
    offered = supported(settings)
    wanted = ACR_SCA if settings.sca == "required" or get_profile(client.profile).sca_by_default else ACR_PASSWORD
    if settings.sca == "off":
        wanted = ACR_PASSWORD
    if essential is not None:
        usable = [v for v in essential if v in offered]
        if not usable:
            raise OAuthError(
                "unmet_authentication_requirements",
                "the essential acr cannot be met; supported: " + " ".join(offered),
            )
        return _stronger(wanted, min(usable, key=authn_level.ACR_VALUES.index))
    for value in (acr_values or "").split():
        if value in offered:
            return _stronger(wanted, value)
    return wanted


def _stronger(a: str, b: str) -> str:
    return max(a, b, key=authn_level.ACR_VALUES.index)


def payment_needs_fresh_sca(settings: Settings, details: list[dict[str, Any]] | None) -> bool:
    """Every payment is approved with a fresh strong authentication bound to it, unless SCA is off."""
    return settings.sca != "off" and bool(payment_details(details))


def sign_in_needs_second_factor(settings: Settings, acr: str, has_factors: bool) -> bool:
    """After the password: whether this sign-in also takes a second factor now."""
    if settings.sca == "off":
        return False
    return acr == ACR_SCA or (settings.sca == "optional" and has_factors)


def reauthentication_due(settings: Settings, grant: Grant, now: int) -> bool:
    """A customer's grant outlives its authentication by at most `sca_reauth_days` (PSD2 RTS Art. 10
    as amended: 180 days at most; 90 by default here): then the refresh token stops working and the
    app sends the customer through the bank again."""
    if settings.sca == "off" or grant.user_id is None or grant.auth_time is None:
        return False
    return now - grant.auth_time > settings.sca_reauth_days * 86400
