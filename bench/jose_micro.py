"""In-process micro-benchmark of the JOSE hot paths: what a token request spends on signatures,
timed through joserfc (how the server verified and signed before) and through `jws_signatures` on
cached `cryptography` key objects (how it does now), back to back in one process.

    python bench/jose_micro.py                      # ES256, 7 repetitions of 2000 operations each
    python bench/jose_micro.py --algs ES256,PS256,EdDSA --reps 9 --ops 3000 --cpu 1

Operations (each on a pool of distinct, freshly signed tokens, so nothing is served from a cache of
results; key objects are cached on both sides, as the server caches them):

- `dpop`: a DPoP proof (RFC 9449 §4.3 items 2-7): `jwt.parse`, the jwk imported (cache hit), its
  strength, the signature. Before: joserfc re-parsed the token in `deserialize_compact`.
- `assertion`: a private_key_jwt client assertion (RFC 7523 §3): `jwt.parse`, the client's key set
  (cache hit), the key chosen by kid, its strength, the signature.
- `sign_at`: an RFC 9068 access token signed with the server's key: header, claims, signature.

Each repetition times `--ops` operations of one path; old and new alternate (old, new, old, new ...)
so that drift on a shared machine hits both alike. Reported: the median microseconds per operation
over the repetitions, the spread (min-max) and new/old. Nothing is written; the server is not run.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import secrets
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import orjson
from joserfc import jws
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey, guess_key, import_key
from joserfc.jws import JWSRegistry

from fingrade.protocol import jws_signatures, jwt
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.jose import ALLOWED_ALGS, check_key_strength, has_private_members

ISSUER = "https://as.example.com"
TOKEN_URL = ISSUER + "/token"


def _refuse(desc: str) -> OAuthError:
    return OAuthError("invalid_request", desc, 400)


# -- the paths as they were: joserfc parses again and verifies (kept here only to compare) -----------

_OLD_DPOP_REGISTRY = JWSRegistry(algorithms=list(ALLOWED_ALGS), strict_check_header=False)
_OLD_DPOP_REGISTRY.max_header_length = 4096


@functools.lru_cache(maxsize=1024)
def _old_import(canonical: bytes) -> tuple[Any, str]:
    key = import_key(orjson.loads(canonical))
    return key, key.thumbprint()


@functools.lru_cache(maxsize=1024)
def _old_keyset(jwks_json: bytes) -> KeySet:
    return KeySet.import_key_set(orjson.loads(jwks_json))


def old_dpop(token: str) -> str:
    proof = jwt.parse(token, max_length=8192)
    jwk = proof.header.jwk
    assert jwk is not None and not has_private_members(jwk)
    key, jkt = _old_import(orjson.dumps(jwk, option=orjson.OPT_SORT_KEYS))
    check_key_strength(key.public_key, _refuse)
    obj = jws.deserialize_compact(proof.token, key, algorithms=[proof.header.alg], registry=_OLD_DPOP_REGISTRY)
    guess_key(key, obj, use="sig")
    return jkt


def old_assertion(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    parsed = jwt.parse(token)
    keyset = _old_keyset(orjson.dumps(jwks))
    obj = jws.deserialize_compact(parsed.token, keyset, algorithms=list(ALLOWED_ALGS))
    check_key_strength(guess_key(keyset, obj, use="sig").public_key, _refuse)
    return parsed.claims


def old_sign(key: Any, alg: str, kid: str, claims: dict[str, Any]) -> str:
    header = {"alg": alg, "kid": kid, "typ": "at+jwt"}
    return jws.serialize_compact(header, orjson.dumps(claims), key, algorithms=[alg])


# -- the paths as they are: parsed once, verified and signed on cached cryptography objects ---------

_DPOP_RULES = jwt.HeaderRules(registered_only=False, max_header_segment=4096)  # as protocol/dpop.py


def new_dpop(token: str) -> str:
    proof = jwt.parse(token, max_length=8192)
    jwk = proof.header.jwk
    assert jwk is not None and not has_private_members(jwk)
    key = jws_signatures.verification_key(jwk)
    check_key_strength(key.public, _refuse)
    jwt.verify(proof, key, [proof.header.alg], _DPOP_RULES)
    return key.thumbprint


def new_assertion(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    parsed = jwt.parse(token)
    key = jwt.verify(parsed, jws_signatures.key_set(jwks), ALLOWED_ALGS)
    check_key_strength(key.public, _refuse)
    return parsed.claims


def new_sign(signer: jws_signatures.Signer, claims: dict[str, Any]) -> str:
    return signer.sign("at+jwt", orjson.dumps(claims))


# -- set-up -------------------------------------------------------------------------------------------


def make_key(alg: str, kid: str) -> Any:
    params: Any = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, private=True)
    if alg == "PS256":
        return RSAKey.generate_key(2048, parameters=params, private=True)
    return OKPKey.generate_key("Ed25519", parameters=params, private=True)


def sign_with(key: Any, header: dict[str, Any], claims: dict[str, Any]) -> str:
    registry = JWSRegistry(algorithms=[header["alg"]], strict_check_header=False)
    registry.max_header_length = 4096
    return jws.serialize_compact(header, orjson.dumps(claims), key, algorithms=[header["alg"]], registry=registry)


def proofs(alg: str, count: int) -> list[str]:
    key = make_key(alg, "dpop")
    jwk = {k: v for k, v in key.as_dict(private=False).items() if k not in ("kid", "alg", "use")}
    head = {"typ": "dpop+jwt", "alg": alg, "jwk": jwk}
    now = int(time.time())
    return [
        sign_with(key, head, {"jti": secrets.token_urlsafe(16), "htm": "POST", "htu": TOKEN_URL, "iat": now})
        for _ in range(count)
    ]


def assertions(alg: str, count: int) -> tuple[list[str], dict[str, Any]]:
    key = make_key(alg, "client-1")
    jwks = {"keys": [make_key(alg, "client-0").as_dict(private=False), key.as_dict(private=False)]}
    now = int(time.time())
    claims = {"iss": "bench-jwt", "sub": "bench-jwt", "aud": ISSUER, "exp": now + 60, "iat": now}
    tokens = [
        sign_with(key, {"alg": alg, "kid": "client-1"}, {**claims, "jti": secrets.token_urlsafe(16)})
        for _ in range(count)
    ]
    return tokens, jwks


def access_claims(count: int) -> list[dict[str, Any]]:
    now = int(time.time())
    return [
        {
            "iss": ISSUER,
            "sub": "bench-jwt",
            "aud": "https://bank.example.com",
            "client_id": "bench-jwt",
            "iat": now,
            "exp": now + 600,
            "jti": secrets.token_urlsafe(16),
            "scope": "accounts",
        }
        for _ in range(count)
    ]


def timed(op: Callable[[int], object], ops: int) -> float:
    """Microseconds per operation over `ops` calls of op(i)."""
    start = time.perf_counter_ns()
    for i in range(ops):
        op(i)
    return (time.perf_counter_ns() - start) / ops / 1000


def compare(
    name: str, old: Callable[[int], object], new: Callable[[int], object], reps: int, ops: int
) -> dict[str, Any]:
    for _ in range(2):  # warm caches, imports and branch predictors on both sides
        timed(old, ops // 4 or 1)
        timed(new, ops // 4 or 1)
    olds, news = [], []
    for _ in range(reps):
        olds.append(timed(old, ops))
        news.append(timed(new, ops))
    o, n = statistics.median(olds), statistics.median(news)
    return {
        "op": name,
        "old_us": o,
        "new_us": n,
        "old_range": (min(olds), max(olds)),
        "new_range": (min(news), max(news)),
        "saved_us": o - n,
        "ratio": n / o,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--algs", default="ES256", help="comma-separated: ES256, PS256, EdDSA (default ES256)")
    ap.add_argument("--reps", type=int, default=7, help="repetitions per path; medians are reported")
    ap.add_argument("--ops", type=int, default=2000, help="operations per repetition")
    ap.add_argument("--pool", type=int, default=500, help="distinct tokens per operation")
    ap.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    warnings.simplefilter("ignore")  # joserfc's SecurityWarning on every EdDSA use
    print(
        f"python {platform.python_version()}, cryptography {version('cryptography')}, joserfc {version('joserfc')}, "
        f"{args.reps} x {args.ops} ops, pool {args.pool}, cpu {args.cpu if args.cpu is not None else 'any'}"
    )
    rows = []
    for alg in args.algs.split(","):
        if alg not in ALLOWED_ALGS:
            print(f"unknown algorithm {alg!r}", file=sys.stderr)
            return 2
        dpop_pool = proofs(alg, args.pool)
        assertion_pool, jwks = assertions(alg, args.pool)
        claims_pool = access_claims(args.pool)
        server_key = make_key(alg, "server-key")
        signer = jws_signatures.Signer(server_key.as_dict(private=True), alg, "server-key")
        assert new_dpop(dpop_pool[0]) == old_dpop(dpop_pool[0])
        assert new_assertion(assertion_pool[0], jwks) == old_assertion(assertion_pool[0], jwks)
        p = args.pool
        rows.append(
            compare(
                f"{alg} dpop parse+verify",
                lambda i: old_dpop(dpop_pool[i % p]),
                lambda i: new_dpop(dpop_pool[i % p]),
                args.reps,
                args.ops,
            )
        )
        rows.append(
            compare(
                f"{alg} private_key_jwt parse+verify",
                lambda i: old_assertion(assertion_pool[i % p], jwks),
                lambda i: new_assertion(assertion_pool[i % p], jwks),
                args.reps,
                args.ops,
            )
        )
        rows.append(
            compare(
                f"{alg} access token sign",
                lambda i: old_sign(server_key, alg, "server-key", claims_pool[i % p]),
                lambda i: new_sign(signer, claims_pool[i % p]),
                args.reps,
                args.ops,
            )
        )
    print(f"{'operation':<34} {'joserfc µs':>11} {'new µs':>9} {'saved µs':>9} {'new/old':>8}   spread old | new")
    for r in rows:
        print(
            f"{r['op']:<34} {r['old_us']:>11.1f} {r['new_us']:>9.1f} {r['saved_us']:>9.1f} {r['ratio']:>8.2f}"
            f"   {r['old_range'][0]:.1f}-{r['old_range'][1]:.1f} | {r['new_range'][0]:.1f}-{r['new_range'][1]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
