"""Pushed authorization requests (RFC 9126): the client posts the authorization request over an
authenticated back channel and gets a short-lived `request_uri` to send the browser with."""

from __future__ import annotations

from fingrade.oauth import consent_resources, request_object
from fingrade.oauth.authorize import PAR_PREFIX, PageError, PushedRequest, RedirectError, validate_params
from fingrade.oauth.client_auth import authenticate_with_proof
from fingrade.oauth.context import Core
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.oauth.profiles import get_profile
from fingrade.protocol import dpop
from fingrade.protocol.crypto import new_token, token_hash
from fingrade.protocol.errors import OAuthError, invalid_request, method_not_allowed
from fingrade.protocol.http import NO_STORE, HttpRequest, HttpResponse, form_params

# Client authentication, not part of the authorization request that is stored.
_AUTH_PARAMS = frozenset({"client_id", "client_secret", "client_assertion", "client_assertion_type"})


async def par_endpoint(core: Core, request: HttpRequest) -> HttpResponse:
    try:
        if request.method != "POST":
            raise method_not_allowed("POST")  # RFC 9126 §2.3: 405
        params = form_params(request)
        # §2.1 step 1: authenticate exactly as at the token endpoint (public clients by client_id).
        # RFC 9449 §10.1: a proof at PAR binds the code as if its thumbprint were sent as dpop_jkt.
        client, _method, jkt = await authenticate_with_proof(core, request, params, "/par")
        if "request_uri" in params:
            raise invalid_request("request_uri cannot be used in a pushed authorization request")  # §2.1 step 2
        signed = None
        if "request" in params:
            # RFC 9126 §3, RFC 9101 §5/§6.3: only the parameters inside the signed request object are
            # used; every other form parameter (but client authentication) is ignored, so a `state` or
            # `nonce` sent beside the object is never stored or returned.
            signed = request_object.verify_request_object(core, client, params["request"])
            pushed = dict(signed.params)
        elif get_profile(client.profile).signed_requests:
            # FAPI 2.0 Message Signing 5.3.1: this client's requests must be signed request objects.
            raise invalid_request("this client must send its authorization request as a signed request object")
        else:
            pushed = {k: v for k, v in params.items() if k not in _AUTH_PARAMS}
        if jkt is not None and pushed.setdefault("dpop_jkt", jkt) != jkt:
            raise dpop.invalid_dpop_proof("dpop_jkt does not match the key of the DPoP proof")
        try:
            # §2.1 step 3: the same validation as at the authorization endpoint; errors as JSON (§2.3).
            req = validate_params(core, client, {**pushed, "client_id": client.client_id}, pushed=True)
        except PageError as exc:
            raise OAuthError(exc.error, exc.description, 400) from None
        except RedirectError as err:
            raise err.error from None
        await consent_resources.attach(core, client, req)  # a named consent must exist and await authorisation
        if signed is not None:
            await request_object.use_once(core, client, signed)
        # §2.2 and RFC 9101 §10.2: an unguessable reference; only its hash is stored.
        secret = new_token(32)
        now = core.clock()
        ttl = core.settings.par_ttl
        # Kept past expires_at so that an interaction started in time can still take it when the
        # code is issued (authorize.consume_pushed); /authorize refuses it after expires_at.
        await core.onetime.put(
            OneTimeKind.PAR,
            token_hash(secret),
            PushedRequest(client_id=client.client_id, params=pushed, expires_at=now + ttl).to_record(),
            ttl=ttl + 2 * core.settings.interaction_ttl,
        )
        return HttpResponse(
            201, {**NO_STORE, **dpop.nonce_headers(core)}, json={"request_uri": PAR_PREFIX + secret, "expires_in": ttl}
        )
    except OAuthError as exc:
        return HttpResponse(exc.status, {**NO_STORE, **exc.headers}, json=exc.body())
