"""Errors as data: one type carrying the RFC error code, a client-safe description and debug text.

Where an error goes is decided by the endpoint: JSON for token-style endpoints, a redirect to a
verified redirect URI (authorize.RedirectError), an error page (authorize.PageError), or a
WWW-Authenticate challenge at protected resources (resource.resource_error)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E (no '"' and no '\').
_UNSAFE_DESCRIPTION = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")


def safe_description(text: str) -> str:
    return _UNSAFE_DESCRIPTION.sub(" ", text)[:300]


@dataclass
class OAuthError(Exception):
    """An OAuth/OIDC error. `description` is shown to the client; `debug` only to operators."""

    error: str
    description: str = ""
    status: int = 400
    debug: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # Auth-params a resource's WWW-Authenticate challenge carries besides error and description
    # (RFC 9470 §3: acr_values, max_age of a step-up). Values are ours: no quotes or backslashes.
    challenge_params: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.description = safe_description(self.description)
        super().__init__(self.error)

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out

    def __str__(self) -> str:  # for logs: never includes request secrets, the caller's debug text is curated
        return f"{self.error}: {self.description}" + (f" [{self.debug}]" if self.debug else "")


# Named constructors keep call sites short and the status codes in one place.
def invalid_request(desc: str, debug: str = "") -> OAuthError:
    return OAuthError("invalid_request", desc, 400, debug)


def invalid_client(desc: str = "client authentication failed", debug: str = "") -> OAuthError:
    # RFC 6749 §5.2: 401 and a WWW-Authenticate challenge for failed client authentication.
    return OAuthError("invalid_client", desc, 401, debug, {"WWW-Authenticate": 'Basic realm="fingrade"'})


def invalid_grant(desc: str, debug: str = "") -> OAuthError:
    return OAuthError("invalid_grant", desc, 400, debug)


def unauthorized_client(desc: str, debug: str = "") -> OAuthError:
    return OAuthError("unauthorized_client", desc, 400, debug)


def unsupported_grant_type(desc: str = "grant_type is not supported") -> OAuthError:
    return OAuthError("unsupported_grant_type", desc, 400)


def invalid_scope(desc: str, debug: str = "") -> OAuthError:
    return OAuthError("invalid_scope", desc, 400, debug)


def invalid_token(desc: str = "the access token is invalid", debug: str = "") -> OAuthError:
    return OAuthError("invalid_token", desc, 401, debug)


def insufficient_scope(desc: str) -> OAuthError:
    return OAuthError("insufficient_scope", desc, 403)


def insufficient_user_authentication(desc: str, acr_values: str) -> OAuthError:
    # RFC 9470 §3: the resource needs a stronger authentication; the challenge says which.
    return OAuthError("insufficient_user_authentication", desc, 401, challenge_params={"acr_values": acr_values})


def method_not_allowed(allowed: str) -> OAuthError:
    return OAuthError("invalid_request", "method not allowed", 405, headers={"Allow": allowed})
