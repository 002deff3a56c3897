"""Mutual TLS (RFC 8705) in the protocol core, without a server: certificate matching (§2.1.2, §2.2),
chain verification (§2.1), thumbprints (§3.1), binding rules (§3), client metadata (§2.1.2, §3.4),
server metadata (§3.3, §5), the settings, and the proxy header decoding of the web adapter."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest
from support.mtls import CA, ClientCert, self_signed

from fingrade.config import ConfigError, load_settings
from fingrade.oauth import mtls
from fingrade.oauth.client_auth import authenticate_client
from fingrade.oauth.context import Core
from fingrade.oauth.metadata import server_metadata
from fingrade.oauth.registration import build_client
from fingrade.protocol import cert_binding
from fingrade.protocol.edge import forwarded_certificate
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.http import HttpRequest

pytestmark = pytest.mark.mtls

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mtls-unit")


@pytest.fixture(scope="module")
def ca(tmp: Path) -> CA:
    return CA.create(tmp)


@pytest.fixture
def core(base_core: Core, ca: CA) -> Core:
    settings = dataclasses.replace(
        base_core.settings, mtls_base_url="https://mtls.as.example.com", mtls_ca_file=str(ca.path)
    )
    return dataclasses.replace(base_core, settings=settings)


def now() -> int:
    import time

    return int(time.time())


def meta_error(desc: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", desc, 400)


# -- §3.1 thumbprint -------------------------------------------------------------------------


def test_rfc8705_s3_1_x5t_s256_is_base64url_sha256_of_der(tmp: Path) -> None:
    """RFC 8705 §3.1: x5t#S256 is the base64url-encoded (no padding) SHA-256 of the DER certificate."""
    cert = self_signed(tmp)
    expected = base64.urlsafe_b64encode(hashlib.sha256(cert.der).digest()).decode().rstrip("=")
    assert cert_binding.thumbprint(cert.der) == expected == cert.x5t_s256
    assert cert_binding.same_certificate(cert.der, expected)
    assert not cert_binding.same_certificate(None, expected)
    assert not cert_binding.same_certificate(self_signed(tmp).der, expected)


# -- §2.1.2 subject matching ---------------------------------------------------------------------


def test_rfc8705_s2_1_2_subject_dn_matches_by_rdn_ignoring_case_and_spacing(ca: CA, tmp: Path) -> None:
    """RFC 8705 §2.1.2: tls_client_auth_subject_dn is an RFC 4514 string compared with the subject
    (RFC 4517 distinguishedNameMatch: attribute values compared case-insensitively)."""
    cert = ca.issue(tmp, "Fintech  One", org="Fintech Ltd").cert
    assert mtls.matches_subject(cert, {"tls_client_auth_subject_dn": "CN=Fintech  One,O=Fintech Ltd"})
    assert mtls.matches_subject(cert, {"tls_client_auth_subject_dn": "cn=fintech one,o=FINTECH  LTD"})
    assert not mtls.matches_subject(cert, {"tls_client_auth_subject_dn": "CN=Fintech One"})
    assert not mtls.matches_subject(cert, {"tls_client_auth_subject_dn": "CN=Fintech Two,O=Fintech Ltd"})
    assert not mtls.matches_subject(cert, {"tls_client_auth_subject_dn": "O=Fintech Ltd,CN=Fintech One,C=DE"})


def test_rfc8705_s2_1_2_san_values(ca: CA, tmp: Path) -> None:
    """RFC 8705 §2.1.2: dNSName, URI, IP address and rfc822Name SAN entries."""
    cert = ca.issue(
        tmp,
        "x",
        dns=["api.fintech.example"],
        uri=["https://fintech.example/client"],
        ip=["2001:db8::1"],
        email=["ops@Fintech.example"],
    ).cert
    assert mtls.matches_subject(cert, {"tls_client_auth_san_dns": "API.fintech.example"})
    assert not mtls.matches_subject(cert, {"tls_client_auth_san_dns": "fintech.example"})
    assert mtls.matches_subject(cert, {"tls_client_auth_san_uri": "https://fintech.example/client"})
    assert not mtls.matches_subject(cert, {"tls_client_auth_san_uri": "https://fintech.example/other"})
    assert mtls.matches_subject(cert, {"tls_client_auth_san_ip": "2001:0db8:0:0::1"})
    assert not mtls.matches_subject(cert, {"tls_client_auth_san_ip": "2001:db8::2"})
    assert mtls.matches_subject(cert, {"tls_client_auth_san_email": "ops@fintech.example"})
    assert not mtls.matches_subject(cert, {"tls_client_auth_san_email": "OPS@fintech.example"})
    assert not mtls.matches_subject(cert, {})


def test_rfc8705_s2_1_chain_to_configured_ca(ca: CA, tmp: Path) -> None:
    """RFC 8705 §2.1: the certificate must chain to a trust anchor of the server."""
    good = ca.issue(tmp, "good").cert
    mtls.verify_chain(good, (ca.cert,), now())
    rogue = CA.create(tmp, "Rogue")
    with pytest.raises(OAuthError) as exc:
        mtls.verify_chain(rogue.issue(tmp, "good").cert, (ca.cert,), now())
    assert exc.value.error == "invalid_client"
    with pytest.raises(OAuthError):  # not yet / no longer valid
        mtls.verify_chain(good, (ca.cert,), now() + 60 * 86400)
    with pytest.raises(OAuthError):  # a self-signed certificate is not PKI-bound
        mtls.verify_chain(self_signed(tmp).cert, (ca.cert,), now())
    with pytest.raises(OAuthError):
        mtls.verify_chain(good, (), now())


def test_rfc8705_s2_2_self_signed_matches_registered_x5c_only(tmp: Path) -> None:
    """RFC 8705 §2.2: the presented certificate must be one registered in the client's JWKS."""
    mine, other = self_signed(tmp), self_signed(tmp)
    jwks = {"keys": [other.jwk(), mine.jwk()]}
    assert mtls.matches_registered(mine.der, jwks)
    assert not mtls.matches_registered(self_signed(tmp).der, jwks)
    assert not mtls.matches_registered(mine.der, {"keys": [{k: v for k, v in mine.jwk().items() if k != "x5c"}]})
    assert not mtls.matches_registered(mine.der, None)


# -- §2 client authentication on a real core ----------------------------------------------------


def _register(run: Any, core: Core, meta: dict[str, Any]) -> str:
    base = {
        "client_name": "mTLS",
        "security_profile": "fapi2",
        "grant_types": ["client_credentials"],
        "scope": "accounts",
    }
    client, _ = build_client(core, {**base, **meta})
    run(core.store.save_client(client))
    return client.client_id


def _auth(run: Any, core: Core, client_id: str | None, cert: ClientCert | None, **params: str) -> tuple[Any, str]:
    req = HttpRequest("POST", "/token", {}, client_cert=cert.der if cert else None)
    body = {"client_id": client_id, **params} if client_id else dict(params)
    return run(authenticate_client(core, req, body))


def test_rfc8705_s2_tls_client_auth(run: Any, core: Core, ca: CA, tmp: Path) -> None:
    """RFC 8705 §2, §2.1: client_id names the client, a certificate from the trusted CA with the
    registered subject authenticates it; anything else is invalid_client (401)."""
    cert = ca.issue(tmp, "Fintech Auth", dns=["auth.fintech.example"])
    cid = _register(
        run, core, {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "auth.fintech.example"}
    )
    client, method = _auth(run, core, cid, cert)
    assert client.client_id == cid and method == "tls_client_auth"
    cases = [
        (cid, None),
        (cid, ca.issue(tmp, "x", dns=["other.fintech.example"])),
        (cid, CA.create(tmp, "Rogue").issue(tmp, "x", dns=["auth.fintech.example"])),
        (None, cert),
    ]
    for client_id, presented in cases:
        with pytest.raises(OAuthError) as exc:
            _auth(run, core, client_id, presented)
        assert (exc.value.error, exc.value.status) == ("invalid_client", 401)
    # A secret or an assertion is not a way around the certificate.
    with pytest.raises(OAuthError) as exc:
        _auth(run, core, cid, cert, client_secret="guess")
    assert exc.value.error == "invalid_client"


def test_rfc8705_s2_2_self_signed_tls_client_auth(run: Any, core: Core, tmp: Path) -> None:
    """RFC 8705 §2.2: the certificate registered in x5c authenticates; another one does not."""
    cert = self_signed(tmp)
    cid = _register(
        run, core, {"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [cert.jwk()]}}
    )
    assert _auth(run, core, cid, cert)[1] == "self_signed_tls_client_auth"
    for presented in (None, self_signed(tmp)):
        with pytest.raises(OAuthError) as exc:
            _auth(run, core, cid, presented)
        assert (exc.value.error, exc.value.status) == ("invalid_client", 401)


# -- registration (§2.1.2, §2.2, §3.4) ---------------------------------------------------------------


def _build(core: Core, **meta: Any) -> Any:
    base = {
        "client_name": "mTLS",
        "security_profile": "fapi2",
        "grant_types": ["client_credentials"],
        "scope": "accounts",
    }
    return build_client(core, {**base, **meta})[0]


@pytest.mark.parametrize(
    "meta, why",
    [
        ({"token_endpoint_auth_method": "tls_client_auth"}, "exactly one"),
        (
            {
                "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_san_dns": "a.example",
                "tls_client_auth_san_ip": "192.0.2.1",
            },
            "exactly one",
        ),
        ({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "not a dn"}, "RFC 4514"),
        ({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "300.1.1.1"}, "IPv4"),
        ({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_email": "nobody"}, "email"),
        ({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": "relative"}, "absolute"),
        ({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": 7}, "string"),
        ({"token_endpoint_auth_method": "self_signed_tls_client_auth"}, "jwks"),
        (
            {
                "tls_client_certificate_bound_access_tokens": "yes",
                "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_san_dns": "a.example",
            },
            "boolean",
        ),
    ],
)
def test_rfc8705_s2_1_2_registration_refused(core: Core, meta: dict[str, Any], why: str) -> None:
    """RFC 8705 §2.1.2 (exactly one subject value, well-formed) and §3.4 (a boolean)."""
    with pytest.raises(OAuthError) as exc:
        _build(core, **meta)
    assert exc.value.error == "invalid_client_metadata" and why in exc.value.description


def test_rfc8705_s2_2_registration_needs_x5c_matching_the_key(core: Core, tmp: Path) -> None:
    """RFC 8705 §2.2 with RFC 7517 §4.7: x5c present, and its key is the JWK's key."""
    cert, other = self_signed(tmp), self_signed(tmp)
    no_x5c = {k: v for k, v in cert.jwk().items() if k != "x5c"}
    with pytest.raises(OAuthError, match="x5c"):
        _build(core, token_endpoint_auth_method="self_signed_tls_client_auth", jwks={"keys": [no_x5c]})
    mixed = {**cert.jwk(), "x5c": other.jwk()["x5c"]}
    with pytest.raises(OAuthError, match="does not match"):
        _build(core, token_endpoint_auth_method="self_signed_tls_client_auth", jwks={"keys": [mixed]})
    client = _build(core, token_endpoint_auth_method="self_signed_tls_client_auth", jwks={"keys": [cert.jwk()]})
    assert mtls.registered_certificates(client.jwks) == [cert.der]


def test_rfc8705_subject_fields_only_with_tls_client_auth(core: Core, tmp: Path) -> None:
    """RFC 8705 §2.1.2: the subject values belong to tls_client_auth."""
    with pytest.raises(OAuthError, match="only used with tls_client_auth"):
        _build(
            core,
            token_endpoint_auth_method="self_signed_tls_client_auth",
            jwks={"keys": [self_signed(tmp).jwk()]},
            tls_client_auth_san_dns="a.example",
        )


def test_rfc8705_tls_methods_only_when_the_server_offers_mtls(base_core: Core, core: Core) -> None:
    """Only what the server enforces can be registered: without an mTLS host, no TLS methods and no
    certificate-bound tokens; without trusted CAs, no tls_client_auth."""
    meta = {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a.example"}
    with pytest.raises(OAuthError, match="mutual TLS"):
        _build(base_core, **meta)
    with pytest.raises(OAuthError, match="mutual TLS"):
        _build(base_core, security_profile="confidential", tls_client_certificate_bound_access_tokens=True)
    no_ca = dataclasses.replace(core, settings=dataclasses.replace(core.settings, mtls_ca_file=""))
    with pytest.raises(OAuthError, match="mtls_ca_file"):
        _build(no_ca, **meta)
    assert _build(core, **meta).metadata == {"tls_client_auth_san_dns": "a.example"}


def test_rfc8705_s4_bound_tokens_refused_for_public_clients(core: Core) -> None:
    """RFC 8705 §4 would bind public clients' refresh tokens to the certificate; that is not
    implemented, so the metadata is refused for public clients (they use DPoP)."""
    with pytest.raises(OAuthError, match="public"):
        build_client(
            core,
            {
                "client_name": "app",
                "security_profile": "native",
                "redirect_uris": ["http://127.0.0.1/cb"],
                "tls_client_certificate_bound_access_tokens": True,
            },
        )
    client = _build(
        core,
        security_profile="confidential",
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [{k: v for k, v in self_signed(Path(core.settings.data_dir)).jwk().items()}]},
        tls_client_certificate_bound_access_tokens=True,
    )
    assert client.metadata[mtls.BOUND_TOKENS] is True


# -- metadata (§3.3, §5) and settings ----------------------------------------------------------


def test_rfc8705_s3_3_s5_metadata_only_with_mtls(base_core: Core, core: Core) -> None:
    """RFC 8705 §3.3 tls_client_certificate_bound_access_tokens, §5 mtls_endpoint_aliases and the §2
    methods are advertised only when a client certificate can reach the server."""
    plain = server_metadata(base_core)
    assert "mtls_endpoint_aliases" not in plain and "tls_client_certificate_bound_access_tokens" not in plain
    assert not {"tls_client_auth", "self_signed_tls_client_auth"} & set(plain["token_endpoint_auth_methods_supported"])
    doc = server_metadata(core)
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    assert doc["mtls_endpoint_aliases"]["token_endpoint"] == "https://mtls.as.example.com/token"
    assert set(doc["mtls_endpoint_aliases"]) == {
        "token_endpoint",
        "pushed_authorization_request_endpoint",
        "userinfo_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    }
    for name in (
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ):
        assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(doc[name]), name
    no_ca = dataclasses.replace(core, settings=dataclasses.replace(core.settings, mtls_ca_file=""))
    assert "tls_client_auth" not in server_metadata(no_ca)["token_endpoint_auth_methods_supported"]


def test_mtls_settings(tmp: Path, ca: CA) -> None:
    base = {"data_dir": str(tmp)}
    s = load_settings(overrides={**base, "mtls_port": 9443, "mtls_ca_file": str(ca.path)}, environ={})
    assert s.mtls_base_url == "https://localhost:9443" and s.mtls_enabled
    assert not load_settings(overrides=base, environ={}).mtls_enabled
    bad = [
        ({"mtls_port": 8443}, "differ"),
        ({"mtls_port": 9443, "tls": "off", "trusted_proxies": ["10.0.0.1"]}, "TLS"),
        ({"mtls_base_url": "http://mtls.example"}, "https"),
        ({"mtls_ca_file": str(tmp / "none.pem")}, "no such"),
        ({"mtls_cert_header": "authorization"}, "header"),
    ]
    for overrides, why in bad:
        with pytest.raises(ConfigError, match=why):
            load_settings(overrides={**base, **overrides}, environ={})


# -- the proxy header (web adapter) ----------------------------------------------------------------


def test_forwarded_certificate_formats(tmp: Path) -> None:
    """nginx's $ssl_client_escaped_cert (URL-encoded PEM) and RFC 9440 `:base64 DER:`; junk is ignored."""
    cert = self_signed(tmp)
    assert forwarded_certificate(cert.escaped_pem()) == cert.der
    assert forwarded_certificate(":" + base64.b64encode(cert.der).decode() + ":") == cert.der
    for junk in ("", "abc", ":!!:", "-----BEGIN CERTIFICATE-----%0Agarbage%0A-----END CERTIFICATE-----"):
        assert forwarded_certificate(junk) is None
