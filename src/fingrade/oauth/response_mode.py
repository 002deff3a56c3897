"""Authorization responses and their encoding: the one place that decides how a response (success
or error) travels back to the client's redirect URI.

- `query` (RFC 6749 §4.1.2): parameters in the query, with `iss` (RFC 9207 §2).
- JARM (JWT Secured Authorization Response Mode, §2): all response parameters, `iss` included, inside
  one JWT signed with the server's active key (the ID token key), with `aud` = client_id and a short
  `exp` (§2.1). `jwt` means `query.jwt` for response_type=code (§2.3.4). `query.jwt` (§2.3.1) puts
  the JWT in the `response` query parameter; `form_post.jwt` (§2.3.3) posts it from an HTML form.
- `fragment.jwt` is refused: the code flow never uses the fragment here (RFC 9700 §2.1.2; FAPI 2.0
  conformance checks that no code travels in the fragment), and `query.jwt` serves the same purpose.
- Clients whose profile has `signed_responses` (fapi2-message-signing) must ask for a JWT mode; a
  request without one is refused with invalid_request, and that refusal, like every response to such a
  client, is itself a signed JWT (`query.jwt`): an unsigned response never reaches a client that relies
  on signatures.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from fingrade.oauth.context import Core
from fingrade.oauth.models import Client
from fingrade.oauth.profiles import get_profile
from fingrade.oauth.token_formats import sign_server_jwt
from fingrade.protocol.errors import invalid_request

QUERY = "query"
QUERY_JWT = "query.jwt"
FORM_POST_JWT = "form_post.jwt"
# response_mode values accepted, and the encoding each one means (JARM §2.3.4: jwt → query.jwt for code).
MODES = {"query": QUERY, "jwt": QUERY_JWT, "query.jwt": QUERY_JWT, "form_post.jwt": FORM_POST_JWT}
SUPPORTED = list(MODES)  # advertised as response_modes_supported (JARM §4.1)
JWT_LIFETIME = 300  # JARM §2.1: exp, recommended at most 10 minutes; the code itself lives 60 s


@dataclass(frozen=True)
class AuthorizationResponse:
    """Where the browser goes. Query modes: `url` is the redirect URI with the response in its query.
    form_post.jwt: the browser POSTs `form` to `url` (the redirect URI)."""

    url: str
    form: dict[str, str] | None = None


def delivery_mode(value: str | None, client: Client) -> str:
    """The encoding for any response to this request, errors included. Never raises: an unknown or
    missing response_mode falls back to query (RFC 6749), or to query.jwt for clients that require
    signed responses."""
    mode = MODES.get(value or QUERY, QUERY)
    if mode == QUERY and get_profile(client.profile).signed_responses:
        return QUERY_JWT
    return mode


def check_mode(value: str | None, client: Client) -> str:
    """The response_mode a request asks for, validated; raises invalid_request."""
    if value is not None and value not in MODES:
        raise invalid_request("response_mode must be one of " + ", ".join(SUPPORTED))
    mode = MODES[value or QUERY]
    if mode == QUERY and get_profile(client.profile).signed_responses:
        raise invalid_request("this client must request a signed authorization response (response_mode=jwt)")
    return mode


def _with_query(redirect_uri: str, params: dict[str, str]) -> str:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return redirect_uri + ("&" if "?" in redirect_uri else "?") + query


async def authorization_response(
    core: Core, client_id: str, redirect_uri: str, mode: str, params: dict[str, str | None]
) -> AuthorizationResponse:
    """Encode an authorization response (success or error) in `mode`. `iss` is always added
    (RFC 9207 §2); with JARM it is the JWT's `iss` claim and appears nowhere else (JARM §2.1)."""
    values = {k: v for k, v in params.items() if v is not None}
    values["iss"] = core.issuer
    if mode == QUERY:
        return AuthorizationResponse(_with_query(redirect_uri, values))
    now = core.clock()
    token = await sign_server_jwt(core, "JWT", {**values, "aud": client_id, "iat": now, "exp": now + JWT_LIFETIME})
    if mode == FORM_POST_JWT:
        return AuthorizationResponse(redirect_uri, {"response": token})
    return AuthorizationResponse(_with_query(redirect_uri, {"response": token}))
