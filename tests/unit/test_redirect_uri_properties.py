"""Property-based tests of redirect-URI registration (RFC 3986; RFC 6749 §3.1.2; RFC 8252 §7):
whatever string a client offers, an accepted redirect URI is a well-formed absolute URI whose host
and port are valid, and it cannot inject into the pages' Content-Security-Policy or into a header.

The oracle (support/uri_oracle.py) is written from the RFC 3986 ABNF and CSP Level 3's source
grammar, independently of the validator it checks."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.uri_oracle import assert_page_csp_intact, assert_well_formed

from fingrade.oauth.redirect_uri import RedirectUriError, validate_registered
from fingrade.web.pages import page_csp

pytestmark = [pytest.mark.registration, pytest.mark.fuzz]

BOUNDED = settings(
    max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def assert_safe(uri: str) -> None:
    """Everything an accepted redirect URI must be, including in the CSP the pages build from it."""
    assert_well_formed(uri)
    assert_page_csp_intact(page_csp(uri))


# -- generators: URIs assembled from hostile and valid pieces ------------------------------------

_HOSTILE = string.ascii_lowercase[:6] + "AZ09.-_;,'\"` :@[]%/\\?#<>{}|^!$&()*+=~\t\r\n\x00\x7f\u00e9"
hostile = st.text(alphabet=_HOSTILE, max_size=12)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
dns_host = st.lists(label, min_size=1, max_size=4).map(".".join).filter(lambda h: not h.split(".")[-1].isdigit())
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a.compressed}]")
host = st.one_of(dns_host, ipv4, ipv6, hostile, st.builds("{}{}{}".format, dns_host, hostile, dns_host))
port = st.one_of(st.just(""), st.integers(-5, 200000).map(lambda p: f":{p}"), hostile.map(lambda s: ":" + s))
pchars = st.text(alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@", max_size=10)
path = st.one_of(st.just(""), st.lists(pchars, max_size=3).map(lambda segs: "/" + "/".join(segs)), hostile)
query = st.one_of(st.just(""), pchars.map(lambda q: "?" + q), hostile.map(lambda q: "?" + q))
scheme = st.sampled_from(["https", "http", "com.example.app", "HTTPS", "javascript", "ht tp", "data"])
candidate = st.one_of(
    st.builds("{}://{}{}{}{}".format, scheme, host, port, path, query),
    st.builds("{}:{}{}".format, scheme, path, query),
    st.builds("http://127.0.0.1{}{}{}".format, port, path, query),
    st.text(max_size=40),
)


@BOUNDED
@given(uri=candidate, kind=st.sampled_from(["web", "native"]))
@example(uri="https://a.com;x/cb", kind="web")  # a semicolon in the host would end the form-action directive
@example(uri="https://a.com:99999/cb", kind="web")  # not a port
@example(uri="https://a.com,b.com/cb", kind="web")
@example(uri="https://a.com'/cb", kind="web")
@example(uri="com.example.app://x;y/cb", kind="native")
def test_accepted_redirect_uri_is_well_formed_and_cannot_inject_rfc3986(uri: str, kind: str) -> None:
    """RFC 3986 §3 (syntax), §3.2.2 (host), §3.2.3 (port 1-65535 here); RFC 6749 §3.1.2 (absolute,
    no fragment); no userinfo; and no character that could break the CSP built from it or a header."""
    try:
        validate_registered(uri, kind)
    except RedirectUriError:
        return
    assert_safe(uri)


web_uri = st.builds(
    "https://{}{}{}{}".format,
    dns_host | ipv4 | ipv6,
    st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")),
    st.lists(pchars.filter(lambda s: s not in (".", "..")), max_size=3).map(lambda segs: "/" + "/".join(segs)),
    st.one_of(st.just(""), pchars.map(lambda q: "?" + q)),
)


@BOUNDED
@given(uri=web_uri)
def test_well_formed_https_redirect_uris_are_accepted_rfc6749_3_1_2(uri: str) -> None:
    """The converse: a valid https URI (DNS name, IPv4 or IPv6 host, any port 1-65535, RFC 3986 path
    and query) is accepted, so the strictness above does not come from refusing everything."""
    validate_registered(uri, "web")
    validate_registered(uri, "native")  # RFC 8252 §7.2: claimed https for native apps
    assert_safe(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "https://a.com;x/cb",
        "https://a.com:99999/cb",
        "https://a.com:0/cb",
        "https://a.com:/cb",
        "https://a.com:08443/cb",
        "https://a.com:443x/cb",
        "https://a.com,b.com/cb",
        "https://a.com'/cb",
        "https://-a.com/cb",
        "https://a-.com/cb",
        "https://a..com/cb",
        "https://a_b.com/cb",
        "https://.a.com/cb",
        "https://a.com./cb",
        "https://999.1.1.1/cb",
        "https://1.2.3/cb",
        "https://[zz::1]/cb",
        "https://[::1%25eth0]/cb",
        "https://%61.com/cb",
        "https://a.com/%zz",
        'https://a.com/c"b',
        "https://a.com/c<b>",
        "https://a.com/c{b}",
        "https://a.com/c|b",
        "https://a.com/c^b",
        "https://a.com/c`b",
        "https://" + "a" * 64 + ".com/cb",
    ],
)
def test_strict_host_port_and_characters_rfc3986(uri: str) -> None:
    """RFC 3986 §3.2.2-§3.2.3 and §2: each of these got through before (and `;`, `,` or `'` in the
    origin reached the pages' CSP)."""
    with pytest.raises(RedirectUriError):
        validate_registered(uri, "web")


@pytest.mark.parametrize(
    "uri",
    [
        "com.example.app://a;b/cb",
        "com.example.app://u@host/cb",
        "com.example.app://host:99999/cb",
        "com.example.app:/a/../cb",
        "http://127.0.0.1:99999/cb",
        "http://127.0.0.1/a/../cb",
        'com.example.app:/c"b',
    ],
)
def test_strict_native_redirect_uris_rfc8252_7(uri: str) -> None:
    with pytest.raises(RedirectUriError):
        validate_registered(uri, "native")


@pytest.mark.parametrize(
    "uri",
    [
        "https://[2001:db8::1]/cb",
        "https://192.0.2.1:8443/cb",
        "https://a.com/cb?x=1&y=%20z",
        "https://xn--bcher-kva.example/cb",
        "https://intranet/cb",
        "https://a.com",
        "https://a.com/c;b,c'd",
    ],
)
def test_web_registration_accepts_rfc3986_forms(uri: str) -> None:
    validate_registered(uri, "web")
    assert_safe(uri)
