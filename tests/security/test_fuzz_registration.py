"""Properties of dynamic client registration (RFC 7591) and its management (RFC 7592):

- no metadata reaches a 5xx: members of every JSON type, JSON that is not an object, text that is not
  JSON; a refusal is invalid_client_metadata or invalid_redirect_uri (RFC 7591 §3.2.2) and writes nothing;
- every redirect URI a registration accepts is a well-formed URI whose host and port are what an HTTP
  client would connect to (RFC 3986 §3.2.2, §3.2.3): a URI that is not can never be matched safely, and
  it reaches the pages' Content-Security-Policy (form-action);
- no token and no metadata reaches a 5xx at /register/{client_id}.

Every request also holds the invariants of fuzzkit (headers, keep-alive, nothing written)."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.server import Server

from security.fuzzgen import JSON, JSON_TEXT, TOKENS, redirect_uri
from security.fuzzkit import FuzzCredentials, Probe, probe

pytestmark = [pytest.mark.registration, pytest.mark.fuzz]

BOUNDED = settings(
    max_examples=120, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
JSON_CT = (b"content-type", b"application/json")
BASES = [
    {
        "client_name": "Fuzz confidential",
        "redirect_uris": ["https://fuzz.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
    },
    {
        "client_name": "Fuzz native",
        "redirect_uris": ["http://127.0.0.1/cb", "com.example.fuzz:/cb"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    },
    {"client_name": "Fuzz spa", "redirect_uris": ["https://spa.fuzz.example/cb"], "token_endpoint_auth_method": "none"},
]
MEMBERS: dict[str, st.SearchStrategy[Any]] = {
    "client_name": st.sampled_from(["x", "", " ", "a" * 101, "\u0000", "Name\u202e"]) | JSON,
    "redirect_uris": st.lists(redirect_uri(), max_size=3) | JSON,
    "token_endpoint_auth_method": st.sampled_from(
        [
            "none",
            "client_secret_post",
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth",
            "client_secret_jwt",
        ]
    )
    | JSON,
    "grant_types": st.lists(
        st.sampled_from(["authorization_code", "refresh_token", "client_credentials", "password", "implicit"]),
        max_size=4,
    )
    | JSON,
    "response_types": st.sampled_from([["code"], ["token"], [], ["code", "code"]]) | JSON,
    "application_type": st.sampled_from(["web", "native", "WEB"]) | JSON,
    "security_profile": st.sampled_from(["fapi2", "fapi2-message-signing", "native", "spa", "x"]) | JSON,
    "scope": st.sampled_from(["openid", "openid accounts", "", "nope", "openid  openid"]) | JSON,
    "jwks": st.sampled_from([{"keys": []}, {"keys": [{"kty": "EC"}]}, {"keys": "x"}]) | JSON,
    "jwks_uri": JSON,
    "client_uri": st.sampled_from(["https://x.example", "javascript:x", ""]) | JSON,
    "logo_uri": JSON,
    "tos_uri": JSON,
    "policy_uri": JSON,
    "software_id": JSON,
    "software_version": JSON,
    "software_statement": JSON,
    "require_pkce": JSON,
    "require_pushed_authorization_requests": JSON,
    "dpop_bound_access_tokens": JSON,
    "tls_client_certificate_bound_access_tokens": JSON,
    "tls_client_auth_subject_dn": st.sampled_from(["CN=x", "CN=x,O=", "=", "CN=\u0000"]) | JSON,
    "tls_client_auth_san_dns": JSON,
    "tls_client_auth_san_ip": st.sampled_from(["::1", "1.2.3.4", "x"]) | JSON,
    "tls_client_auth_san_uri": JSON,
    "tls_client_auth_san_email": JSON,
    "authorization_signed_response_alg": st.sampled_from(["ES256", "RS256", "none"]) | JSON,
    "introspection_signed_response_alg": JSON,
    "authorization_details_types": st.lists(
        st.sampled_from(["account_information", "payment_initiation", "x"]), max_size=3
    )
    | JSON,
    "client_id": JSON,
    "client_secret": JSON,
    "registration_access_token": JSON,
}


@st.composite
def metadata(draw: st.DrawFn) -> bytes:
    """Client metadata: a valid registration with one to four members replaced, added or left out;
    or JSON of any type; or text that is not quite JSON."""
    kind = draw(st.sampled_from(["perturbed", "perturbed", "perturbed", "json", "text"]))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    if kind == "text":
        return draw(JSON_TEXT).encode("utf-8", "surrogatepass")
    meta = dict(draw(st.sampled_from(BASES)))
    for name in draw(st.lists(st.sampled_from(sorted(MEMBERS)), min_size=1, max_size=4, unique=True)):
        if draw(st.sampled_from(["set", "set", "set", "drop"])) == "drop":
            meta.pop(name, None)
        else:
            meta[name] = draw(MEMBERS[name])
    return json.dumps(meta).encode()


_HOST = re.compile(r"[a-z0-9._-]+")  # the characters of a DNS name (RFC 1123), as registered (lower case)


def well_formed(uri: str) -> bool:
    """A URI an HTTP client connects to where it says: it parses (RFC 3986), its host is made of the
    characters of a DNS name or is an IP literal, its port is in 1..65535 (RFC 3986 §3.2.2-3).
    Private-use schemes (RFC 8252 §7.1) have no authority."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    if not parts.netloc:
        return parts.scheme not in ("http", "https")
    if port is not None and not 0 < port < 65536:
        return False
    host = parts.hostname or ""
    authority = parts.netloc.rsplit("@", 1)[-1]
    if authority.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return authority in (f"[{host}]", f"[{host}]:", f"[{host}]:{port}")
    return bool(_HOST.fullmatch(host)) and authority in (host, f"{host}:", f"{host}:{port}")  # ":" = no port


def _check_registered(p: Probe, resp: httpx.Response, creds: FuzzCredentials) -> None:
    """A registration was accepted: its redirect URIs are well formed; then it is deleted again."""
    if resp.status_code not in (200, 201):
        return
    info = resp.json()
    bad = [u for u in info.get("redirect_uris", []) if not well_formed(u)]
    path = urlsplit(info["registration_client_uri"]).path
    p.send("DELETE", path, headers=[(b"authorization", b"Bearer " + info["registration_access_token"].encode())])
    assert not bad, f"registered malformed redirect URIs {bad}"


def test_no_registration_metadata_reaches_a_5xx(server: Server, fuzz_credentials: FuzzCredentials) -> None:
    iat = b"Bearer " + fuzz_credentials.initial_access_token.encode()
    with probe(server) as p:

        @given(body=metadata())
        @BOUNDED
        def run(body: bytes) -> None:
            resp = p.send("POST", "/register", headers=[JSON_CT, (b"authorization", iat)], content=body)
            if resp.status_code == 400:
                assert resp.json()["error"] in ("invalid_client_metadata", "invalid_redirect_uri"), resp.text
            _check_registered(p, resp, fuzz_credentials)

        run()


def test_registered_redirect_uris_are_well_formed(server: Server, fuzz_credentials: FuzzCredentials) -> None:
    """RFC 7591 §2 / RFC 9700 §4.1.3: a redirect URI is registered only if it is a well-formed URI; hosts
    and ports that no client could connect to (`https://a.com;x/cb`, `:99999`) are invalid_redirect_uri."""
    iat = b"Bearer " + fuzz_credentials.initial_access_token.encode()
    hosts = st.sampled_from(
        [
            "a.com;x",
            "a.com:99999",
            "a.com:0",
            "a.com:-1",
            "a..com",
            "-a.com",
            "a_b.com",
            "a com",
            "a.com%2f",
            "[::1",
            "[x]",
            "a.com:",
            "a.com:80:80",
            "ex%61mple.com",
            "a.com\\",
            "*.a.com",
            "user@a.com",
            "a.com#",
            "a.com?",
            "1.2.3.4.5",
            "[::1]:99999",
            "xn--",
            "a.com.",
            "a.com:443",
            "fuzz.example",
        ]
    )
    uris = st.one_of(st.builds("https://{}/cb".format, hosts), redirect_uri())
    with probe(server) as p:

        @given(uri=uris, native=st.booleans())
        @BOUNDED
        def run(uri: str, native: bool) -> None:
            meta = dict(BASES[1 if native else 0], redirect_uris=[uri])
            resp = p.send(
                "POST", "/register", headers=[JSON_CT, (b"authorization", iat)], content=json.dumps(meta).encode()
            )
            if resp.status_code == 400:
                assert resp.json()["error"] == "invalid_redirect_uri", resp.text
            _check_registered(p, resp, fuzz_credentials)

        run()


MEMBERS_OF_ANOTHER_TYPE = [
    (member, value)
    for member in (
        "security_profile",
        "token_endpoint_auth_method",
        "application_type",
        "grant_types",
        "redirect_uris",
        "scope",
        "client_name",
        "jwks",
        "require_pkce",
    )
    for value in ([], {}, ["fapi2"], {"fapi2": 1}, 1, 1.5, True, None)
    if not (member == "require_pkce" and isinstance(value, bool))
]


@pytest.mark.parametrize(("member", "value"), MEMBERS_OF_ANOTHER_TYPE, ids=repr)
def test_metadata_members_of_another_json_type_are_invalid_client_metadata_rfc7591_3_2_2(
    http: httpx.Client, fuzz_credentials: FuzzCredentials, member: str, value: Any
) -> None:
    """Found by the property above: `"security_profile": []` (or any unhashable value) was looked up in
    the profile table and answered 500. Every member of the wrong type is invalid_client_metadata (or,
    for redirect_uris, invalid_redirect_uri), whatever the type."""
    meta = {**BASES[0], member: value}
    resp = http.post(
        "/register", json=meta, headers={"Authorization": f"Bearer {fuzz_credentials.initial_access_token}"}
    )
    if resp.status_code == 201:
        info = resp.json()
        http.delete(
            urlsplit(info["registration_client_uri"]).path,
            headers={"Authorization": f"Bearer {info['registration_access_token']}"},
        )
        assert value is None, info  # a null member is an absent one (RFC 7591 §2)
        return
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.json()["error"] in ("invalid_client_metadata", "invalid_redirect_uri"), resp.text


def test_no_token_or_metadata_reaches_a_5xx_at_client_management(
    server: Server, fuzz_credentials: FuzzCredentials
) -> None:
    """RFC 7592: reads, updates and deletions with generated tokens, client ids and metadata. The
    client's own token updates it (PUT replaces the metadata, a success); nothing else is accepted."""
    with server.client() as http:
        resp = http.post(
            "/register", json=BASES[0], headers={"Authorization": f"Bearer {fuzz_credentials.initial_access_token}"}
        )
    assert resp.status_code == 201, resp.text
    info = resp.json()
    token = info["registration_access_token"].encode()
    with probe(server) as p:

        @given(
            method=st.sampled_from(["GET", "PUT", "PUT", "DELETE"]),
            client_id=st.sampled_from([info["client_id"], info["client_id"], "demo-backend", "x" * 65, "%00", ".."])
            | st.text(min_size=1, max_size=20).map(lambda s: s.replace("/", "_")),
            auth=st.sampled_from([b"Bearer " + token, b"Bearer " + token, b"Basic " + token])
            | TOKENS.map(lambda t: b"Bearer " + t.encode()),
            body=metadata(),
        )
        @BOUNDED
        def run(method: str, client_id: str, auth: bytes, body: bytes) -> None:
            if method == "DELETE" and auth == b"Bearer " + token:
                method = "GET"  # keep the client for the next examples
            if method == "PUT":
                try:  # the generator also makes bodies too deep for the test's own JSON parser
                    doc = json.loads(body) if body.startswith(b"{") else None
                except (ValueError, RecursionError):
                    doc = None
                if isinstance(doc, dict) and "client_id" not in doc:
                    doc["client_id"] = info["client_id"]
                    body = json.dumps(doc).encode()
            path = "/register/" + quote(client_id, safe="")
            resp = p.send(
                method, path, headers=[JSON_CT, (b"authorization", auth)], content=body if method == "PUT" else None
            )
            if method == "PUT" and resp.status_code == 200:
                bad = [u for u in resp.json().get("redirect_uris", []) if not well_formed(u)]
                assert not bad, f"registered malformed redirect URIs {bad}"

        run()
