"""Redirect URIs: what a client may register (per profile) and how a request's URI is matched.

Registration parses the URI strictly by RFC 3986 (an absolute URI without fragment or user
information; the host a DNS name, an IPv4 address or an IPv6 literal; a port 1-65535), so nothing a
client registers can later break a header or the Content-Security-Policy built from its origin.

Matching is exact, byte for byte and case-sensitive (RFC 9700 §4.1.3, RFC 6749 §3.1.2.3), with one
exception: for a registered loopback IP literal the port may differ (RFC 8252 §7.3).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# RFC 3986 Appendix A. pchar = unreserved / pct-encoded / sub-delims / ":" / "@"
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_URI = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+\-.]*):"
    r"(?:"
    rf"//(?P<authority>[^/?#]*)(?P<abempty>(?:/{_PCHAR}*)*)"  # hier-part with an authority
    rf"|(?P<path>/?(?:{_PCHAR}+(?:/{_PCHAR}*)*)?)"  # path-absolute / path-rootless / path-empty
    r")"
    rf"(?:\?(?P<query>(?:{_PCHAR}|[/?])*))?"
)
# RFC 1123 §2.1 host name labels (lower case: matching is byte-exact, so the registered form is the form).
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}")  # RFC 3986 §3.2.2 IPv4address
_PORT = re.compile(r"[1-9][0-9]{0,4}")  # no leading zeros: one spelling per port
# Private-use URI scheme in reverse-domain form (RFC 8252 §7.1), e.g. com.example.app:/callback
_PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+\-]*(\.[a-z0-9+\-]+)+")
_FORBIDDEN_SCHEMES = {"javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ftp", "ws", "wss"}
_LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")  # the literals RFC 8252 §7.3 names (§8.3: not `localhost`)


class RedirectUriError(ValueError):
    pass


@dataclass(frozen=True)
class ParsedUri:
    """An absolute URI that passed the RFC 3986 grammar, split into its parts."""

    scheme: str
    host: str | None  # None without an authority; IPv6 literals keep their brackets
    port: int | None
    path: str
    query: str | None

    @property
    def rest(self) -> str:
        """Path and query as written (what the loopback rule compares byte for byte)."""
        return self.path + ("?" + self.query if self.query is not None else "")


def _has_unsafe_chars(uri: str) -> bool:
    return any(ord(ch) < 0x21 or ord(ch) == 0x7F or ord(ch) > 0x7E for ch in uri) or "\\" in uri


def _valid_host(host: str) -> bool:
    """RFC 3986 §3.2.2 host, restricted to what a redirect can reach: an IPv6 literal (no zone), a
    dotted-quad IPv4 address, or a DNS name of RFC 1123 labels. A name whose last label is numeric
    would be read as an IPv4 address by browsers (WHATWG URL), so it must be one."""
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return "%" not in host  # no zone identifier (RFC 6874): it names an interface of the client's host
    if _IPV4.fullmatch(host):
        return True
    labels = host.split(".")
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def parse(uri: str) -> ParsedUri:
    """Parse an absolute URI without fragment or user information (RFC 3986 §3, §4.3). Raises
    RedirectUriError naming what is wrong."""
    if _has_unsafe_chars(uri):
        raise RedirectUriError("redirect URI contains whitespace, control or non-ASCII characters")
    if "#" in uri:
        raise RedirectUriError("redirect URI must not contain a fragment (RFC 6749 §3.1.2)")
    m = _URI.fullmatch(uri)
    if m is None:
        raise RedirectUriError(
            "redirect URI is not an absolute URI (RFC 3986 §4.3): a character is not "
            "allowed or a percent-encoding is broken"
        )
    scheme = m.group("scheme")
    if scheme != scheme.lower():
        raise RedirectUriError("redirect URI needs a lower-case scheme")
    authority = m.group("authority")
    host = port = None
    if authority is not None:
        if "@" in authority:
            raise RedirectUriError("redirect URI must not contain user information")
        host, sep, port_text = authority.rpartition(":") if not authority.endswith("]") else (authority, "", "")
        if not sep:
            host = authority
        elif not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            raise RedirectUriError("redirect URI port must be a number from 1 to 65535")
        else:
            port = int(port_text)
        if host != host.lower():
            raise RedirectUriError("redirect URI host must be lower case")
        if host and not _valid_host(host):
            raise RedirectUriError("redirect URI host must be a DNS name, an IPv4 address or an [IPv6] literal")
        if not host and (scheme in ("http", "https") or port is not None):
            raise RedirectUriError("redirect URI needs a host")
    path = m.group("abempty") if authority is not None else m.group("path")
    if any(seg in (".", "..") for seg in path.split("/")) or "%2e" in path.lower():
        raise RedirectUriError("redirect URI path must not contain dot segments")
    return ParsedUri(scheme=scheme, host=host, port=port, path=path, query=m.group("query"))


def _loopback_parts(uri: str) -> tuple[str, str, str] | None:
    """(IP literal, port, path and query) of a loopback redirect URI as RFC 8252 §7.3 writes it."""
    try:
        parts = parse(uri)
    except RedirectUriError:
        return None
    if parts.scheme != "http" or parts.host not in _LOOPBACK_HOSTS:
        return None
    return parts.host, str(parts.port or ""), parts.rest


def is_loopback(uri: str) -> bool:
    return _loopback_parts(uri) is not None


def validate_registered(uri: str, kind: str) -> None:
    """Check a redirect URI offered for registration. `kind` is the profile's redirect policy:
    `native` (loopback, private-use scheme, https) or `web` (https only)."""
    if not uri or len(uri) > 2000:
        raise RedirectUriError("redirect URI is empty or too long")
    parts = parse(uri)
    scheme = parts.scheme
    if scheme in _FORBIDDEN_SCHEMES:
        raise RedirectUriError(f"redirect URI scheme {scheme!r} is not allowed")
    if scheme == "https":
        if not parts.host:
            raise RedirectUriError("https redirect URI needs a host and no user information")
        return
    if kind != "native":
        raise RedirectUriError("redirect URI must use https")
    if scheme == "http":
        if not is_loopback(uri):
            # RFC 8252 §8.3: `localhost` is NOT RECOMMENDED; use the IP literal.
            raise RedirectUriError(
                "http redirect URIs must use a loopback IP literal: http://127.0.0.1/... or http://[::1]/..."
            )
        return
    if not _PRIVATE_SCHEME.fullmatch(scheme):
        raise RedirectUriError(
            "a private-use URI scheme must be in reverse-domain form, e.g. com.example.app:/callback"
        )


def matches(requested: str, registered: list[str]) -> bool:
    """Exact match, or the loopback any-port rule (RFC 8252 §7.3). A requested URI must be well formed
    too, so a registration stored before these rules were this strict cannot reach a redirect or a CSP."""
    try:
        parse(requested)
    except RedirectUriError:
        return False
    if requested in registered:
        return True
    req = _loopback_parts(requested)
    if req is None:
        return False
    for uri in registered:
        reg = _loopback_parts(uri)
        # Same IP literal and the same path and query byte for byte; only the port may vary.
        if reg is not None and reg[0] == req[0] and reg[2] == req[2]:
            return True
    return False
