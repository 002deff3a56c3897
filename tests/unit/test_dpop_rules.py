"""DPoP proof validation, every check of RFC 9449 §4.3, on a real core (SQLite one-time store)."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from joserfc import jws
from joserfc.jwk import OctKey, OKPKey, RSAKey
from support.dpop import DPoPKey

from fingrade.oauth.context import Core
from fingrade.protocol.dpop import DPoPError, current_nonce, normalise_htu, verify_proof

pytestmark = pytest.mark.dpop

TOKEN_URL = "https://as.example.com/token"


@pytest.fixture
def key() -> DPoPKey:
    return DPoPKey()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def check(
    run, core: Core, proof: str | None, method: str = "POST", url: str = TOKEN_URL, token: str | None = None
) -> str:
    return run(verify_proof(core, proof, method, url, access_token=token))


def refused(run, core: Core, proof: str | None, **kw) -> str:
    with pytest.raises(DPoPError) as info:
        check(run, core, proof, **kw)
    assert info.value.error == "invalid_dpop_proof" and info.value.status == 400  # RFC 9449 §5
    return info.value.description


def test_valid_proof_returns_rfc7638_thumbprint(run, base_core: Core, key: DPoPKey) -> None:
    """RFC 9449 §4.3 (all checks pass) and §6.1: the result is the JWK SHA-256 thumbprint (RFC 7638)."""
    assert check(run, base_core, key.proof("POST", TOKEN_URL)) == key.jkt


def test_4_3_1_two_dpop_headers_refused(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3 item 1: more than one DPoP header (joined with ", " by the web layer) is refused."""
    joined = key.proof("POST", TOKEN_URL) + ", " + key.proof("POST", TOKEN_URL)
    assert "exactly one" in refused(run, base_core, joined)


def test_missing_proof_refused(run, base_core: Core) -> None:
    refused(run, base_core, None)


@pytest.mark.parametrize("value", ["garbage", "a.b.c", "a.b", "ey.ey.ey.ey.ey"])
def test_4_3_2_not_a_jwt_refused(run, base_core: Core, value: str) -> None:
    """§4.3 item 2: the header value must be a single well-formed JWT."""
    refused(run, base_core, value)


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "dpop"])
def test_4_3_4_wrong_typ_refused(run, base_core: Core, key: DPoPKey, typ: str) -> None:
    """§4.3 item 4: typ must be dpop+jwt."""
    assert "typ" in refused(run, base_core, key.proof("POST", TOKEN_URL, header={"typ": typ}))


def test_4_3_4_missing_typ_refused(run, base_core: Core, key: DPoPKey) -> None:
    refused(run, base_core, key.proof("POST", TOKEN_URL, drop=("typ",)))


def test_4_3_4_typ_case_insensitive(run, base_core: Core, key: DPoPKey) -> None:
    """Media type names are case-insensitive (RFC 7515 §4.1.9)."""
    assert check(run, base_core, key.proof("POST", TOKEN_URL, header={"typ": "DPoP+JWT"})) == key.jkt


def _claims(htu: str = TOKEN_URL) -> bytes:
    return orjson.dumps(
        {"jti": _b64(time.time_ns().to_bytes(8, "big")), "htm": "POST", "htu": htu, "iat": int(time.time())}
    )


def test_4_3_5_alg_none_refused(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3 item 5: alg none is refused."""
    head = {"typ": "dpop+jwt", "alg": "none", "jwk": key.key.as_dict(private=False)}
    assert "alg" in refused(run, base_core, f"{_b64(orjson.dumps(head))}.{_b64(_claims())}.")


def test_4_3_5_alg_hs256_refused(run, base_core: Core) -> None:
    """§4.3 item 5: a MAC (symmetric) algorithm is refused, even with a matching oct jwk."""
    oct_key = OctKey.generate_key(256)
    head = {"typ": "dpop+jwt", "alg": "HS256", "jwk": oct_key.as_dict()}
    refused(run, base_core, jws.serialize_compact(head, _claims(), oct_key, algorithms=["HS256"]))


def test_4_3_5_alg_rs256_refused(run, base_core: Core) -> None:
    """§4.3 item 5 with FAPI 2.0 SP 5.4.1-1: RS256 is not an acceptable algorithm."""
    rsa = RSAKey.generate_key(2048)
    head = {"typ": "dpop+jwt", "alg": "RS256", "jwk": rsa.as_dict(private=False)}
    assert "alg" in refused(run, base_core, jws.serialize_compact(head, _claims(), rsa, algorithms=["RS256"]))


def test_4_3_5_ps256_accepted(run, base_core: Core) -> None:
    """§4.3 item 5: PS256 is one of the accepted algorithms (FAPI 2.0 SP 5.4.1-1)."""
    rsa = RSAKey.generate_key(2048)
    head = {"typ": "dpop+jwt", "alg": "PS256", "jwk": rsa.as_dict(private=False)}
    assert check(run, base_core, jws.serialize_compact(head, _claims(), rsa, algorithms=["PS256"])) == rsa.thumbprint()


@pytest.mark.filterwarnings("ignore:Key size")
def test_weak_rsa_key_refused(run, base_core: Core) -> None:
    """FAPI 2.0 SP 5.4.1: RSA keys under 2048 bits are refused, in DPoP proofs too."""
    rsa = RSAKey.generate_key(1024, private=True, auto_kid=False)
    head = {"typ": "dpop+jwt", "alg": "PS256", "jwk": rsa.as_dict(private=False)}
    assert "2048" in refused(run, base_core, jws.serialize_compact(head, _claims(), rsa, algorithms=["PS256"]))


def test_4_3_6_bad_signature_refused(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3 item 6: the signature must verify with the jwk in the header."""
    proof = key.proof("POST", TOKEN_URL)
    head, payload, sig = proof.split(".")
    other = DPoPKey().proof("POST", TOKEN_URL).split(".")[2]
    assert "signature" in refused(run, base_core, f"{head}.{payload}.{other}")


def test_4_3_6_signed_by_another_key_refused(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3 item 6: a proof whose jwk is not the signing key fails."""
    other = DPoPKey()
    proof = other.proof("POST", TOKEN_URL, header={"jwk": key.key.as_dict(private=False)})
    assert "signature" in refused(run, base_core, proof)


def test_4_3_5_missing_jwk_refused(run, base_core: Core, key: DPoPKey) -> None:
    assert "jwk" in refused(run, base_core, key.proof("POST", TOKEN_URL, drop=("jwk",)))


def test_4_3_7_private_key_in_jwk_refused(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3 item 7: the jwk must not contain a private key."""
    proof = key.proof("POST", TOKEN_URL, header={"jwk": key.key.as_dict(private=True)})
    assert "private" in refused(run, base_core, proof)


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_4_3_3_required_claim_missing_refused(run, base_core: Core, key: DPoPKey, claim: str) -> None:
    """§4.3 item 3: jti, htm, htu and iat are required."""
    refused(run, base_core, key.proof("POST", TOKEN_URL, drop=(claim,)))


def test_4_3_8_htm_mismatch_refused(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3 item 8: htm must equal the request method."""
    assert "htm" in refused(run, base_core, key.proof("GET", TOKEN_URL))
    assert "htm" in refused(run, base_core, key.proof("post", TOKEN_URL))


@pytest.mark.parametrize(
    "htu",
    [
        "https://as.example.com/userinfo",
        "https://other.example.com/token",
        "http://as.example.com/token",
        "https://as.example.com:8443/token",
        "https://as.example.com/token/",
        "not a url",
        "https://as.example.com/%74oken%2F",
    ],
)
def test_4_3_9_htu_mismatch_refused(run, base_core: Core, key: DPoPKey, htu: str) -> None:
    """§4.3 item 9: htu must be the URL of the request."""
    assert "htu" in refused(run, base_core, key.proof("POST", htu))


@pytest.mark.parametrize(
    "htu",
    ["https://as.example.com/token?x=1", "https://as.example.com/token#frag", "https://as.example.com/token?a=b#c"],
)
def test_4_3_9_htu_query_and_fragment_ignored(run, base_core: Core, key: DPoPKey, htu: str) -> None:
    """§4.3 item 9: query and fragment are ignored in the comparison."""
    assert check(run, base_core, key.proof("POST", htu)) == key.jkt


@pytest.mark.parametrize(
    "htu", ["HTTPS://AS.EXAMPLE.COM/token", "https://as.example.com:443/token", "https://As.Example.Com:443/%74oken"]
)
def test_4_3_9_htu_normalised_rfc3986_6_2(run, base_core: Core, key: DPoPKey, htu: str) -> None:
    """§4.3 item 9 with RFC 3986 §6.2.2 (case, percent-encoding) and §6.2.3 (default port)."""
    assert check(run, base_core, key.proof("POST", htu)) == key.jkt


def test_normalise_htu_keeps_path_case_and_non_default_port() -> None:
    """RFC 3986 §6.2.2.1: the path is case-sensitive; only the default port is dropped (§6.2.3)."""
    assert normalise_htu("https://a.example/Token") != normalise_htu("https://a.example/token")
    assert normalise_htu("https://a.example:8443/x") == "https://a.example:8443/x"
    assert normalise_htu("http://a.example:80") == "http://a.example/"
    assert normalise_htu("ftp://a.example/x") is None


def test_4_3_11_iat_too_old_refused(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3 item 11 / §11.1: a proof older than the acceptance window (300 s) is refused."""
    assert "too old" in refused(run, base_core, key.proof("POST", TOKEN_URL, iat=int(time.time()) - 301))
    assert "too old" in refused(run, base_core, key.proof("POST", TOKEN_URL, iat=int(time.time()) - 3600))


def test_4_3_11_iat_10s_in_future_accepted(run, base_core: Core, key: DPoPKey) -> None:
    """FAPI 2.0 SP 5.3.2.1-13: iat up to 10 s in the future is accepted."""
    assert check(run, base_core, key.proof("POST", TOKEN_URL, iat=int(time.time()) + 10)) == key.jkt


@pytest.mark.parametrize("ahead", [61, 3600])
def test_4_3_11_iat_more_than_60s_in_future_refused(run, base_core: Core, key: DPoPKey, ahead: int) -> None:
    """FAPI 2.0 SP 5.3.2.1-13: iat more than 60 s in the future is refused."""
    assert "future" in refused(run, base_core, key.proof("POST", TOKEN_URL, iat=int(time.time()) + ahead))


@pytest.mark.parametrize("iat", ["1800000000", True, None])
def test_4_3_11_non_numeric_iat_refused(run, base_core: Core, key: DPoPKey, iat: object) -> None:
    refused(run, base_core, key.proof("POST", TOKEN_URL, claims={"iat": iat}))


@pytest.mark.parametrize("jti", ["", 12345, "x" * 257])
def test_4_3_3_bad_jti_refused(run, base_core: Core, key: DPoPKey, jti: object) -> None:
    """§4.3 item 3 and §11.1: a jti is required; huge values are refused rather than stored."""
    refused(run, base_core, key.proof("POST", TOKEN_URL, claims={"jti": jti}))


def test_11_1_replayed_jti_refused(run, base_core: Core, key: DPoPKey) -> None:
    """§11.1: the same proof (same jti) is accepted once only."""
    proof = key.proof("POST", TOKEN_URL)
    assert check(run, base_core, proof) == key.jkt
    assert "already been used" in refused(run, base_core, proof)
    # Same jti in a fresh proof by the same key is a replay too.
    jti = "fixed-jti-" + key.jkt[:8]
    assert check(run, base_core, key.proof("POST", TOKEN_URL, claims={"jti": jti})) == key.jkt
    refused(run, base_core, key.proof("POST", TOKEN_URL, claims={"jti": jti}))


def test_4_3_12_ath_checked_with_access_token(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3 item 12: with an access token, ath must be the base64url SHA-256 of that token."""
    url = "https://as.example.com/userinfo"
    assert check(run, base_core, key.proof("GET", url, token="tok-1"), method="GET", url=url, token="tok-1") == key.jkt
    assert "ath" in refused(run, base_core, key.proof("GET", url, token="tok-2"), method="GET", url=url, token="tok-1")
    assert "ath" in refused(run, base_core, key.proof("GET", url), method="GET", url=url, token="tok-1")


def test_unknown_header_members_and_claims_ignored(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3: unknown header parameters and claims do not make a proof invalid."""
    proof = key.proof("POST", TOKEN_URL, header={"x-extra": 1}, claims={"extra": "yes", "nbf": 1})
    assert check(run, base_core, proof) == key.jkt


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_4_3_5_eddsa_accepted(run, base_core: Core) -> None:
    """§4.3 item 5: EdDSA (Ed25519) is accepted (FAPI 2.0 SP 5.4.1-1)."""
    okp = OKPKey.generate_key("Ed25519")
    head = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": okp.as_dict(private=False)}
    assert check(run, base_core, jws.serialize_compact(head, _claims(), okp, algorithms=["EdDSA"])) == okp.thumbprint()


def test_4_3_6_alg_not_matching_key_type_refused(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3 items 5-6: an alg the embedded key cannot verify (PS256 with an EC key) is refused, not a crash."""
    rsa = RSAKey.generate_key(2048)
    proof = jws.serialize_compact(
        {"typ": "dpop+jwt", "alg": "PS256", "jwk": key.key.as_dict(private=False)}, _claims(), rsa, algorithms=["PS256"]
    )
    refused(run, base_core, proof)


@pytest.mark.parametrize("jwk", [{"kty": "EC"}, {"kty": "oct"}, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}])
def test_4_3_broken_jwk_refused(run, base_core: Core, key: DPoPKey, jwk: object) -> None:
    """§4.3 items 5-7: a jwk that is not a usable public key is refused."""
    refused(run, base_core, key.proof("POST", TOKEN_URL, header={"jwk": jwk}))


# -- server-provided nonces (RFC 9449 §8, §9) ---------------------------------------------------


@pytest.fixture
def nonce_core(base_core: Core) -> Core:
    import dataclasses

    settings = dataclasses.replace(base_core.settings, dpop_nonce=True, dpop_nonce_lifetime=60)
    return dataclasses.replace(base_core, settings=settings, clock=lambda: 1_800_000_000)


def _needs_nonce(run, core: Core, proof: str) -> DPoPError:
    with pytest.raises(DPoPError) as info:
        check(run, core, proof)
    err = info.value
    # §8: 400 use_dpop_nonce, with the nonce to use in a DPoP-Nonce header.
    assert err.error == "use_dpop_nonce" and err.status == 400
    assert err.headers["DPoP-Nonce"] == current_nonce(core)
    return err


def test_8_proof_without_nonce_refused_with_a_fresh_one(run, nonce_core: Core, key: DPoPKey) -> None:
    _needs_nonce(run, nonce_core, key.proof("POST", TOKEN_URL, iat=nonce_core.clock()))


def test_8_proof_with_the_current_nonce_accepted(run, nonce_core: Core, key: DPoPKey) -> None:
    proof = key.proof("POST", TOKEN_URL, iat=nonce_core.clock(), claims={"nonce": current_nonce(nonce_core)})
    assert check(run, nonce_core, proof) == key.jkt


def test_8_nonce_of_the_previous_window_accepted_older_refused(run, nonce_core: Core, key: DPoPKey) -> None:
    import dataclasses

    issued = current_nonce(nonce_core)
    later = dataclasses.replace(nonce_core, clock=lambda: nonce_core.clock() + 60)
    assert current_nonce(later) != issued  # the nonce rotates every dpop_nonce_lifetime
    proof = key.proof("POST", TOKEN_URL, iat=later.clock(), claims={"nonce": issued})
    assert check(run, later, proof) == key.jkt
    much_later = dataclasses.replace(nonce_core, clock=lambda: nonce_core.clock() + 120)
    err = _needs_nonce(run, much_later, key.proof("POST", TOKEN_URL, iat=much_later.clock(), claims={"nonce": issued}))
    assert "not valid" in err.description


@pytest.mark.parametrize("nonce", ["made-up", "", 12345, None])
def test_8_forged_or_malformed_nonce_refused(run, nonce_core: Core, key: DPoPKey, nonce: object) -> None:
    _needs_nonce(run, nonce_core, key.proof("POST", TOKEN_URL, iat=nonce_core.clock(), claims={"nonce": nonce}))


def test_8_nonce_depends_on_the_server_key(nonce_core: Core) -> None:
    import dataclasses

    other = dataclasses.replace(nonce_core, server_key=b"another deployment's key........")
    assert current_nonce(other) != current_nonce(nonce_core)


def test_8_nonces_off_by_default_ignore_the_claim(run, base_core: Core, key: DPoPKey) -> None:
    assert not base_core.settings.dpop_nonce
    assert check(run, base_core, key.proof("POST", TOKEN_URL, claims={"nonce": "anything"})) == key.jkt


@pytest.mark.parametrize("claims", [{"exp": -60}, {"nbf": 60}, {"exp": "soon"}, {"nbf": True}])
def test_rfc7519_exp_and_nbf_in_a_proof_are_honoured(run, base_core: Core, key: DPoPKey, claims: dict) -> None:
    """Conformance fapi2 check-dpop-proof-nbf-exp: optional exp/nbf in a proof are checked (RFC 7519
    §4.1.4, §4.1.5) with the 10 s leeway of FAPI 2.0 SP 5.3.2.1-13."""
    now = int(time.time())
    values = {k: (now + v if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in claims.items()}
    refused(run, base_core, key.proof("POST", TOKEN_URL, claims=values))


def test_rfc7519_valid_exp_and_nbf_in_a_proof_accepted(run, base_core: Core, key: DPoPKey) -> None:
    now = int(time.time())
    assert check(run, base_core, key.proof("POST", TOKEN_URL, claims={"exp": now + 60, "nbf": now + 5})) == key.jkt


def test_4_3_6_cached_key_import_still_verifies_every_signature(run, base_core: Core, key: DPoPKey) -> None:
    """§4.3 items 6-7 with the key-import cache warm: after a valid proof with a jwk, a proof that
    carries the same jwk but is signed by another key is still refused, and the same jwk written
    with extra members or in another order gives the same thumbprint (RFC 7638 §3)."""
    from fingrade.protocol.jws_signatures import _cached_key

    assert check(run, base_core, key.proof("POST", TOKEN_URL)) == key.jkt
    hits = _cached_key.cache_info().hits
    assert check(run, base_core, key.proof("POST", TOKEN_URL)) == key.jkt
    assert _cached_key.cache_info().hits == hits + 1  # the second proof did not re-import the key
    other = DPoPKey()
    forged = other.proof("POST", TOKEN_URL, header={"jwk": key.key.as_dict(private=False)})
    assert "signature" in refused(run, base_core, forged)
    assert "signature" in refused(
        run, base_core, forged.rsplit(".", 1)[0] + "." + key.proof("POST", TOKEN_URL).rsplit(".", 1)[1]
    )
    reordered = dict(reversed(list(key.key.as_dict(private=False).items())), use="sig")
    assert check(run, base_core, key.proof("POST", TOKEN_URL, header={"jwk": reordered})) == key.jkt


@pytest.mark.filterwarnings("ignore:Key size")
def test_weak_rsa_key_refused_every_time(run, base_core: Core) -> None:
    """FAPI 2.0 SP 5.4.1: the strength check is not skipped when the key's import is cached."""
    rsa = RSAKey.generate_key(1024, private=True, auto_kid=False)
    head = {"typ": "dpop+jwt", "alg": "PS256", "jwk": rsa.as_dict(private=False)}
    for _ in range(2):
        assert "2048" in refused(run, base_core, jws.serialize_compact(head, _claims(), rsa, algorithms=["PS256"]))
