"""Hypothesis strategies for the fuzz campaign: JSON of every type and depth (and JSON text that is
not quite JSON), JWS-shaped strings with any header and payload (validly signed or not), form bodies
with every encoding mistake, HTTP header values, redirect URIs and authorization details."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any
from urllib.parse import quote, quote_plus

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import strategies as st
from support.dpop import DPoPKey

# -- JSON ----------------------------------------------------------------------------------------------
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1e400",
            "true",
            "null",
            "\u0000",
            "\ud7ff",
            "\U0001f600",
            "a" * 300,
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "../..",
            "%00",
            "<script>",
        ]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _object_with_duplicates(pairs: list[tuple[str, Any]]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"


# JSON text as sent on the wire: valid JSON of any type, objects with a member twice, nesting deeper than
# any parser allows, numbers out of every range, and text that is almost JSON.
JSON_TEXT = st.one_of(
    JSON.map(json.dumps),
    st.lists(st.tuples(st.sampled_from(["type", "a", "actions", "expires_at"]), JSON), min_size=2, max_size=5).map(
        _object_with_duplicates
    ),
    st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e400",
            "-0",
            "9" * 5000,
            "[1,]",
            "{'a':1}",
            '{"a":1',
            "\ufeff[]",
            '"\\ud800"',
            '["\\u0000"]',
            "[" + "1," * 2000 + "1]",
            "",
            " ",
            "null",
            '{"":{}}',
        ]
    ),
    st.text(max_size=40),
)


# -- JWS-shaped strings ---------------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_KEY = DPoPKey()
_PRIVATE = ec.derive_private_key(
    int.from_bytes(base64.urlsafe_b64decode(_KEY.key.as_dict(private=True)["d"] + "=="), "big"), ec.SECP256R1()
)


def es256(signing_input: bytes) -> str:
    """An ES256 signature (RFC 7518 §3.4, r || s) by the DPoP test key over any signing input, so that
    a header or payload no library would produce still carries a valid signature."""
    r, s = decode_dss_signature(_PRIVATE.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _members(spec: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=spec)


HEADER_MEMBERS = {
    "alg": st.sampled_from(["ES256", "none", "HS256", "PS256", "EdDSA", "RS256"]) | JSON,
    "typ": st.sampled_from(["dpop+jwt", "at+jwt", "JWT", "oauth-authz-req+jwt"]) | JSON,
    "kid": JSON,
    "crit": st.sampled_from([["exp"], ["b64"], [], "exp", {"exp": 1}, [1]]) | JSON,
    "jwk": st.just(_KEY.key.as_dict(private=False)) | JSON,
    "b64": JSON,
    "x5c": JSON,
    "jku": JSON,
    "zip": JSON,
}
CLAIMS = {
    "iss": JSON,
    "sub": JSON,
    "aud": JSON,
    "exp": JSON,
    "iat": JSON,
    "nbf": JSON,
    "jti": JSON,
    "htm": JSON,
    "htu": JSON,
    "ath": JSON,
    "nonce": JSON,
    "cnf": JSON,
    "scope": JSON,
    "client_id": JSON,
}
# Headers and claims the readers accept, as starting points: a DPoP proof's, an access token's, a
# request object's, a client assertion's.
_HEADERS = [
    {"typ": "dpop+jwt", "alg": "ES256", "jwk": _KEY.key.as_dict(private=False)},
    {"typ": "at+jwt", "alg": "ES256", "kid": "k1"},
    {"typ": "oauth-authz-req+jwt", "alg": "ES256", "kid": "k1"},
    {"alg": "ES256", "kid": "k1"},
]
_CLAIMS = {
    "iss": "demo-backend",
    "sub": "demo-backend",
    "aud": "https://localhost",
    "exp": 4102444800,
    "iat": 1700000000,
    "nbf": 1700000000,
    "jti": "j1",
    "htm": "POST",
    "htu": "https://localhost/token",
    "client_id": "demo-backend",
    "scope": "openid",
    "cnf": {"jkt": "x"},
}


@st.composite
def _perturbed(draw: st.DrawFn, bases: list[dict[str, Any]], members: dict[str, Any]) -> Any:
    """A base header or claims set with one to three members set to other values (of any type) or left
    out; at times the member names alone, as a JSON array."""
    out = dict(draw(st.sampled_from(bases)))
    for name in draw(st.lists(st.sampled_from(sorted(members)), min_size=1, max_size=3, unique=True)):
        if _rarely(draw, 5):
            out.pop(name, None)
        else:
            out[name] = draw(members[name])
    if draw(st.sampled_from(["object", "object", "array"])) == "array":
        return list(out)  # ["alg", "typ", ...]: `in` works on it, `.get` does not
    return out


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    return draw(st.sampled_from([False] * (one_in - 1) + [True]))


def _json_segment(perturbed: st.SearchStrategy[Any], members: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    kind = st.sampled_from(["perturbed", "perturbed", "perturbed", "members", "json", "text"])
    return kind.flatmap(
        lambda k: {"perturbed": perturbed, "members": members, "json": JSON}[k].map(lambda v: json.dumps(v).encode())
        if k != "text"
        else JSON_TEXT.map(str.encode)
    )


JWS_HEADER = _json_segment(_perturbed(_HEADERS, HEADER_MEMBERS), _members(HEADER_MEMBERS))
JWS_PAYLOAD = _json_segment(_perturbed([_CLAIMS], CLAIMS), _members(CLAIMS))


@st.composite
def jws(draw: st.DrawFn) -> str:
    """A compact JWS (three segments) with any header and payload; signed by the test key, or with a
    junk signature, or with segments that are not base64url at all."""
    header, payload = draw(JWS_HEADER), draw(JWS_PAYLOAD)
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = draw(st.one_of(st.just(None), st.sampled_from(["", "AAAA", "!!!", "a" * 90])))
    token = signing_input + "." + (es256(signing_input.encode()) if signature is None else signature)
    return draw(st.sampled_from([token, token, token, token + ".x", token.replace(".", "..", 1), "." + token]))


TOKENS = st.one_of(
    jws(),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/=", max_size=60),
    st.sampled_from(["", "a.b.c", "...", "e30.e30.", "WyJhbGciXQ.e30.AAAA"]),
)

# -- HTTP header values ---------------------------------------------------------------------------------
# Bytes h11 will send in a field value (RFC 9110 §5.5: VCHAR, obs-text, inner spaces and tabs).
_VCHAR = [bytes([c]) for c in range(0x21, 0x7F)] + [bytes([c]) for c in (0x80, 0xA0, 0xC3, 0xE9, 0xFF)]
HEADER_JUNK = (
    st.lists(st.sampled_from(_VCHAR + [b" ", b"\t"]), min_size=1, max_size=60)
    .map(b"".join)
    .map(lambda v: v.strip(b" \t") or b"x")
)


def header_value(text: str) -> bytes:
    return text.encode("latin-1", "replace")


# -- forms ----------------------------------------------------------------------------------------------
PARAM_NAMES = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "token",
    "token_type_hint",
    "response_type",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "request",
    "request_uri",
    "authorization_details",
    "claims",
    "dpop_jkt",
    "response_mode",
    "login_hint",
    "csrf_token",
    "username",
    "password",
    "decision",
    "debtor_account",
    "account_1",
    "access_token",
]
PARAM_VALUES = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    "code",
    "S256",
    "plain",
    "openid",
    "openid accounts payments",
    "none",
    "login consent",
    "demo-backend",
    "demo-native",
    "demo-spa",
    "https://localhost:9443/callback",
    "http://127.0.0.1:51234/callback",
    "approve",
    "deny",
    "access_token",
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    "urn:ietf:params:oauth:request_uri:abc",
    "query.jwt",
    "form_post.jwt",
    "0",
    "-1",
    "99999999999",
    "nobody-fuzz",
    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
]
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40)
NAMES = st.sampled_from(PARAM_NAMES) | TEXT.map(lambda s: s[:12])
VALUES = st.one_of(st.sampled_from(PARAM_VALUES), TEXT, st.just(""), JSON_TEXT, TOKENS)


def _encode(pairs: list[tuple[str, str]], plus: bool) -> bytes:
    q = quote_plus if plus else quote
    return "&".join(f"{q(k, safe='')}={q(v, safe='')}" for k, v in pairs).encode()


# Mistakes a form can make on the wire: bad or truncated percent-escapes, escapes of invalid UTF-8,
# raw bytes that are not UTF-8, stray separators, NUL.
FORM_JUNK = st.sampled_from(
    [
        b"%",
        b"%z",
        b"%zz",
        b"%f",
        b"%ff%fe",
        b"%c3%28",
        b"%ed%a0%80",
        b"%f4%90%80%80",
        b"\xff",
        b"\xc3",
        b"&",
        b"&&",
        b"=",
        b"==",
        b"%00",
        b"+",
        b";",
        b"%26",
        b"%3D",
        b"\r\n",
    ]
)


@st.composite
def form_body(draw: st.DrawFn, base: dict[str, str] | None = None, max_huge: int = 60_000) -> bytes:
    """A form body: `base` parameters (a request that would otherwise work) with generated ones added,
    emptied or replaced, encoded with quote or quote_plus. Every other body goes wrong on the wire too:
    a repeated parameter (RFC 6749 §3.1), or encoding mistakes spliced in; one in ten has a huge value
    (below `max_huge` bytes: the body limit is not what is tested here)."""
    params = dict(base or {})
    params.update(draw(st.lists(st.tuples(NAMES, VALUES), max_size=4)))
    if params and draw(st.integers(0, 3)) == 0:
        params.pop(draw(st.sampled_from(sorted(params))))
    pairs = list(params.items())
    mistake = draw(st.sampled_from(["none"] * 6 + ["repeat", "junk"]))
    if pairs and mistake == "repeat":
        pairs.append(draw(st.sampled_from(pairs)))
    pairs = draw(st.permutations(pairs))
    body = _encode(pairs, draw(st.booleans()))
    if draw(st.integers(0, 9)) == 0:
        body += b"&" + quote(draw(NAMES), safe="").encode() + b"=" + b"a" * draw(st.integers(1000, max_huge))
    if mistake == "junk":
        for _ in range(draw(st.integers(1, 2))):
            at = draw(st.integers(0, len(body)))
            body = body[:at] + draw(FORM_JUNK) + body[at:]
    return body


FORM = b"application/x-www-form-urlencoded"
ODD_CONTENT_TYPES = (
    st.sampled_from(
        [
            b"application/x-www-form-urlencoded",
            b"application/x-www-form-urlencoded; charset=UTF-8",
            b"APPLICATION/X-WWW-FORM-URLENCODED",
            b"application/x-www-form-urlencoded;charset=latin-1",
            b"application/x-www-form-urlencoded;;;",
            b"application/x-www-form-urlencoded, text/plain",
            b"application/json",
            b"application/json; charset=utf-16",
            b"text/plain",
            b"multipart/form-data; boundary=x",
            b"multipart/form-data",
            b"application/x-www-form-urlencoded-evil",
            b"*/*",
            b"x",
            b";",
            b"application/jwt",
        ]
    )
    | HEADER_JUNK
)
# Mostly a form (so that the body is read), often anything else, at times none.
CONTENT_TYPES = st.integers(0, 9).flatmap(
    lambda n: st.sampled_from([FORM, b"application/x-www-form-urlencoded; charset=UTF-8"])
    if n < 7
    else st.none()
    if n == 7
    else ODD_CONTENT_TYPES
)

# -- redirect URIs ----------------------------------------------------------------------------------------
REGISTERED = [
    "https://localhost:9443/callback",
    "http://127.0.0.1:51234/callback",
    "com.fingrade.demo:/callback",
    "https://localhost:3000/callback",
]
URI_PIECES = [
    "https://",
    "http://",
    "javascript:",
    "data:",
    "file:///",
    "com.fingrade.demo:",
    "//",
    "\\\\",
    "@",
    "evil.example",
    "localhost",
    "127.0.0.1",
    "[::1]",
    "0x7f.1",
    "LOCALHOST",
    "xn--bcher-kva.example",
    "bücher.example",
    ":9443",
    ":443",
    ":0",
    ":99999",
    ":-1",
    ":",
    "/callback",
    "/callback/",
    "/CALLBACK",
    "/callback/../callback",
    "/%2e%2e/",
    "?x=1",
    "#frag",
    "%00",
    "%0d%0a",
    " ",
    "\t",
    ";x",
    "user:pw@",
    "a.com;x",
    "%2F",
    "..",
    "\u202e",
]


@st.composite
def redirect_uri(draw: st.DrawFn) -> str:
    """A registered redirect URI, or one a character or a component away from one, or a made-up one."""
    base = draw(st.sampled_from(REGISTERED))
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return base
    if kind == 1:  # insert a piece somewhere
        at = draw(st.integers(0, len(base)))
        return base[:at] + draw(st.sampled_from(URI_PIECES)) + base[at:]
    if kind == 2:  # change a character's case or drop one
        at = draw(st.integers(0, len(base) - 1))
        return base[:at] + draw(st.sampled_from([base[at].swapcase(), "", base[at] * 2])) + base[at + 1 :]
    if kind == 3:
        return "".join(draw(st.lists(st.sampled_from(URI_PIECES), min_size=1, max_size=6)))
    return draw(st.text(max_size=40))


# -- authorization details (RFC 9396) ---------------------------------------------------------------------
# RFC 3339 instants, many of them at the ends of what a datetime can hold, with and without offsets.
_EDGE_INSTANTS = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2027-02-29T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-06-01",
    "2026-06-01T00:00:00",
    "2026-06-01T24:00:00Z",
    "2026-06-01T00:00:00+24:00",
    "2026-06-01T00:00:00.9999999999Z",
    "+002026-06-01T00:00:00Z",
    "2026-06-01t00:00:00z",
]
_SOON = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")  # valid: < 180 days
INSTANTS = st.sampled_from(["soon", "edge", "edge", "built", "json"]).flatmap(
    lambda kind: {
        "soon": st.just(_SOON),
        "edge": st.sampled_from(_EDGE_INSTANTS),
        "built": st.builds(
            "{:04d}-{:02d}-{:02d}T{}{}".format,
            st.sampled_from([1, 9999, 2, 9998, 1970, 2026, 2027]) | st.integers(1, 9999),
            st.integers(1, 12),
            st.integers(1, 28),
            st.sampled_from(["00:00:00", "23:59:59", "12:00:00.5"]),
            st.sampled_from(["+01:00", "-01:00", "Z", "+23:59", "-23:59", "+00:00", "-00:00"]),
        ),
        "json": JSON,
    }[kind]
)
ACCOUNT = st.fixed_dictionaries(
    {},
    optional={
        "iban": st.sampled_from(["GB33BUKB20201555555555", "DE00"]) | JSON,
        "sortCodeAccountNumber": st.just("20155512345678") | JSON,
    },
)


@st.composite
def authorization_detail(draw: st.DrawFn) -> Any:
    """An account_information or payment_initiation detail built from valid parts, with members
    replaced by JSON of any type, added or left out; or any JSON at all."""
    kind = draw(st.sampled_from(["account_information", "payment_initiation", "account_information", "json"]))
    if kind == "json":
        return draw(JSON)
    if kind == "account_information":
        detail: dict[str, Any] = {
            "type": "account_information",
            "actions": ["accounts", "balances"],
            "expires_at": draw(INSTANTS),
        }
        optional = {
            "accounts": st.lists(ACCOUNT, max_size=2) | JSON,
            "transactions_from": INSTANTS,
            "transactions_to": INSTANTS,
            "actions": st.lists(st.sampled_from(["accounts", "balances", "transactions", "x"]), max_size=4) | JSON,
        }
    else:
        detail = {
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": "25.00"},
            "creditorName": "Acme Ltd",
            "creditorAccount": {"iban": "GB33BUKB20201555555555"},
        }
        optional = {
            "instructedAmount": st.fixed_dictionaries(
                {},
                optional={
                    "currency": st.sampled_from(["EUR", "GBP", "XXX", "eur"]) | JSON,
                    "amount": st.sampled_from(["0.01", "1e3", "-1", "1.001", "99999999999999999999.00"]) | JSON,
                },
            ),
            "creditorName": JSON,
            "creditorAccount": ACCOUNT | JSON,
            "debtorAccount": ACCOUNT | JSON,
            "remittanceInformationUnstructured": JSON,
            "actions": JSON,
            "locations": JSON,
            "type": JSON,
        }
    for name, strategy in optional.items():
        if _rarely(draw, 8):
            detail[name] = draw(strategy)
    if _rarely(draw, 8):
        detail.pop(draw(st.sampled_from(sorted(detail))))
    if _rarely(draw, 8):
        detail[draw(st.text(max_size=10))] = draw(JSON)
    return detail


AUTHORIZATION_DETAILS = st.sampled_from(["details", "details", "many", "text", "twice"]).flatmap(
    lambda kind: {
        "details": st.lists(authorization_detail(), min_size=1, max_size=2).map(json.dumps),
        "many": st.lists(authorization_detail(), min_size=0, max_size=6).map(json.dumps),
        "text": JSON_TEXT,
        # a member twice, in an otherwise valid detail
        "twice": st.sampled_from(
            [
                '[{"type":"account_information","actions":["accounts"],"actions":["balances"]}]',
                '[{"type":"payment_initiation","type":"account_information","actions":["accounts"]}]',
            ]
        ),
    }[kind]
)
CLAIMS_REQUEST = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "id_token": st.dictionaries(
                st.sampled_from(["openbanking_intent_id", "acr", "sub"]),
                st.one_of(
                    st.none(),
                    st.fixed_dictionaries({}, optional={"value": JSON, "values": JSON, "essential": JSON}),
                    JSON,
                ),
                max_size=3,
            )
            | JSON,
            "userinfo": st.dictionaries(
                st.sampled_from(["openbanking_intent_id", "name"]), st.none() | JSON, max_size=2
            )
            | JSON,
        },
    ).map(json.dumps),
    JSON_TEXT,
    st.just('{"id_token":{"openbanking_intent_id":{"value":"aac-x"}},"id_token":{}}'),
)
