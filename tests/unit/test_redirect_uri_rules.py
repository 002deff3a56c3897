"""Redirect URI registration rules per profile (RFC 8252 §7, §8.3; RFC 6749 §3.1.2) and exact
matching (RFC 9700 §4.1.3, RFC 6749 §3.1.2.3) with the loopback port exception (RFC 8252 §7.3)."""

from __future__ import annotations

import pytest

from fingrade.oauth.redirect_uri import RedirectUriError, matches, validate_registered

pytestmark = pytest.mark.registration

# -- registration ------------------------------------------------------------------------------

NATIVE_OK = [
    "http://127.0.0.1/callback",  # RFC 8252 §7.3 loopback IP literal, port chosen at run time
    "http://127.0.0.1:8080/callback",
    "http://[::1]/callback",
    "http://[::1]:51000/cb?x=1",
    "com.example.app:/oauth2redirect",  # RFC 8252 §7.1 private-use, reverse domain name
    "com.example.app:/callback",
    "https://app.example.com/oauth/callback",  # RFC 8252 §7.2 claimed https
]


@pytest.mark.parametrize("uri", NATIVE_OK)
def test_native_registration_accepts_rfc8252_7(uri: str) -> None:
    validate_registered(uri, "native")


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost/callback",  # RFC 8252 §8.3: localhost is NOT RECOMMENDED; use the IP literal
        "http://localhost:8080/callback",
        "http://example.com/callback",  # plain http off loopback
        "http://127.0.0.2/callback",  # only the loopback literals the RFC names
        "http://127.0.0.1.evil.com/callback",
        "http://user@127.0.0.1/callback",  # userinfo
        "http://127.0.0.1:0/callback",  # not a port
        "http://127.0.0.1:70000/callback",
        "myapp:/callback",  # private-use scheme not in reverse-domain form (RFC 8252 §7.1)
        "Com.Example.App:/callback",  # schemes are registered lower case
        "javascript:alert(1)",
        "javascript://com.example/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "vbscript:msgbox(1)",
        "com.example.app:/callback#frag",  # RFC 6749 §3.1.2: no fragment
        "http://127.0.0.1/callback#",
        "http://127.0.0.1/call back",  # whitespace
        "http://127.0.0.1/callback\r\nX: y",  # control characters (CVE-2024-39694)
        "http://127.0.0.1/callback\t",
        "http://127.0.0.1/callback\x00",
        "http://127.0.0.1/caf\u00e9",  # non-ASCII
        "http://127.0.0.1\\@evil.com/callback",  # backslash confusion
        "",
        "/callback",  # relative
    ],
)
def test_native_registration_refuses(uri: str) -> None:
    with pytest.raises(RedirectUriError):
        validate_registered(uri, "native")


@pytest.mark.parametrize(
    "uri",
    [
        "https://client.example.com/cb",
        "https://client.example.com:8443/cb?tenant=1",
    ],
)
def test_web_registration_accepts_https_rfc6749_3_1_2_1(uri: str) -> None:
    validate_registered(uri, "web")


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1/callback",  # loopback is for native apps only (RFC 8252 §7.3)
        "http://client.example.com/cb",  # FAPI 2.0 SP 5.3.2.2-8: no http
        "com.example.app:/callback",  # private-use schemes are for native apps
        "https://user:pass@client.example.com/cb",  # userinfo
        "https://evil.com@client.example.com/cb",
        "https://client.example.com/cb#x",  # fragment (RFC 6749 §3.1.2)
        "https://client.example.com/a/../cb",  # dot segments
        "https://client.example.com/a/%2e%2e/cb",
        "https://client.example.com/./cb",
        "https://Client.Example.com/cb",  # host must be lower case: matching is byte-exact
        "HTTPS://client.example.com/cb",
        "https:///cb",  # no host
        "javascript:alert(1)",
        "data:,x",
        "https://client.example.com/c\x7fb",
    ],
)
def test_web_registration_refuses(uri: str) -> None:
    with pytest.raises(RedirectUriError):
        validate_registered(uri, "web")


def test_registration_refuses_overlong_uri() -> None:
    with pytest.raises(RedirectUriError):
        validate_registered("https://client.example.com/" + "a" * 2000, "web")


# -- matching ----------------------------------------------------------------------------------

WEB = ["https://client.example.com/cb"]


def test_exact_match_rfc9700_4_1_3() -> None:
    assert matches("https://client.example.com/cb", WEB)


@pytest.mark.parametrize(
    "uri",
    [
        "https://CLIENT.example.com/cb",  # case (CVE-2020-15234: matching after lower-casing)
        "https://client.example.com/CB",
        "HTTPS://client.example.com/cb",
        "https://client.example.com/cb/",  # trailing slash
        "https://client.example.com/cb?x=1",  # extra query
        "https://client.example.com/cb#x",
        "https://client.example.com/cb/../cb",  # path traversal
        "https://client.example.com/cb/%2e%2e/cb",
        "https://client.example.com/%63b",  # percent-encoded equivalent: not byte-identical
        "https://client.example.com:443/cb",  # default port spelled out: not byte-identical
        "https://client.example.com.evil.com/cb",  # suffix host
        "https://client.example.com@evil.com/cb",  # userinfo
        "https://evil.com/cb",
        "https://client.example.com/cb\r\n",  # control characters (CVE-2024-39694)
        "https://client.example.com/cb\t",
        "https://client.example.com/c",  # prefix
        "https://client.example.com/cbx",
        "http://client.example.com/cb",
        "",
    ],
)
def test_no_match_unless_byte_identical_rfc9700_4_1_3(uri: str) -> None:
    assert not matches(uri, WEB)


NATIVE = ["http://127.0.0.1/callback", "http://[::1]/callback?app=1", "com.example.app:/callback"]


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1/callback",
        "http://127.0.0.1:1/callback",
        "http://127.0.0.1:51234/callback",
        "http://127.0.0.1:65535/callback",
        "http://[::1]:8080/callback?app=1",
    ],
)
def test_loopback_any_port_rfc8252_7_3(uri: str) -> None:
    assert matches(uri, NATIVE)


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:51234/callback?x=1",  # the port may vary, the query may not (CVE-2020-15233)
        "http://[::1]:8080/callback",  # registered query dropped
        "http://[::1]:8080/callback?app=2",
        "http://[::1]:8080/callback?app=1&x=1",
        "http://127.0.0.1:51234/Callback",  # case in path
        "http://127.0.0.1:51234/callback/",
        "http://127.0.0.1:51234/other",
        "http://127.0.0.1:51234/callback/../callback",
        "http://127.0.0.1:51234/callback#x",
        "http://127.0.0.1:51234/callback\r\n",
        "http://localhost:51234/callback",  # RFC 8252 §8.3: localhost is not the loopback literal
        "http://127.0.0.1.evil.com/callback",
        "http://127.0.0.1:51234@evil.com/callback",
        "http://evil.com@127.0.0.1:51234/callback",
        "http://127.0.0.2:51234/callback",
        "http://[::1]:8080/callback?app=1".replace("[::1]", "[0:0:0:0:0:0:0:1]"),
        "http://[::1]:51234/callback",  # registered for 127.0.0.1 only with this path and query
        "http://127.0.0.1:0/callback",
        "http://127.0.0.1:65536/callback",
        "https://127.0.0.1:51234/callback",
        "com.example.app:/callback?x=1",  # private-use URIs match exactly
        "com.example.app://callback",
        "COM.EXAMPLE.APP:/callback",
    ],
)
def test_loopback_rule_keeps_path_and_query_exact_rfc8252_7_3(uri: str) -> None:
    assert not matches(uri, NATIVE)


def test_loopback_port_rule_applies_only_to_registered_loopback_uris() -> None:
    # A registered https URI does not gain the any-port rule.
    assert not matches("https://client.example.com:8443/cb", WEB)
    assert not matches("http://127.0.0.1:5000/callback", WEB)
