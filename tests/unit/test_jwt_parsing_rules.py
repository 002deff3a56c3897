"""The one JWT entry point (oauth/jwt.py): the shape of the protected header (RFC 7515 §4.1) and of
the claims set (RFC 7519 §4, §7.2) is checked before any caller reads them, and every failure —
base64, UTF-8, JSON, shape or signature — is one JwtError. Property tests put every JSON type in
every position and random bytes in every segment."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey

from fingrade.protocol import jwt
from fingrade.protocol.jws_signatures import key_set, verification_key
from fingrade.protocol.jwt import MAX_NUMERIC_DATE, CompactJwt, JwtError

pytestmark = pytest.mark.fuzz

FAST = settings(max_examples=200, deadline=None)
KEY = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
OTHER = ECKey.generate_key("P-256", parameters={"kid": "k2"}, private=True)
VKEY = verification_key(KEY.as_dict(private=False))
VOTHER = verification_key(OTHER.as_dict(private=False))


def keys(*members: ECKey) -> Any:
    return key_set({"keys": [k.as_dict(private=False) for k in members]})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: Any, claims: Any, signature: str = "AAAA") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{signature}"


def signed(claims: dict[str, Any], **header: Any) -> str:
    return jws.serialize_compact({"alg": "ES256", "kid": "k1", **header}, json.dumps(claims), KEY, algorithms=["ES256"])


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=10,
)
HEADER_NAMES = [
    "alg",
    "kid",
    "typ",
    "cty",
    "jku",
    "x5u",
    "jwk",
    "x5c",
    "x5t",
    "x5t#S256",
    "crit",
    "b64",
    "enc",
    "zip",
    "x-ext",
]
CLAIM_NAMES = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "htm",
    "htu",
    "ath",
    "nonce",
    "azp",
    "acr",
    "sid",
    "at_hash",
    "grant_id",
    "auth_time",
    "cnf",
    "amr",
    "authorization_details",
    "other",
]


def parse_or_error(token: str, **kw: Any) -> CompactJwt | JwtError:
    """The only exception allowed out of the entry point is JwtError."""
    try:
        return jwt.parse(token, **kw)
    except JwtError as exc:
        assert str(exc).isprintable()
        return exc


def assert_shape(parsed: CompactJwt) -> None:
    """What a caller may rely on once parse succeeded."""
    h = parsed.header
    assert isinstance(h.alg, str) and h.alg
    assert h.kid is None or isinstance(h.kid, str)
    assert h.typ is None or isinstance(h.typ, str)
    assert h.jwk is None or isinstance(h.jwk, dict)
    assert h.x5c is None or (h.x5c and all(isinstance(c, str) for c in h.x5c))
    assert "crit" not in h.members  # we understand no extension (RFC 7515 §4.1.11)
    c = parsed.claims
    assert isinstance(c, dict)
    for name in ("iss", "sub", "jti", "client_id", "scope", "htm", "htu", "ath", "grant_id"):
        assert name not in c or isinstance(c[name], str)
    for name in ("exp", "nbf", "iat", "auth_time"):
        if name in c:
            assert type(c[name]) in (int, float) and 0 <= c[name] <= MAX_NUMERIC_DATE
    if "aud" in c:
        assert isinstance(c["aud"], str) or (c["aud"] and all(isinstance(a, str) for a in c["aud"]))
    if "cnf" in c:
        assert isinstance(c["cnf"], dict)
        assert all(isinstance(c["cnf"][k], str) for k in ("jkt", "x5t#S256") if k in c["cnf"])
    assert "authorization_details" not in c or isinstance(c["authorization_details"], list)


# -- every JSON type in every position ------------------------------------------------------------------


@FAST
@given(st.dictionaries(st.sampled_from(HEADER_NAMES), _json, max_size=5), st.sampled_from(["ES256", None]))
def test_header_members_of_any_json_type_rfc7515_4_1(members: dict[str, Any], alg: str | None) -> None:
    header = {"alg": alg, **members} if alg and "alg" not in members else members
    result = parse_or_error(compact(header, {"sub": "x"}))
    if isinstance(result, CompactJwt):
        assert_shape(result)
        assert result.header.members == header


@FAST
@given(st.dictionaries(st.sampled_from(CLAIM_NAMES), _json, max_size=6))
def test_claims_of_any_json_type_rfc7519_4(claims: dict[str, Any]) -> None:
    result = parse_or_error(compact({"alg": "ES256"}, claims))
    if isinstance(result, CompactJwt):
        assert_shape(result)
        assert result.claims == claims


@FAST
@given(_json, _json)
def test_header_and_claims_of_any_json_value(header: Any, claims: Any) -> None:
    """RFC 7515 §5.2 step 3/RFC 7519 §7.2 step 10: both must be JSON objects."""
    result = parse_or_error(compact(header, claims))
    if isinstance(result, CompactJwt):
        assert isinstance(header, dict) and isinstance(claims, dict)
        assert_shape(result)


@FAST
@given(st.binary(max_size=64), st.binary(max_size=64), st.binary(max_size=80))
def test_random_bytes_in_each_segment_rfc7515_7_1(head: bytes, body: bytes, sig: bytes) -> None:
    for token in (
        f"{b64(head)}.{b64(body)}.{b64(sig)}",
        f"{b64(head)}.{b64(json.dumps({'sub': 'x'}).encode())}.AAAA",
        f"{b64(json.dumps({'alg': 'ES256'}).encode())}.{b64(body)}.AAAA",
    ):
        result = parse_or_error(token)
        if isinstance(result, CompactJwt):
            assert_shape(result)


@FAST
@given(st.text(max_size=120))
def test_random_text_is_a_jwt_or_jwt_error(text: str) -> None:
    parse_or_error(text)


@FAST
@given(st.text(alphabet="ABCDEFabcdef0123456789-_=+/.~ \x00\u00e9", max_size=200))
def test_near_base64_text_is_a_jwt_or_jwt_error(text: str) -> None:
    parse_or_error(text)


@FAST
@given(st.binary(max_size=300))
def test_verify_never_raises_anything_but_jwt_error(noise: bytes) -> None:
    """Shape-valid tokens with random signatures, against a key and a key set."""
    token = f"{b64(json.dumps({'alg': 'ES256', 'kid': 'k1'}).encode())}.{b64(b'{}')}.{b64(noise)}"
    parsed = jwt.parse(token)
    for key in (VKEY, keys(KEY, OTHER)):
        with pytest.raises(JwtError):
            jwt.verify(parsed, key, ["ES256"])


# -- the rules, one by one --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [["alg"], None, "ES256", 1, True, {"kid": "k"}, {"alg": ""}, {"alg": 5}, {"alg": ["ES256"]}, {"alg": None}],
)
def test_header_must_be_an_object_with_alg_rfc7515_4_1_1(header: Any) -> None:
    with pytest.raises(JwtError):
        jwt.parse(compact(header, {}))


def test_the_reported_500_token_is_refused() -> None:
    with pytest.raises(JwtError):
        jwt.parse("WyJhbGciXQ.e30.AAAA")


@pytest.mark.parametrize(
    "crit, extra",
    [
        ("exp", {}),
        (5, {}),
        ({"a": 1}, {}),
        ([], {}),
        ([1], {}),
        (["x-ext", "x-ext"], {"x-ext": 1}),
        (["alg"], {}),  # names defined by RFC 7515/7518 must not be listed
        (["x-ext"], {}),  # a listed extension must be present
        (["x-ext"], {"x-ext": 1}),  # ... and understood
        (["b64"], {"b64": False}),  # RFC 7797 unencoded payloads: not supported
    ],
)
def test_crit_rfc7515_4_1_11(crit: Any, extra: dict[str, Any]) -> None:
    with pytest.raises(JwtError, match="crit|b64"):
        jwt.parse(compact({"alg": "ES256", "crit": crit, **extra}, {}))


def test_crit_extension_the_caller_understands_is_accepted_rfc7515_4_1_11() -> None:
    parsed = jwt.parse(compact({"alg": "ES256", "crit": ["x-ext"], "x-ext": 1}, {}), understood_crit={"x-ext"})
    assert parsed.header.members["crit"] == ["x-ext"]


@pytest.mark.parametrize(
    "member, value",
    [
        ("kid", 1),
        ("typ", ["at+jwt"]),
        ("jwk", "EC"),
        ("jwk", ["EC"]),
        ("x5c", "MII"),
        ("x5c", []),
        ("x5c", [1]),
        ("x5t#S256", {}),
        ("cty", None),
        ("b64", False),
        ("b64", "true"),
    ],
)
def test_registered_header_member_types_rfc7515_4_1(member: str, value: Any) -> None:
    with pytest.raises(JwtError, match=member):
        jwt.parse(compact({"alg": "ES256", member: value}, {}))


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": True},
        {"exp": "1"},
        {"exp": -1},
        {"exp": 1e300},
        {"exp": MAX_NUMERIC_DATE + 1},
        {"iat": None},
        {"nbf": [1]},
        {"auth_time": False},
        {"iss": ["a"]},
        {"sub": 1},
        {"jti": {}},
        {"aud": 1},
        {"aud": []},
        {"aud": ["a", 1]},
        {"cnf": "x"},
        {"cnf": {"jkt": 1}},
        {"cnf": {"x5t#S256": []}},
        {"cnf": {"jwk": "x"}},
        {"scope": ["openid"]},
        {"client_id": None},
        {"authorization_details": {}},
        {"amr": "pwd"},
        {"htu": 1},
    ],
)
def test_registered_claim_types_rfc7519_4_1(claims: dict[str, Any]) -> None:
    with pytest.raises(JwtError, match=next(iter(claims))):
        jwt.parse(compact({"alg": "ES256"}, claims))


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 0},
        {"exp": MAX_NUMERIC_DATE},
        {"iat": 1700000000.5},
        {"aud": "a"},
        {"aud": ["a", "b"]},
        {"cnf": {"jkt": "x", "other": 1}},
        {"nonce": 5},
        {"custom": [1, {"a": None}]},
    ],
)
def test_registered_claim_types_accepted_rfc7519_4_1(claims: dict[str, Any]) -> None:
    assert jwt.parse(compact({"alg": "ES256"}, claims)).claims == claims


@pytest.mark.parametrize(
    "token",
    [
        b64(b'{"alg":"none","alg":"ES256"}') + "." + b64(b"{}") + ".AAAA",
        b64(b'{"alg":"ES256"}') + "." + b64(b'{"iss":"a","iss":"b"}') + ".AAAA",
        b64(b'{"alg":"ES256","jwk":{"kty":"EC","kty":"RSA"}}') + "." + b64(b"{}") + ".AAAA",
        b64(b'{"alg":"ES256"}') + "." + b64(b'{"cnf":{"jkt":"a","jkt":"b"}}') + ".AAAA",
    ],
)
def test_duplicate_members_refused_rfc7515_5_2_rfc7519_4(token: str) -> None:
    with pytest.raises(JwtError, match="repeated"):
        jwt.parse(token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",  # RFC 7515 §7.1: three parts (a JWE has five)
        b64(b'{"alg":"ES256"}') + "." + b64(b"{}") + ".AA==",  # padding
        b64(b'{"alg":"ES256"}') + "=." + b64(b"{}") + ".AAAA",
        "eyJhbGciOiJFUzI1NiJ9+." + b64(b"{}") + ".AAAA",  # not the URL-safe alphabet
        b64(b'{"alg":"ES256"}') + "." + b64(b"{}") + ".AAB",  # non-canonical trailing bits
        b64(b'{"alg":"ES256"}') + "." + b64(b"{}") + ".A",  # impossible length
        b64(b'{"alg":"ES256"}') + ".." + "AAAA",  # detached payload
        b64(b'{"alg":"\xff"}') + "." + b64(b"{}") + ".AAAA",  # invalid UTF-8
        b64(b'{"alg":"ES256","kid":"\\ud800"}') + "." + b64(b"{}") + ".AAAA",  # lone surrogate
        b64(b'{"alg":"ES256"}') + "." + b64(b'{"exp":NaN}') + ".AAAA",
        b64(b'{"alg":"ES256"}') + "." + b64(b'{"exp":1e999}') + ".AAAA",
        b64(b'{"alg":"ES256"}') + "." + b64(b'{"iat":' + b"9" * 30 + b"}") + ".AAAA",
        b64(b'{"alg":"ES256"}') + "." + b64(b"[" * 50 + b"]" * 50) + ".AAAA",
        b64(b'{"alg":"ES256"}') + "." + b64(b"{}") + ".AAAA\u00e9",  # not ASCII
    ],
)
def test_malformed_compact_serialisations_refused_rfc7515_7_1(token: str) -> None:
    with pytest.raises(JwtError):
        jwt.parse(token)


def test_length_bound() -> None:
    token = signed({"sub": "x" * 500})
    assert jwt.parse(token, max_length=len(token)).claims["sub"] == "x" * 500
    with pytest.raises(JwtError):
        jwt.parse(token, max_length=len(token) - 1)


def test_parse_returns_typed_values_and_verify_returns_the_key() -> None:
    token = signed({"iss": "a", "aud": ["b"], "exp": 2000000000, "cnf": {"jkt": "t"}}, typ="at+jwt")
    parsed = jwt.parse(token)
    assert (parsed.header.alg, parsed.header.kid, parsed.header.typ) == ("ES256", "k1", "at+jwt")
    assert parsed.claims["aud"] == ["b"]
    head, body, sig = token.split(".")
    assert parsed.signing_input == f"{head}.{body}".encode()
    assert b64(parsed.signature) == sig
    assert jwt.verify(parsed, keys(OTHER, KEY), ["ES256"]).kid == "k1"
    assert jwt.verify(parsed, VKEY, ["ES256"]) is VKEY


@pytest.mark.parametrize("case", ["other-key", "alg-not-allowed", "unknown-kid", "tampered"])
def test_verify_refusals_are_jwt_error_rfc7515_5_2(case: str) -> None:
    token = signed({"sub": "x"})
    key: Any = VKEY
    algs = ["ES256"]
    if case == "other-key":
        key = VOTHER
    elif case == "alg-not-allowed":
        algs = ["PS256"]
    elif case == "unknown-kid":
        key = keys(OTHER)
    else:
        head, _, sig = token.split(".")
        token = f"{head}.{b64(json.dumps({'sub': 'y'}).encode())}.{sig}"
    with pytest.raises(JwtError):
        jwt.verify(jwt.parse(token), key, algs)
