"""Plain request and response values passed between the web layer and the protocol core."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fingrade.protocol.errors import invalid_request

# RFC 6749 §5.1 / RFC 9110 §5.2: answers carrying tokens or secrets are never cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

MAX_PARAMS = 64
MAX_PARAM_LENGTH = 8192
# RFC 3986 §2.1: '%' starts a two-hex-digit escape. parse_qsl would keep a bad one as literal text,
# which another component may read differently, so it is refused.
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names; a repeated header is joined with ", "
    query: bytes = b""
    body: bytes = b""
    client_ip: str = ""
    # DER of the client certificate the TLS layer (or a trusted proxy) verified (RFC 8705); None without one.
    client_cert: bytes | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(slots=True)
class HttpResponse:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    body: bytes = b""
    content_type: str | None = None


def parse_params(raw: bytes) -> dict[str, str]:
    """Parse application/x-www-form-urlencoded data the way RFC 6749 asks.

    §3.1: parameters MUST NOT be included more than once, and parameters sent without a value
    MUST be treated as if they were omitted. Bad percent-encoding or UTF-8 is a client error.
    """
    if _BAD_ESCAPE.search(raw):
        raise invalid_request("request parameters have a malformed percent-encoding")
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARAMS,
        )
    except UnicodeDecodeError:
        raise invalid_request("request parameters are not valid UTF-8") from None
    except ValueError:
        raise invalid_request("too many request parameters") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise invalid_request(f"parameter {safe_name(name)} is repeated")
        if len(value) > MAX_PARAM_LENGTH:
            raise invalid_request(f"parameter {safe_name(name)} is too long")
        if "\x00" in value or "\x00" in name:
            raise invalid_request("request parameters contain NUL characters")
        params[name] = value
    return {k: v for k, v in params.items() if v != ""}


def safe_name(name: str) -> str:
    return "".join(ch for ch in name[:40] if ch.isalnum() or ch in "_-")


def is_form(request: HttpRequest) -> bool:
    ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
    return ctype == "application/x-www-form-urlencoded"


def form_params(request: HttpRequest) -> dict[str, str]:
    if not is_form(request):
        raise invalid_request("the request body must be application/x-www-form-urlencoded")
    return parse_params(request.body)
