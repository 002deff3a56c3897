"""The OpenID Connect `claims` request parameter (OIDC Core §5.5), for the two claims this server acts
on: `openbanking_intent_id`, by which a UK Open Banking client names the consent resource the
customer is asked to authorise (oauth/consent_resources.py), and an essential `acr` of the ID token
(§5.5.1.1), which the authentication must meet (oauth/sca_policy.py).

Every other requested claim is ignored, as §5.5 allows ("the OP MAY ... not return" a claim, even an
essential one), and the parameter's structure is still checked, so a malformed one is refused rather
than half-read.
"""

from __future__ import annotations

from dataclasses import dataclass

from fingrade.finance.consent_ids import CONSENT_ID
from fingrade.protocol import strict_json
from fingrade.protocol.errors import invalid_request

INTENT_CLAIM = "openbanking_intent_id"
_MEMBERS = ("userinfo", "id_token")  # §5.5; other top-level members are ignored (extensions)


@dataclass(frozen=True)
class ClaimsRequest:
    intent_id: str | None = None  # the consent the request names
    essential_acr: list[str] | None = None  # values of an essential ID token acr, any one of which must be met


def intent_id(raw: str) -> str | None:
    """The consent id the `claims` parameter names, or None."""
    return parse(raw).intent_id


def parse(raw: str) -> ClaimsRequest:
    """What this server acts on in a `claims` parameter. Raises invalid_request when the parameter
    is not a §5.5 claims request, names two different consents, or gives an essential acr values
    that are not strings."""
    try:
        value = strict_json.loads(raw)  # repeated members refused: parsers disagree on which value wins
    except strict_json.JsonError as exc:
        raise invalid_request(f"claims: {exc}") from None
    if not isinstance(value, dict):
        raise invalid_request("claims must be a JSON object (OIDC Core 5.5)")
    found: set[str] = set()
    acr: list[str] | None = None
    for member in _MEMBERS:
        requests = value.get(member)
        if requests is None:
            continue
        if not isinstance(requests, dict):
            raise invalid_request(f"claims.{member} must be a JSON object")
        for name, spec in requests.items():
            if spec is None:
                continue  # §5.5.1: null asks for the claim in the default manner
            if not isinstance(spec, dict):
                raise invalid_request(f"claims.{member} members must be null or JSON objects")
            if "essential" in spec and not isinstance(spec["essential"], bool):
                raise invalid_request("essential must be true or false")
            if "values" in spec and not isinstance(spec["values"], list):
                raise invalid_request("values must be a JSON array")
            if name == INTENT_CLAIM:
                if (
                    "values" in spec
                    or not isinstance(spec.get("value"), str)
                    or not CONSENT_ID.fullmatch(spec["value"])
                ):
                    raise invalid_request(f"{INTENT_CLAIM} needs one value: the consent id")
                found.add(spec["value"])
            # §5.5.1.1: with a value or values, the acr issued must be one of them; without, any acr
            # will do (every ID token carries one).
            essential = name == "acr" and member == "id_token" and spec.get("essential") is True
            if essential and ("values" in spec or "value" in spec):
                values = spec["values"] if "values" in spec else [spec["value"]]
                if not values or not all(isinstance(v, str) and v for v in values):
                    raise invalid_request("the values of an essential acr must be non-empty strings")
                acr = [str(v) for v in values]
    if len(found) > 1:
        raise invalid_request(f"{INTENT_CLAIM} names two different consents")
    return ClaimsRequest(found.pop() if found else None, acr)
