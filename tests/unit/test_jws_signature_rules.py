"""JWS signatures on `cryptography` (protocol/jws_signatures.py, reached through protocol/jwt.verify)
held against joserfc, which signed and verified every token here before: differential properties.

- What the server signs (ES256, PS256, EdDSA) verifies under joserfc and under our verifier, and its
  header and payload are byte for byte what joserfc writes (RFC 7515 §7.1).
- What joserfc signs verifies under ours.
- A token is accepted by `jwt.parse` + `jwt.verify` exactly when it was accepted by `jwt.parse` +
  joserfc's `deserialize_compact` (RFC 7515 §5.2): after any bit or byte of any segment is changed,
  after truncation, with the wrong key, the wrong alg, an alg that does not fit the key type, high-S
  or out-of-range R and S and signatures of the wrong length (RFC 7518 §3.4), PS256 (§3.5), EdDSA
  (RFC 8037 §3.1), `none` and HS256 keyed with the public key (the classic confusion), under the
  strict and the DPoP header rules, and with the key chosen from a JWKS by kid (RFC 7515 §4.1.4,
  RFC 7517 §4.2-§4.5) the same key is returned. The one thing ours refuses is JwtError.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import example, given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey, guess_key
from joserfc.jws import JWSRegistry

from fingrade.oauth.context import Core
from fingrade.oauth.token_formats import mint_access_token, mint_id_token
from fingrade.protocol import jwt
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.jose import ALLOWED_ALGS, check_key_strength
from fingrade.protocol.jws_signatures import (
    KEY_CACHE_SIZE,
    JwkError,
    Signer,
    VerificationKey,
    VerificationKeySet,
    _cached_key,
    key_set,
    verification_key,
)
from fingrade.protocol.jwt import JwtError

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.keys,
    pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning"),  # EdDSA, 1024-bit RSA
]

FAST = settings(max_examples=150, deadline=None)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    WEAK_RSA = RSAKey.generate_key(1024, parameters={"kid": "weak"}, private=True)
EC1 = ECKey.generate_key("P-256", parameters={"kid": "ec1"}, private=True)
EC2 = ECKey.generate_key("P-256", parameters={"kid": "ec2"}, private=True)
EC384 = ECKey.generate_key("P-384", parameters={"kid": "ec384"}, private=True)
RSA1 = RSAKey.generate_key(2048, parameters={"kid": "rsa1"}, private=True)
RSA2 = RSAKey.generate_key(2048, parameters={"kid": "rsa2"}, private=True)
ED1 = OKPKey.generate_key("Ed25519", parameters={"kid": "ed1"}, private=True)
ED2 = OKPKey.generate_key("Ed25519", parameters={"kid": "ed2"}, private=True)
ED448 = OKPKey.generate_key("Ed448", parameters={"kid": "ed448"}, private=True)
X25519 = OKPKey.generate_key("X25519", parameters={"kid": "x"}, private=True)

POOL = [EC1, EC2, EC384, RSA1, RSA2, ED1, ED2, ED448, WEAK_RSA]
ALG_OF = {"EC": "ES256", "RSA": "PS256", "OKP": "EdDSA"}
SIGNING = [(EC1, "ES256"), (RSA1, "PS256"), (ED1, "EdDSA"), (ED448, "EdDSA"), (EC384, "ES384")]
SIGNERS = {
    alg: (key, Signer(key.as_dict(private=True), alg, key.kid or ""))
    for key, alg in [(EC1, "ES256"), (RSA1, "PS256"), (ED1, "EdDSA")]
}
SIGNERS["Ed448"] = (ED448, Signer(ED448.as_dict(private=True), "EdDSA", "ed448"))

# The DPoP rules on both sides: any header member, a 4096-character header (RFC 9449 §4.3).
DPOP_REGISTRY = JWSRegistry(algorithms=list(ALLOWED_ALGS), strict_check_header=False)
DPOP_REGISTRY.max_header_length = 4096
DPOP_RULES = jwt.HeaderRules(registered_only=False, max_header_segment=4096)
ALG_LISTS = [list(ALLOWED_ALGS), ["ES256"], ["PS256"], ["EdDSA"], ["ES256", "PS256"], ["HS256"], ["RS256", "HS256"]]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


NONE_HEADER = b64(b'{"alg":"none"}')


def public(key: Any) -> VerificationKey:
    return verification_key(key.as_dict(private=False))


def joserfc_sign(key: Any, alg: str, claims: Any, **header: Any) -> str:
    """A token signed by joserfc's own algorithm implementation, with any header (even one joserfc's
    serializer would refuse to write, such as a jku that is not a URL)."""
    head = b64(json.dumps({"alg": alg, **header}).encode())
    signing_input = f"{head}.{b64(orjson.dumps(claims))}"
    return f"{signing_input}.{b64(JWSRegistry.algorithms[alg].sign(signing_input.encode(), key))}"


def with_header(token: str, header: dict[str, Any]) -> str:
    _, body, sig = token.split(".")
    return f"{b64(json.dumps(header).encode())}.{body}.{sig}"


def with_signature(token: str, signature: bytes) -> str:
    return token.rsplit(".", 1)[0] + "." + b64(signature)


def before(token: str, key: Any, algs: list[str], dpop: bool = False) -> Any:
    """What verification answered before: jwt.parse, then joserfc's deserialize_compact and the key it
    chose, every joserfc failure a refusal (None)."""
    try:
        jwt.parse(token)
    except JwtError:
        return None
    try:
        registry = DPOP_REGISTRY if dpop else None
        obj = jws.deserialize_compact(token, key, algorithms=algs, registry=registry)
        return guess_key(key, obj, use="sig")
    except (JoseError, ValueError, TypeError, KeyError):
        return None


def now(token: str, key: VerificationKey | VerificationKeySet, algs: list[str], dpop: bool = False) -> Any:
    """What verification answers now: jwt.parse, then jwt.verify. Anything but JwtError escapes."""
    try:
        return jwt.verify(jwt.parse(token), key, algs, DPOP_RULES if dpop else jwt.STRICT)
    except JwtError as exc:
        assert str(exc).isprintable()
        return None


def same_verdict(token: str, jose_key: Any, our_key: Any, algs: list[str], dpop: bool = False) -> bool:
    """Both accept (with the same key) or both refuse; returns whether they accepted."""
    old, new = before(token, jose_key, algs, dpop), now(token, our_key, algs, dpop)
    assert (old is None) == (new is None), (token, algs, old, new)
    if old is not None:
        assert old.thumbprint() == new.thumbprint
    return old is not None


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_value = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), _text, st.lists(_text, max_size=3))
claims_st = st.dictionaries(st.sampled_from(["sub", "iss", "jti", "scope", "x", "y", "z"]), _text, max_size=4).flatmap(
    lambda base: st.dictionaries(st.sampled_from(["n", "list", "flag", "nested"]), _value, max_size=3).map(
        lambda extra: {**base, **extra}
    )
)
signing_st = st.sampled_from(SIGNING)


# -- (a) what we sign, (b) what joserfc signs ----------------------------------------------------------


@FAST
@given(st.sampled_from(sorted(SIGNERS)), claims_st, st.sampled_from(["at+jwt", "JWT", "token-introspection+jwt"]))
def test_our_signatures_verify_under_joserfc_and_ours_rfc7515_5_1(which: str, claims: Any, typ: str) -> None:
    """RFC 7518 §3.4 (ES256 R || S), §3.5 (PS256, 32-octet salt), RFC 8037 §3.1 (Ed25519, Ed448)."""
    key, signer = SIGNERS[which]
    token = signer.sign(typ, orjson.dumps(claims))
    obj = jws.deserialize_compact(token, public_jose(key), algorithms=[signer.alg])
    assert obj.protected == {"alg": signer.alg, "kid": signer.kid, "typ": typ}
    assert orjson.loads(obj.payload) == claims
    assert now(token, public(key), [signer.alg]) is public(key)
    # The same header and payload, to the byte, as joserfc writes them; EdDSA is deterministic, so
    # its whole token is the same.
    theirs = jws.serialize_compact(
        {"alg": signer.alg, "kid": signer.kid, "typ": typ}, orjson.dumps(claims), key, algorithms=[signer.alg]
    )
    assert token.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0]
    if signer.alg == "EdDSA":
        assert token == theirs


def public_jose(key: Any) -> Any:
    return type(key).import_key(key.as_dict(private=False))


@FAST
@given(signing_st, claims_st, st.sampled_from([{}, {"typ": "JWT"}, {"kid": "k"}, {"kid": "k", "typ": "dpop+jwt"}]))
def test_joserfc_signatures_verify_under_ours_rfc7515_5_2(signing: Any, claims: Any, header: Any) -> None:
    key, alg = signing
    token = joserfc_sign(key, alg, claims, **header)
    accepted = same_verdict(token, public_jose(key), public(key), list(ALLOWED_ALGS))
    assert accepted == (key is not EC384)  # ES256 is P-256 only (RFC 7518 §3.4)


def test_a_signing_key_must_fit_its_algorithm_as_joserfc_requires() -> None:
    for key, alg in [(EC384, "ES256"), (RSA1, "ES256"), (EC1, "PS256"), (EC1, "EdDSA"), (X25519, "EdDSA")]:
        with pytest.raises(JwkError):
            Signer(key.as_dict(private=True), alg, "k")
    for members in [{"use": "enc"}, {"alg": "PS256"}, {"key_ops": ["verify"]}]:
        with pytest.raises(JwkError):
            Signer({**EC1.as_dict(private=True), **members}, "ES256", "k")
    with pytest.raises(JwkError):
        Signer(EC1.as_dict(private=False), "ES256", "k")  # no private key


# -- (c) the same refusals -----------------------------------------------------------------------------


@FAST
@given(signing_st, claims_st, st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 7))
def test_any_bit_flip_in_any_segment_rfc7515_5_2(signing: Any, claims: Any, segment: int, at: int, bit: int) -> None:
    key, alg = signing
    parts = joserfc_sign(key, alg, claims, kid=key.kid).split(".")
    raw = bytearray(unb64(parts[segment]))
    if raw:
        raw[at % len(raw)] ^= 1 << bit
    parts[segment] = b64(bytes(raw))
    token = ".".join(parts)
    accepted = same_verdict(token, public_jose(key), public(key), list(ALLOWED_ALGS))
    assert not accepted or not raw


@FAST
@given(signing_st, claims_st, st.integers(0, 10**6), st.sampled_from("AQgw-_.=+/ eyJ0\u00e9"))
def test_any_character_changed_rfc7515_5_2(signing: Any, claims: Any, at: int, char: str) -> None:
    key, alg = signing
    token = joserfc_sign(key, alg, claims)
    at %= len(token)
    changed = token[:at] + char + token[at + 1 :]
    assert not same_verdict(changed, public_jose(key), public(key), list(ALLOWED_ALGS)) or changed == token


@FAST
@given(signing_st, claims_st, st.integers(1, 10**6), st.integers(1, 200))
def test_truncation_rfc7515_7_1(signing: Any, claims: Any, cut: int, sig_cut: int) -> None:
    key, alg = signing
    token = joserfc_sign(key, alg, claims)
    for short in (token[: cut % len(token)], with_signature(token, unb64(token.rsplit(".", 1)[1])[:-sig_cut])):
        assert not same_verdict(short, public_jose(key), public(key), list(ALLOWED_ALGS))


@pytest.mark.parametrize("signing", SIGNING, ids=lambda s: f"{s[0].kid}-{s[1]}" if isinstance(s, tuple) else "")
@pytest.mark.parametrize("algs", ALG_LISTS, ids=",".join)
def test_wrong_key_wrong_alg_and_alg_key_type_mismatch_rfc7515_5_2(signing: Any, algs: list[str]) -> None:
    """Every key of the pool, every alg list a caller could pass, and the header alg swapped for each
    other alg with the signature kept: the same verdicts (an alg that does not fit the key type, e.g.
    PS256 on an EC key, is refused by both)."""
    key, alg = signing
    token = joserfc_sign(key, alg, {"sub": "x"})
    for header_alg in [alg, "ES256", "PS256", "EdDSA", "ES384", "RS256", "HS256", "none"]:
        variant = token if header_alg == alg else with_header(token, {"alg": header_alg})
        for other in POOL:
            accepted = same_verdict(variant, public_jose(other), public(other), algs)
            assert accepted == (other is key and header_alg == alg and alg in algs and key is not EC384)


def test_es256_high_s_is_accepted_by_both_rfc7518_3_4() -> None:
    """ECDSA verification accepts S and n - S alike (JWS does not require low S): neither verifier
    refuses the other half, and the tests pin that both agree."""
    token = joserfc_sign(EC1, "ES256", {"sub": "x"})
    sig = unb64(token.rsplit(".", 1)[1])
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    flipped = with_signature(token, r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big"))
    assert same_verdict(flipped, public_jose(EC1), public(EC1), ["ES256"])


@pytest.mark.parametrize(
    "r_s",
    [
        "r=0",
        "s=0",
        "r=n",
        "s=n",
        "r=max",
        "s=max",
        "r+n",
        "s+n",
        "r=1,s=1",
    ],
)
def test_es256_r_and_s_out_of_range_refused_rfc7518_3_4(r_s: str) -> None:
    token = joserfc_sign(EC1, "ES256", {"sub": "x"})
    sig = unb64(token.rsplit(".", 1)[1])
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    top = 2**256 - 1
    r, s = {
        "r=0": (0, s),
        "s=0": (r, 0),
        "r=n": (P256_ORDER, s),
        "s=n": (r, P256_ORDER),
        "r=max": (top, s),
        "s=max": (r, top),
        "r+n": (r + P256_ORDER if r + P256_ORDER <= top else top, s),
        "s+n": (r, s + P256_ORDER if s + P256_ORDER <= top else top),
        "r=1,s=1": (1, 1),
    }[r_s]
    forged = with_signature(token, r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    assert not same_verdict(forged, public_jose(EC1), public(EC1), ["ES256"])


@pytest.mark.parametrize("length", [0, 1, 31, 32, 63, 65, 66, 70, 72, 96, 128, 132])
def test_es256_signature_of_the_wrong_length_refused_rfc7518_3_4(length: int) -> None:
    """R || S is exactly 64 octets for ES256: shorter, longer, DER-shaped (70-72) or another
    curve's length (96: P-384, 132: P-521) is refused before any arithmetic."""
    token = joserfc_sign(EC1, "ES256", {"sub": "x"})
    sig = unb64(token.rsplit(".", 1)[1])
    forged = with_signature(token, (sig * 3)[:length])
    assert not same_verdict(forged, public_jose(EC1), public(EC1), ["ES256"])


def test_es256_der_signature_refused_rfc7518_3_4() -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    token = joserfc_sign(EC1, "ES256", {"sub": "x"})
    sig = unb64(token.rsplit(".", 1)[1])
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    assert not same_verdict(with_signature(token, der), public_jose(EC1), public(EC1), ["ES256"])


@pytest.mark.parametrize("length", [0, 128, 255, 257, 512])
def test_ps256_signature_of_the_wrong_length_refused_rfc7518_3_5(length: int) -> None:
    token = joserfc_sign(RSA1, "PS256", {"sub": "x"})
    sig = unb64(token.rsplit(".", 1)[1])
    forged = with_signature(token, (sig * 2)[:length])
    assert not same_verdict(forged, public_jose(RSA1), public(RSA1), ["PS256"])


@pytest.mark.parametrize("key, length", [(ED1, 63), (ED1, 65), (ED1, 114), (ED448, 64), (ED448, 113), (ED448, 0)])
def test_eddsa_signature_of_the_wrong_length_refused_rfc8037_3_1(key: Any, length: int) -> None:
    token = joserfc_sign(key, "EdDSA", {"sub": "x"})
    sig = unb64(token.rsplit(".", 1)[1])
    forged = with_signature(token, (sig * 2)[:length])
    assert not same_verdict(forged, public_jose(key), public(key), ["EdDSA"])


def test_ps256_uses_a_32_octet_salt_rfc7518_3_5() -> None:
    """A PSS signature with another salt length is not PS256: refused by both."""
    from cryptography.hazmat.primitives.asymmetric.padding import MGF1, PSS
    from cryptography.hazmat.primitives.hashes import SHA256

    token = joserfc_sign(RSA1, "PS256", {"sub": "x"})
    message = token.rsplit(".", 1)[0].encode()
    for salt in (0, 20, 64):
        sig = RSA1.private_key.sign(message, PSS(mgf=MGF1(SHA256()), salt_length=salt), SHA256())
        assert not same_verdict(with_signature(token, sig), public_jose(RSA1), public(RSA1), ["PS256"])


@pytest.mark.parametrize("key", [EC1, RSA1, ED1])
def test_none_and_hs256_keyed_with_the_public_key_refused_rfc7518_3_1(key: Any) -> None:
    """`none` (RFC 7518 §3.6) and the algorithm confusion: HS256 keyed with the verifier's public key
    (its PEM, its DER, its JWK) is refused under every alg list a caller might pass."""
    body = b64(b'{"sub":"admin"}')
    unsigned = f"{NONE_HEADER}.{body}."
    pub = key.public_key
    secrets = [
        pub.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        pub.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
        json.dumps(key.as_dict(private=False)).encode(),
    ]
    head = b64(b'{"alg":"HS256"}')
    confused = [
        f"{head}.{body}.{b64(hmac.new(secret, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"
        for secret in secrets
    ]
    for token in [unsigned, *confused]:
        for algs in ALG_LISTS:
            assert not same_verdict(token, public_jose(key), public(key), algs)


def test_none_refused_even_if_a_caller_listed_it_rfc7518_3_6() -> None:
    """Stricter than joserfc on purpose: `none` is never implemented, whatever the list says."""
    token = f"{NONE_HEADER}.{b64(b'{}')}."
    assert now(token, public(EC1), ["none", "ES256"]) is None


def test_rsa_below_2048_bits_fapi2_sp_5_4_1() -> None:
    """A 1024-bit RSA key: both verifiers check its PS256 signature alike, and the strength check every
    caller runs on the key that verified refuses it, whichever side's key object it is given."""
    token = joserfc_sign(WEAK_RSA, "PS256", {"sub": "x"})
    for algs in (list(ALLOWED_ALGS), ["PS256"]):
        assert same_verdict(token, public_jose(WEAK_RSA), public(WEAK_RSA), algs)
    for obj in (public(WEAK_RSA).public, public_jose(WEAK_RSA).public_key):
        with pytest.raises(OAuthError, match="2048"):
            check_key_strength(obj, lambda d: OAuthError("invalid_client", d, 401))
    check_key_strength(public(EC384).public, lambda d: OAuthError("invalid_client", d, 401))  # P-384 is strong


@pytest.mark.parametrize("signing", [(EC384, "ES384"), (RSA1, "RS256"), (RSA1, "PS384"), (RSA1, "PS512")])
def test_algorithms_outside_fapi_refused_even_if_listed_fapi2_sp_5_4_1(signing: Any) -> None:
    """Stricter than joserfc on purpose: only ES256, PS256 and EdDSA are implemented, so a caller
    listing another algorithm (none does) still gets a refusal rather than a weaker check."""
    key, alg = signing
    token = joserfc_sign(key, alg, {"sub": "x"})
    assert now(token, public(key), [alg, *ALLOWED_ALGS]) is None


# -- header rules, strict and DPoP ---------------------------------------------------------------------


_header_value = st.one_of(
    _text,
    st.sampled_from(["https://a.example/jwks", "http://a", "ftp://a", "a" * 300, "b" * 2000]),
)


@FAST
@given(
    signing_st,
    st.dictionaries(
        st.sampled_from(["kid", "typ", "cty", "jku", "x5u", "x5t", "x5t#S256", "x-ext", "nonce", "jwk"]),
        _header_value,
        max_size=4,
    ),
    st.booleans(),
)
def test_header_rules_strict_and_dpop_rfc7515_4_1_rfc9449_4_3(signing: Any, header: Any, dpop: bool) -> None:
    """Unknown members (refused unless DPoP), URL-valued jku and x5u, and the header size limits."""
    key, alg = signing
    if "jwk" in header:
        header["jwk"] = key.as_dict(private=False)
    token = joserfc_sign(key, alg, {"sub": "x"}, **header)
    same_verdict(token, public_jose(key), public(key), list(ALLOWED_ALGS), dpop)


def test_crit_listing_a_registered_member_rfc7515_4_1_11() -> None:
    token = joserfc_sign(EC1, "ES256", {"sub": "x"}, crit=["b64"], b64=True)
    parsed = jwt.parse(token, understood_crit={"b64"})
    assert jwt.verify(parsed, public(EC1), ["ES256"]) is public(EC1)
    other = joserfc_sign(EC1, "ES256", {"sub": "x"}, crit=["x-ext"], **{"x-ext": 1})
    with pytest.raises(JwtError):
        jwt.verify(jwt.parse(other, understood_crit={"x-ext"}), public(EC1), ["ES256"])


@pytest.mark.parametrize("kid_length", [300, 360, 400, 3000])
def test_header_size_limits_strict_and_dpop(kid_length: int) -> None:
    """512 characters of protected header (4096 for DPoP proofs, whose header carries a jwk)."""
    token = joserfc_sign(EC1, "ES256", {"sub": "x"}, kid="k" * kid_length)
    header_length = len(token.split(".")[0])
    assert same_verdict(token, public_jose(EC1), public(EC1), ["ES256"]) == (header_length <= 512)
    assert same_verdict(token, public_jose(EC1), public(EC1), ["ES256"], dpop=True) == (header_length <= 4096)


# -- the key chosen from a key set ---------------------------------------------------------------------


_member = st.fixed_dictionaries(
    {
        "base": st.sampled_from([EC1, EC2, RSA1, ED1, EC384]),
        "kid": st.sampled_from([None, "a", "a", "b", ""]),
        "alg": st.sampled_from([None, None, "same", "ES256", "PS256", "EdDSA", "RS256"]),
        "use": st.sampled_from([None, None, "sig", "enc"]),
        "key_ops": st.sampled_from([None, None, ["verify"], ["sign"], ["sign", "verify"], ["encrypt"]]),
    }
)


def _m(base: Any, **members: Any) -> dict[str, Any]:
    return {"kid": None, "alg": None, "use": None, "key_ops": None, **members, "base": base}


def _jwk(member: dict[str, Any]) -> dict[str, Any]:
    base = member["base"]
    jwk = {k: v for k, v in base.as_dict(private=False).items() if k not in ("kid", "alg", "use", "key_ops")}
    for name in ("kid", "use", "key_ops"):
        if member[name] is not None:
            jwk[name] = member[name]
    if member["alg"] is not None:
        jwk["alg"] = ALG_OF[base.key_type] if member["alg"] == "same" else member["alg"]
    return jwk


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_member, min_size=1, max_size=4).flatmap(
        # The signer is mostly one of the set's keys, so several entries share it and its kid.
        lambda members: st.tuples(st.just(members), st.sampled_from([*(m["base"] for m in members), EC2]))
    ),
    st.sampled_from(["absent", "a", "a", "b", "", "thumbprint", "unknown"]),
)
# Two entries by the same kid, the first passed over for its use, its alg or its key_ops; a one-key
# set without kid whose key is for encryption; a kid-less key found by its thumbprint.
@example(([_m(EC1, kid="a", use="enc"), _m(EC1, kid="a")], EC1), "a")
@example(([_m(EC1, kid="a", alg="PS256"), _m(EC1, kid="a")], EC1), "a")
@example(([_m(EC1, kid="a", key_ops=["sign"]), _m(EC1, kid="a")], EC1), "a")
@example(([_m(EC1, kid="a", alg="same"), _m(EC1, kid="a", use="sig")], EC1), "a")
@example(([_m(EC1, use="enc")], EC1), "absent")
@example(([_m(RSA1), _m(EC1)], EC1), "thumbprint")
@example(([_m(RSA1), _m(EC1)], EC1), "absent")
@example(([_m(EC1, kid="")], EC1), "")
def test_key_chosen_by_kid_as_joserfc_chose_it_rfc7515_4_1_4_rfc7517_4(drawn: Any, kid: str) -> None:
    """One-key sets without kid, kids matched against the JWK's kid or, when it has none, its RFC 7638
    thumbprint, `use` and `alg` filters (RFC 7517 §4.2, §4.4), `key_ops` (§4.3): the same key or none."""
    members, signer = drawn
    jwks = [_jwk(m) for m in members]
    try:
        theirs: Any = KeySet.import_key_set({"keys": [dict(j) for j in jwks]})
    except (JoseError, ValueError, TypeError, KeyError):
        theirs = None
    try:
        ours: Any = key_set({"keys": jwks})
    except JwkError:
        ours = None
    assert (theirs is None) == (ours is None)
    if ours is None:
        return
    alg = "ES384" if signer is EC384 else ALG_OF[signer.key_type]
    header = {} if kid == "absent" else {"kid": signer.thumbprint() if kid == "thumbprint" else kid}
    token = joserfc_sign(signer, alg, {"sub": "x"}, **header)
    old, new = before(token, theirs, list(ALLOWED_ALGS)), now(token, ours, list(ALLOWED_ALGS))
    assert (old is None) == (new is None)
    if old is not None:
        index_old = next(i for i, k in enumerate(theirs.keys) if k is old)
        assert ours.keys[index_old] is new


def test_key_sets_skip_unknown_key_types_rfc7517_5() -> None:
    jwks = {"keys": [{"kty": "PQC", "kid": "pq"}, EC1.as_dict(private=False)]}
    ours = key_set(jwks)
    assert [k.kid for k in ours.keys] == ["ec1"]
    for bad in ({"keys": [{"kty": "PQC"}]}, {"keys": [{"kid": "no-kty"}]}, {"keys": "x"}, {}):
        with pytest.raises(JwkError):
            key_set(bad)


@pytest.mark.parametrize(
    "jwk",
    [
        EC1.as_dict(private=True),  # private
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "oct"},
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"},  # not on the curve
        {"kty": "RSA", "n": 5, "e": "AQAB"},
        {"kty": "OKP", "crv": "Ed25519"},
        {"kty": "XYZ"},
        "not a JWK",
    ],
)
def test_unusable_jwks_are_jwk_errors(jwk: Any) -> None:
    with pytest.raises(JwkError):
        verification_key(jwk)


def test_each_key_verifies_under_one_algorithm_only_rfc7518_3_rfc8037_3_1() -> None:
    """ES256 on P-256 only, PS256 on RSA, EdDSA on Ed25519 and Ed448; other curves verify nothing."""
    assert [public(k).verifies for k in (EC1, EC384, RSA1, WEAK_RSA, ED1, ED448, X25519)] == [
        "ES256",
        None,
        "PS256",
        "PS256",
        "EdDSA",
        "EdDSA",
        None,
    ]
    for members in [{"use": "enc"}, {"alg": "PS256"}, {"key_ops": ["sign"]}]:
        assert verification_key({**EC1.as_dict(private=False), **members}).verifies is None
    for members in [{"use": "sig"}, {"alg": "ES256"}, {"key_ops": ["verify"]}, {"alg": ""}]:
        assert verification_key({**EC1.as_dict(private=False), **members}).verifies == "ES256"


def test_key_objects_are_built_once_per_distinct_jwk() -> None:
    """The cache is bounded, keyed by content: the same JWK in another member order is one entry."""
    assert _cached_key.cache_info().maxsize == KEY_CACHE_SIZE
    jwk = ED2.as_dict(private=False)
    first = verification_key(jwk)
    assert verification_key(dict(reversed(list(jwk.items())))) is first
    assert first.thumbprint == ED2.thumbprint()
    assert verification_key({**jwk, "use": "sig"}) is not first  # other members: another entry
    assert verification_key({**jwk, "use": "sig"}).thumbprint == first.thumbprint  # same RFC 7638 identity


# -- the server's own tokens ---------------------------------------------------------------------------


def test_minted_tokens_keep_their_form_and_verify_under_joserfc_rfc9068_2_1(run, base_core: Core) -> None:
    """Access tokens and ID tokens from the active key: the header {"alg", "kid", "typ"} written as
    joserfc wrote it, verifiable by joserfc with the published JWKS and by our own check."""
    view = run(base_core.keys.view())
    published = KeySet.import_key_set({"keys": view.published})
    access, claims = run(mint_access_token(base_core, sub="u", client_id="c", scope="accounts", grant_id=None))
    id_token = run(
        mint_id_token(base_core, sub="u", client_id="c", nonce="n", auth_time=claims["iat"], access_token=access)
    )
    for token, typ in ((access, "at+jwt"), (id_token, "JWT")):
        expected = {"alg": view.active.alg, "kid": view.active.kid, "typ": typ}
        assert unb64(token.split(".")[0]) == json.dumps(expected, separators=(",", ":")).encode()
        obj = jws.deserialize_compact(token, published, algorithms=list(ALLOWED_ALGS))
        assert jwt.verify(jwt.parse(token), view.verify_set, ALLOWED_ALGS).kid == view.active.kid
    assert orjson.loads(jws.deserialize_compact(access, published, algorithms=list(ALLOWED_ALGS)).payload) == claims
    assert obj.protected["typ"] == "JWT"


def test_the_signing_key_objects_are_kept_across_reloads(run, base_core: Core) -> None:
    first = run(base_core.keys.view())
    assert run(base_core.keys.reload()).signer is first.signer
