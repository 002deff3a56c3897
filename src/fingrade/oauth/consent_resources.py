"""Consent resources: a consent lodged before the customer sees it (UK Open Banking's
account-access-consents; the FAPI "lodging intent" pattern).

The flow: the app gets a client-credentials token and asks the bank's resource server to create a
consent (`POST /account-access-consents`); the resource server lodges it here through
`POST /consent-resources` (resource servers only, like introspection), getting its id. The app's
authorization request names the id in the `claims` parameter (`openbanking_intent_id`, OIDC Core
§5.5, claims_request.py); the consent's RFC 9396 authorization details become the request's, so the
consent page, account selection, the grant and the tokens work exactly as for a request that carried
`authorization_details` itself.

States: AwaitingAuthorisation -> Authorised (the customer approved; the grant is created in the same
transaction, so one consent is authorised at most once) | Rejected (the customer declined) ->
Revoked (the app deleted it, or - derived from its grant - the customer revoked it on the dashboard
or the bank with `fingrade consents revoke`). Revoked kills the grant's tokens at once.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

import orjson

from fingrade.finance.consent_ids import ConsentStatus
from fingrade.oauth import authorization_details
from fingrade.oauth.client_auth import authenticate_client
from fingrade.oauth.context import Core
from fingrade.oauth.models import Client, ConsentResource
from fingrade.oauth.profiles import authorization_details_types
from fingrade.protocol import strict_json
from fingrade.protocol.crypto import new_token
from fingrade.protocol.errors import OAuthError, invalid_request, method_not_allowed
from fingrade.protocol.http import NO_STORE, HttpRequest, HttpResponse, parse_params

if TYPE_CHECKING:
    from fingrade.oauth.authorize import AuthorizationRequest

LODGED_TYPES = frozenset({"account_information"})  # what a lodged consent may ask for
MAX_DATA = 4096  # bytes of the resource server's own JSON
MAX_BODY = 16384


def not_found() -> OAuthError:
    return OAuthError("not_found", "no such consent", 404)


def status(resource: ConsentResource, grant_revoked_at: int | None, now: int, ttl: int) -> tuple[ConsentStatus, int]:
    """The consent's status and since when. Revoking the grant (dashboard, bank CLI, RFC 7009 on its
    refresh token) revokes the consent: one fact, kept in one place (the grant). A consent left
    awaiting authorisation for `ttl` seconds is Rejected: an old consent link (in a mailbox, a
    browser history) must not be approvable later."""
    if resource.status == ConsentStatus.AUTHORISED and grant_revoked_at is not None:
        return ConsentStatus.REVOKED, grant_revoked_at
    if resource.status == ConsentStatus.AWAITING_AUTHORISATION and resource.created_at + ttl <= now:
        return ConsentStatus.REJECTED, resource.created_at + ttl
    return resource.status, resource.status_updated_at


def _status(core: Core, resource: ConsentResource, grant_revoked_at: int | None) -> tuple[ConsentStatus, int]:
    return status(resource, grant_revoked_at, core.clock(), core.settings.consent_resource_ttl)


def to_json(core: Core, resource: ConsentResource, grant_revoked_at: int | None) -> dict[str, Any]:
    state, since = _status(core, resource, grant_revoked_at)
    return {
        "consent_id": resource.id,
        "client_id": resource.client_id,
        "status": state,
        "created_at": resource.created_at,
        "status_updated_at": since,
        "authorization_details": resource.authorization_details,
        "data": resource.data,
    }


# -- lodging, reading and deleting (the resource server's side) ------------------------------------


async def create(core: Core, client_id: Any, details: Any, data: Any) -> dict[str, Any]:
    if not isinstance(client_id, str) or not client_id:
        raise invalid_request("client_id is missing")
    client = await core.store.get_client(client_id)
    if client is None:
        raise invalid_request("client_id names no registered client")
    if not isinstance(data, dict):
        raise invalid_request("data must be a JSON object")
    if len(orjson.dumps(data)) > MAX_DATA:
        raise invalid_request(f"data is larger than {MAX_DATA} bytes")
    if not isinstance(details, list):
        raise authorization_details.error("authorization_details must be a JSON array")
    # The one validation of RFC 9396 details, with the app's registered types (§10.2).
    parsed = authorization_details.parse(
        json.dumps(details), authorization_details_types(client) & LODGED_TYPES, authorization_details.context_of(core)
    )
    now = core.clock()
    resource = ConsentResource(
        id="aac-" + new_token(16),
        client_id=client.client_id,
        status=ConsentStatus.AWAITING_AUTHORISATION,
        authorization_details=parsed,
        data=data,
        created_at=now,
        status_updated_at=now,
    )
    await core.store.create_consent_resource(resource)
    await core.store.audit("consent_lodged", now, client_id=client.client_id, detail={"consent_id": resource.id})
    return to_json(core, resource, None)


async def _find(core: Core, consent_id: str) -> tuple[ConsentResource, int | None] | None:
    return await core.store.get_consent_resource(consent_id) if len(consent_id) <= 64 else None


async def _own(core: Core, consent_id: str, client_id: str | None) -> tuple[ConsentResource, int | None]:
    found = await _find(core, consent_id)
    if found is None or found[0].client_id != client_id:
        raise not_found()  # another app's consent is indistinguishable from none
    return found


async def _revoke(core: Core, resource: ConsentResource, grant_revoked_at: int | None, *, by: str) -> None:
    """Revoked, with its grant and tokens in the same transaction; a Rejected or Revoked consent
    (stored or derived) stays as it is. Audited with who did it."""
    now = core.clock()
    revocable = (ConsentStatus.AWAITING_AUTHORISATION, ConsentStatus.AUTHORISED)
    if _status(core, resource, grant_revoked_at)[0] in revocable and await core.store.set_consent_resource_status(
        resource.id, revocable, ConsentStatus.REVOKED, now
    ):
        await core.store.audit(
            "consent_revoked",
            now,
            client_id=resource.client_id,
            user_id=resource.user_id,
            detail={"by": by, "consent_id": resource.id, "grants": [resource.grant_id] if resource.grant_id else []},
        )


async def read(core: Core, consent_id: str, client_id: str | None) -> dict[str, Any]:
    return to_json(core, *await _own(core, consent_id, client_id))


async def delete(core: Core, consent_id: str, client_id: str | None) -> dict[str, Any]:
    """The app withdraws the consent (UK DELETE account-access-consents)."""
    await _revoke(core, *await _own(core, consent_id, client_id), by="app")
    return to_json(core, *await _own(core, consent_id, client_id))


async def revoke_by_bank(core: Core, consent_id: str) -> ConsentResource | None:
    """The bank withdraws a consent by its ConsentId (`fingrade consents revoke aac-…`, e.g. on a
    customer's complaint that quotes it). None if there is none."""
    found = await _find(core, consent_id)
    if found is None:
        return None
    await _revoke(core, *found, by="bank")
    return found[0]


async def consent_resource_endpoint(core: Core, request: HttpRequest, consent_id: str | None) -> HttpResponse:
    """POST /consent-resources, GET and DELETE /consent-resources/{id}: for resource servers only,
    authenticated as at introspection (RFC 7662 §2.1). JSON in and out."""
    try:
        allowed = ("POST",) if consent_id is None else ("GET", "DELETE")
        if request.method not in allowed:
            raise method_not_allowed(", ".join(allowed))
        server, _ = await authenticate_client(core, request, {})
        if not server.resource_server:
            raise OAuthError("access_denied", "only resource servers may lodge or read consents", 403)
        if consent_id is None:
            body = _json_body(request)
            out = await create(core, body.get("client_id"), body.get("authorization_details"), body.get("data", {}))
            return HttpResponse(201, dict(NO_STORE), json=out)
        client_id = parse_params(request.query).get("client_id")
        if request.method == "GET":
            return HttpResponse(200, dict(NO_STORE), json=await read(core, consent_id, client_id))
        return HttpResponse(200, dict(NO_STORE), json=await delete(core, consent_id, client_id))
    except OAuthError as exc:
        return HttpResponse(exc.status, {**NO_STORE, **exc.headers}, json=exc.body())


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if (request.header("content-type") or "").split(";")[0].strip().lower() != "application/json":
        raise invalid_request("the request body must be application/json")
    if len(request.body) > MAX_BODY:
        raise invalid_request("the request body is too large")
    try:
        return strict_json.loads_object(request.body)
    except strict_json.JsonError as exc:
        raise invalid_request(f"the request body: {exc}") from None


# -- the authorization (the customer's side) --------------------------------------------------------


async def attach(core: Core, client: Client, req: AuthorizationRequest) -> AuthorizationRequest:
    """Resolve the consent an authorization request names: it must be this client's and awaiting
    authorisation; the request with the consent's authorization details. Raises invalid_request."""
    if req.consent_id is None:
        return req
    found = await core.store.get_consent_resource(req.consent_id)
    if found is None or found[0].client_id != client.client_id:
        raise invalid_request("openbanking_intent_id names no consent of this client")
    resource, revoked_at = found
    state, _ = _status(core, resource, revoked_at)
    if state != ConsentStatus.AWAITING_AUTHORISATION:
        raise invalid_request(f"the consent is {state}, not awaiting authorisation")
    details = authorization_details.unexpired(resource.authorization_details, core.clock())
    if not details:
        raise invalid_request("the consent has expired")
    if not {d["type"] for d in details} <= authorization_details_types(client):
        raise invalid_request("this client may no longer use the consent's authorization details type")
    return dataclasses.replace(req, authorization_details=details)


async def reject(core: Core, consent_id: str, user_id: str) -> None:
    await core.store.set_consent_resource_status(
        consent_id, (ConsentStatus.AWAITING_AUTHORISATION,), ConsentStatus.REJECTED, core.clock(), user_id=user_id
    )
