"""Properties of the authorization request, wherever it arrives (the query of GET /authorize, PAR, the
token endpoint's `authorization_details`):

- no query string reaches a 5xx, and the browser is only ever sent to our own sign-in pages or to a
  redirect URI registered for the client (RFC 6749 §3.1.2.3, RFC 9700 §4.1.3, RFC 8252 §7.3 loopback
  ports): never to a near miss;
- no `authorization_details` (RFC 9396) and no `claims` (OIDC Core §5.5) value reaches a 5xx: JSON of
  every type and depth, instants at the ends of the calendar, numbers out of range, text that is not
  quite JSON; a refusal is `invalid_authorization_details` or `invalid_request`, and writes nothing;
- JSON with a member given twice is refused wherever JSON is read (no "last one wins").

Every request also holds the invariants of fuzzkit (headers, keep-alive, nothing written)."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.demo import BACKEND, BACKEND_REDIRECT
from support.flow import pkce_pair
from support.server import Server

from .fuzzgen import AUTHORIZATION_DETAILS, CLAIMS_REQUEST, FORM, form_body, redirect_uri
from .fuzzkit import FuzzCredentials, check_oauth_error, probe

pytestmark = pytest.mark.fuzz

BOUNDED = settings(
    max_examples=150, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
REGISTERED = {  # the demo clients' redirect URIs (fingrade/demo.py)
    "demo-native": ["http://127.0.0.1/callback", "http://[::1]/callback", "com.fingrade.demo:/callback"],
    "demo-spa": ["https://localhost:3000/callback"],
    BACKEND: [BACKEND_REDIRECT],
}
_LOOPBACK = re.compile(r"http://(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?(/callback)")


def registered_for(client_id: str, uri: str) -> bool:
    """RFC 6749 §3.1.2.3 / RFC 9700 §4.1.3: the registered URI byte for byte; RFC 8252 §7.3: for a
    loopback IP literal, any port."""
    if uri in REGISTERED.get(client_id, []):
        return True
    m = _LOOPBACK.fullmatch(uri)
    return bool(m and client_id == "demo-native" and (m.group(2) is None or 0 < int(m.group(2)) < 65536))


def check_redirect(resp, sent: bytes) -> None:
    """A redirect from /authorize goes to our interaction page, or to the redirect URI the request
    named, which must be registered for the client the request named."""
    if resp.status_code != 303:
        return
    location = resp.headers["location"]
    if location.startswith("/interaction/"):
        return
    params = dict(parse_qsl(sent.decode("utf-8", "replace")))
    uri, client_id = params.get("redirect_uri", ""), params.get("client_id", "")
    assert uri and location.startswith(uri), (sent[:300], location[:300])
    assert location[len(uri) :][:1] in ("?", "&"), (sent[:300], location[:300])
    assert registered_for(client_id, uri), (sent[:300], location[:300])


def _request(client_id: str, **extra: str) -> dict[str, str]:
    _, challenge = pkce_pair()
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REGISTERED[client_id][0],
        "scope": "openid",
        "state": "xyz",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


BASES = st.sampled_from(
    [
        _request("demo-native"),
        _request("demo-spa"),
        _request(BACKEND, scope="openid accounts"),
        _request("demo-native", prompt="none"),
        _request(BACKEND, response_mode="query.jwt"),
    ]
)


def test_no_query_string_reaches_a_5xx_at_authorize(server: Server) -> None:
    with probe(server) as p:

        @given(query=BASES.flatmap(lambda base: form_body(base, max_huge=4000)).map(lambda q: q[:6000]))
        @BOUNDED
        def run(query: bytes) -> None:
            resp = p.send("GET", "/authorize", query=query)
            check_redirect(resp, query)

        run()


def test_redirect_uris_at_authorize_only_registered_ones_are_used(server: Server) -> None:
    with probe(server) as p:

        @given(client_id=st.sampled_from(sorted(REGISTERED)), uri=redirect_uri(), prompt=st.sampled_from(["", "none"]))
        @BOUNDED
        def run(client_id: str, uri: str, prompt: str) -> None:
            params = {**_request(client_id, redirect_uri=uri), **({"prompt": prompt} if prompt else {})}
            if client_id == BACKEND:
                params["scope"] = "openid accounts"
            query = urlencode(params).encode()
            resp = p.send("GET", "/authorize", query=query, must_refuse=not registered_for(client_id, uri))
            check_redirect(resp, query)
            if not registered_for(client_id, uri):
                assert resp.status_code == 400 and "location" not in resp.headers, (uri, resp.status_code)

        run()


# -- JSON parameters ----------------------------------------------------------------------------------
def _authorize(p, params: dict[str, str]) -> None:
    """An authorization request in the query; a long one as a form (OIDC Core §3.1.2.1), so that no
    request-line limit is what answers."""
    encoded = urlencode(params).encode()
    if len(encoded) <= 6000:
        resp = p.send("GET", "/authorize", query=encoded)
    else:
        resp = p.send("POST", "/authorize", content=encoded, headers=[(b"content-type", FORM)])
    check_redirect(resp, encoded)


def _par(p, creds: FuzzCredentials, **params: str):
    body = urlencode({**_request(BACKEND, scope="openid accounts"), **params}).encode()
    return p.send("POST", "/par", content=body, headers=[(b"content-type", FORM), (b"authorization", creds.backend)])


def test_no_authorization_details_reach_a_5xx(server: Server, fuzz_credentials: FuzzCredentials) -> None:
    """RFC 9396 §5: what is not a valid list of details for this client is invalid_authorization_details
    (or invalid_request); at PAR as JSON, at /authorize as a redirect, at /token always refused (no
    customer to approve a client_credentials grant), and in a consent lodged by a resource server
    (consent resources: the same validation, JSON in JSON)."""
    with probe(server) as p:

        @given(details=AUTHORIZATION_DETAILS, where=st.sampled_from(["par", "authorize", "token", "lodge"]))
        @BOUNDED
        def run(details: str, where: str) -> None:
            if where == "par":
                resp = _par(p, fuzz_credentials, authorization_details=details)
                if resp.status_code == 400:
                    assert resp.json()["error"] in ("invalid_authorization_details", "invalid_request"), resp.text
            elif where == "authorize":
                _authorize(p, _request(BACKEND, scope="openid accounts", authorization_details=details))
            elif where == "lodge":
                body = '{"client_id":"demo-backend","authorization_details":' + details + "}"
                resp = p.send(
                    "POST",
                    "/consent-resources",
                    content=body.encode("utf-8", "surrogatepass"),
                    headers=[
                        (b"content-type", b"application/json"),
                        (b"authorization", fuzz_credentials.resource_server),
                    ],
                )
                if resp.status_code == 400:
                    assert resp.json()["error"] in ("invalid_authorization_details", "invalid_request"), resp.text
            else:
                body = urlencode({"grant_type": "client_credentials", "authorization_details": details}).encode()
                # An empty value is an omitted parameter (RFC 6749 §3.1).
                resp = p.send(
                    "POST",
                    "/token",
                    content=body,
                    must_refuse=details != "",
                    headers=[(b"content-type", FORM), (b"authorization", fuzz_credentials.backend)],
                )
                if details:
                    assert resp.json()["error"] in ("invalid_authorization_details", "invalid_request"), resp.text

        run()


def test_no_claims_request_reaches_a_5xx(server: Server, fuzz_credentials: FuzzCredentials) -> None:
    """OIDC Core §5.5 `claims` (and the openbanking_intent_id in it): anything that is not a claims
    request naming a consent of this client awaiting authorisation is invalid_request."""
    with probe(server) as p:

        @given(claims=CLAIMS_REQUEST, where=st.sampled_from(["par", "authorize"]))
        @BOUNDED
        def run(claims: str, where: str) -> None:
            if where == "par":
                resp = _par(p, fuzz_credentials, claims=claims)
                if resp.status_code == 400:
                    assert resp.json()["error"] == "invalid_request", resp.text
            else:
                _authorize(p, _request(BACKEND, scope="openid accounts", claims=claims))

        run()


# -- duplicate members ----------------------------------------------------------------------------------
DETAIL = {"type": "account_information", "actions": ["accounts"]}
REGISTRATION = {
    "client_name": "Duplicate members",
    "redirect_uris": ["https://dup.example/cb"],
    "token_endpoint_auth_method": "client_secret_basic",
}


@st.composite
def with_duplicate_member(draw: st.DrawFn, document: dict) -> str:
    """`document` as JSON text, with one of its members (top level) given a second time, before or
    after the first, with the same or another value."""
    name = draw(st.sampled_from(sorted(document)))
    again = draw(st.sampled_from([document[name], "x", 0, None, [], {}]))
    members = [json.dumps(k) + ":" + json.dumps(v) for k, v in document.items()]
    twice = json.dumps(name) + ":" + json.dumps(again)
    members.insert(draw(st.integers(0, len(members))), twice)
    return "{" + ",".join(members) + "}"


@pytest.mark.parametrize("where", ["authorization_details", "claims", "register"])
def test_json_with_a_repeated_member_is_refused(server: Server, fuzz_credentials: FuzzCredentials, where: str) -> None:
    """A JSON object that names a member twice has no single meaning (RFC 8259 §4: names SHOULD be
    unique; parsers differ on which one wins), so it is refused wherever JSON is read: RFC 9396
    authorization details (invalid_authorization_details), the OIDC claims parameter (invalid_request)
    and client registration metadata (RFC 7591 §3.2.2 invalid_client_metadata)."""
    with probe(server) as p:

        @given(data=st.data())
        @settings(
            max_examples=30, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
        )
        def run(data: st.DataObject) -> None:
            if where == "authorization_details":
                text = "[" + data.draw(with_duplicate_member(DETAIL)) + "]"
                resp = _par(p, fuzz_credentials, authorization_details=text)
                assert resp.status_code == 400, (text, resp.text)
                check_oauth_error(resp, "/par")
                assert resp.json()["error"] == "invalid_authorization_details", (text, resp.text)
            elif where == "claims":
                claims = {"id_token": {"acr": None}, "userinfo": {"name": None}}
                text = data.draw(with_duplicate_member(claims))
                resp = _par(p, fuzz_credentials, claims=text)
                assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", (text, resp.text)
            else:
                text = data.draw(with_duplicate_member(REGISTRATION))
                resp = p.send(
                    "POST",
                    "/register",
                    content=text.encode(),
                    must_refuse=True,
                    headers=[
                        (b"content-type", b"application/json"),
                        (b"authorization", b"Bearer " + fuzz_credentials.initial_access_token.encode()),
                    ],
                )
                assert resp.status_code == 400 and resp.json()["error"] == "invalid_client_metadata", (text, resp.text)

        run()
