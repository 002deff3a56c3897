"""An independent oracle for redirect URIs, written from the RFC 3986 ABNF (Appendix A) and CSP
Level 3's source-expression grammar (§2.3.1), for the property tests of registration: whatever a
client offers, what is accepted must pass these checks."""

from __future__ import annotations

import ipaddress
import re

_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SEGMENT = rf"{_PCHAR}*"
_SEGMENT_NZ = rf"{_PCHAR}+"
_PATH_ABEMPTY = rf"(?:/{_SEGMENT})*"
_PATH_ABSOLUTE = rf"/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"
_PATH_ROOTLESS = rf"{_SEGMENT_NZ}(?:/{_SEGMENT})*"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_REG_NAME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*"
_IP_LITERAL = r"\[[0-9A-Fa-f:.]+\]"  # the address itself is checked with ipaddress
_AUTHORITY = rf"(?P<host>{_IP_LITERAL}|{_REG_NAME})(?::(?P<port>[0-9]*))?"  # no userinfo: RFC 6749 §3.1.2
# absolute-URI without a fragment (RFC 3986 §4.3; RFC 6749 §3.1.2 forbids the fragment)
ABSOLUTE_URI = re.compile(
    rf"(?P<scheme>[A-Za-z][A-Za-z0-9+\-.]*):"
    rf"(?:(?P<slashes>//){_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_ROOTLESS}|)"
    rf"(?:\?{_QUERY})?"
)

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")

# CSP Level 3 §2.3.1: the source expressions a form-action directive may hold.
_CSP_SOURCE = re.compile(
    r"'self'|[a-z][a-z0-9+\-.]*:(?://(?:(?:\*\.)?[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
    r"|\[[0-9a-f:.]+\])(?::[0-9]+)?)?"
)
PAGE_DIRECTIVES = {"default-src", "style-src", "img-src", "frame-ancestors", "base-uri", "form-action"}


def valid_host(host: str) -> bool:
    """A DNS name (RFC 1123 §2.1 labels, lower case), a dotted-quad IPv4 address, or an IPv6 literal
    without a zone (RFC 3986 §3.2.2)."""
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return "%" not in host
    if _IPV4.fullmatch(host):
        return True
    labels = host.split(".")
    return (
        len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()
    )  # a numeric last label would be read as an IPv4 address


def assert_well_formed(uri: str) -> None:
    """An RFC 3986 absolute URI without fragment or userinfo, a valid host and port, and only
    printable ASCII without spaces (nothing that can end or split a header line)."""
    m = ABSOLUTE_URI.fullmatch(uri)
    assert m, f"not an RFC 3986 absolute URI without fragment: {uri!r}"
    assert all(0x21 <= ord(ch) <= 0x7E for ch in uri), uri
    if m.group("slashes"):
        host, port = m.group("host"), m.group("port")
        assert valid_host(host) or (host == "" and m.group("scheme") not in ("http", "https")), uri
        if port is not None:
            assert re.fullmatch(r"[1-9][0-9]{0,4}", port) and 1 <= int(port) <= 65535, uri


def assert_page_csp_intact(csp: str) -> None:
    """The login/consent pages' CSP keeps its six directives, and form-action is exactly 'self' plus
    one well-formed source expression for the redirect URI's origin."""
    directives = [d.strip() for d in csp.split(";")]
    assert len(directives) == len(PAGE_DIRECTIVES), csp
    assert {d.split()[0] for d in directives} == PAGE_DIRECTIVES, csp
    form_action = next(d for d in directives if d.startswith("form-action ")).split()[1:]
    assert len(form_action) == 2 and all(_CSP_SOURCE.fullmatch(s) for s in form_action), csp
