"""Redirect URIs: what a client may register (per profile) and how a request's URI is matched.

Matching is exact, byte for byte and case-sensitive (RFC 9700 §4.1.3, RFC 6749 §3.1.2.3), with one
exception: for a registered loopback IP literal the port may differ (RFC 8252 §7.3).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# A loopback redirect as RFC 8252 §7.3 writes it: http, an IP literal, optional port, then the rest.
_LOOPBACK = re.compile(r"http://(127\.0\.0\.1|\[::1\])(?::(\d{1,5}))?([/?][^#]*)?")
# Private-use URI scheme in reverse-domain form (RFC 8252 §7.1), e.g. com.example.app:/callback
_PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+\-]*(\.[a-z0-9+\-]+)+")
_FORBIDDEN_SCHEMES = {"javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "ftp", "ws", "wss"}


class RedirectUriError(ValueError):
    pass


def _has_unsafe_chars(uri: str) -> bool:
    return any(ord(ch) < 0x21 or ord(ch) == 0x7F or ord(ch) > 0x7E for ch in uri) or "\\" in uri


def _loopback_parts(uri: str) -> tuple[str, str, str] | None:
    m = _LOOPBACK.fullmatch(uri)
    if not m:
        return None
    port = m.group(2)
    if port is not None and not 0 < int(port) < 65536:
        return None
    return m.group(1), port or "", m.group(3) or ""


def is_loopback(uri: str) -> bool:
    return _loopback_parts(uri) is not None


def validate_registered(uri: str, kind: str) -> None:
    """Check a redirect URI offered for registration. `kind` is the profile's redirect policy:
    `native` (loopback, private-use scheme, https) or `web` (https only)."""
    if not uri or len(uri) > 2000:
        raise RedirectUriError("redirect URI is empty or too long")
    if _has_unsafe_chars(uri):
        raise RedirectUriError("redirect URI contains whitespace, control or non-ASCII characters")
    if "#" in uri:
        raise RedirectUriError("redirect URI must not contain a fragment (RFC 6749 §3.1.2)")
    parts = urlsplit(uri)
    scheme = parts.scheme
    # urlsplit lower-cases scheme and hostname, so the case checks look at the raw text.
    if not scheme or not uri.startswith(scheme + ":"):
        raise RedirectUriError("redirect URI needs a lower-case scheme")
    if scheme in _FORBIDDEN_SCHEMES:
        raise RedirectUriError(f"redirect URI scheme {scheme!r} is not allowed")
    if scheme == "https":
        if not parts.hostname or parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise RedirectUriError("https redirect URI needs a host and no user information")
        if parts.netloc != parts.netloc.lower():
            raise RedirectUriError("redirect URI host must be lower case")
        if any(seg in (".", "..") for seg in parts.path.split("/")) or "%2e" in parts.path.lower():
            raise RedirectUriError("redirect URI path must not contain dot segments")
        return
    if kind != "native":
        raise RedirectUriError("redirect URI must use https")
    if scheme == "http":
        if not is_loopback(uri):
            # RFC 8252 §8.3: `localhost` is NOT RECOMMENDED; use the IP literal.
            raise RedirectUriError("http redirect URIs must use a loopback IP literal: http://127.0.0.1/... or http://[::1]/...")
        return
    if not _PRIVATE_SCHEME.fullmatch(scheme):
        raise RedirectUriError("a private-use URI scheme must be in reverse-domain form, e.g. com.example.app:/callback")


def matches(requested: str, registered: list[str]) -> bool:
    """Exact match, or the loopback any-port rule (RFC 8252 §7.3)."""
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
