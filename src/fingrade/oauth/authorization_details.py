"""Rich Authorization Requests (RFC 9396): the `authorization_details` parameter.

Pure functions: parse and validate a request's `authorization_details`, normalise it, compare a
token request's narrowed details with a grant (§6.1), and drop what has expired. Every
authorization details type this server understands is registered in TYPES below (one place);
`SUPPORTED_TYPES` is what the metadata advertises (§10.1). The types themselves, their members and
their rules, are the open-banking ones of fingrade.finance.open_banking; a refusal there
(InvalidDetail) is answered here as `invalid_authorization_details` (§5), naming the entry. The
consent page puts them in words (web/consent_words.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from fingrade.finance import open_banking
from fingrade.finance.errors import InvalidDetail
from fingrade.finance.open_banking import Context
from fingrade.protocol import rfc3339, strict_json
from fingrade.protocol.errors import OAuthError

if TYPE_CHECKING:
    from fingrade.oauth.context import Core

MAX_PARAM_LENGTH = 4096  # characters of the JSON text (form parameters over 8192 are invalid_request, http.py)
MAX_ENTRIES = 5

Details = list[dict[str, Any]]


def error(desc: str) -> OAuthError:
    """RFC 9396 §5: unknown types, objects not conforming to their type, or types the client may not use."""
    return OAuthError("invalid_authorization_details", desc, 400)


def context_of(core: Core, *, defaults: bool = True) -> Context:
    """The validation context of this server: now, the resource its tokens are for, and the currencies
    it approves payments in."""
    return Context(
        now=core.clock(),
        locations=frozenset({core.settings.audience}),
        currencies=frozenset(core.settings.payment_currencies),
        defaults=defaults,
    )


# -- the types ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeRule:
    validate: Callable[[dict[str, Any], Context], dict[str, Any]]  # normalised; InvalidDetail if not conforming
    within: Callable[[dict[str, Any], dict[str, Any]], bool]  # §6.1: a requested object within a granted one


TYPES: dict[str, TypeRule] = {
    open_banking.ACCOUNT_INFORMATION: TypeRule(
        open_banking.account_information, open_banking.account_information_within
    ),
    open_banking.PAYMENT_INITIATION: TypeRule(open_banking.payment_initiation, open_banking.payment_initiation_within),
}
SUPPORTED_TYPES: tuple[str, ...] = tuple(TYPES)  # advertised as authorization_details_types_supported (§10.1)


# -- the parameter --------------------------------------------------------------------------------------


def _load(raw: str) -> Any:
    if len(raw) > MAX_PARAM_LENGTH:
        raise error(f"authorization_details is longer than {MAX_PARAM_LENGTH} characters")
    try:
        return strict_json.loads(raw)  # repeated members refused: two parsers could pick different ones
    except strict_json.JsonError as exc:
        raise error(f"authorization_details: {exc}") from None


def parse(raw: str, allowed_types: frozenset[str], ctx: Context) -> Details:
    """Validate the `authorization_details` request parameter (RFC 9396 §2) and return it
    normalised. `allowed_types`: the types this client registered (§10.2). Raises
    invalid_authorization_details (§5)."""
    value = _load(raw)
    if not isinstance(value, list):
        raise error("authorization_details must be a JSON array")  # §2
    if not value:
        raise error("authorization_details must not be empty")
    if len(value) > MAX_ENTRIES:
        raise error(f"authorization_details has more than {MAX_ENTRIES} entries")
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise error(f"authorization_details[{i}] must be a JSON object")
        kind = entry.get("type")
        if not isinstance(kind, str):
            raise error(f"authorization_details[{i}] has no type")  # §2: type is REQUIRED
        rule = TYPES.get(kind)
        if rule is None:
            raise error(f"authorization_details[{i}] has an unknown type")
        if kind not in allowed_types:
            raise error(f"this client may not use the authorization details type {kind}")
        try:
            out.append(rule.validate(entry, ctx))
        except InvalidDetail as exc:
            raise error(f"authorization_details[{i}]: {exc.message}") from None
    return out


def narrow(raw: str, granted: Details, allowed_types: frozenset[str], ctx: Context) -> Details:
    """RFC 9396 §6 and §6.1: a token request may ask for part of what was granted, never more.
    Every requested object must be within one granted object of its type; members it leaves out
    are taken from that granted object."""
    requested = parse(raw, allowed_types, replace(ctx, defaults=False))
    out = []
    for req in requested:
        match = next(
            (
                merged
                for g in granted
                if g["type"] == req["type"]
                for merged in [{**g, **req}]
                if TYPES[req["type"]].within(merged, g)
            ),
            None,
        )
        if match is None:
            raise error("the requested authorization_details exceed what was authorized")
        out.append(match)
    return out


def unexpired(details: Details, now: int) -> Details:
    """The details still in force: an account access past its `expires_at` is no longer granted,
    so later tokens of the grant do not carry it."""
    cutoff = rfc3339.utc(now)
    return [d for d in details if "expires_at" not in d or d["expires_at"] > cutoff]
