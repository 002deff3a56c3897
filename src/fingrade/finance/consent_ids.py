"""The consent-id grammar and the consent statuses (UK Open Banking account-access-consents).

Ids: what the authorization server issues as the id of a consent resource
(oauth/consent_resources.py), what a client may name in the OIDC `claims` parameter's
`openbanking_intent_id` (oauth/claims_request.py), and what the bank's UK account-access-consents
accept in a path (bank/uk_consents.py). Anything else is no consent id: refused or not found."""

from __future__ import annotations

import re
from enum import StrEnum

CONSENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ConsentStatus(StrEnum):
    """A lodged consent's status, as stored and as the resource server is told (UK Open Banking
    Account and Transaction API, account-access-consents Status)."""

    AWAITING_AUTHORISATION = "AwaitingAuthorisation"
    AUTHORISED = "Authorised"
    REJECTED = "Rejected"
    REVOKED = "Revoked"
