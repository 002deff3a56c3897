"""The browser's forms and the answers to them: reading a form body, 303 See Other, Retry-After."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from fingrade.protocol.asgi import read_body
from fingrade.protocol.errors import invalid_request
from fingrade.protocol.http import parse_params

MAX_FORM = 8192  # the largest page form (login, consent with account choices)


async def read_form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body, parsed as RFC 6749 §3.1 asks (parse_params)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise invalid_request("the request body must be a form")
    return parse_params(await read_body(request, MAX_FORM))


def see_other(url: str) -> Response:
    # RFC 9700 §4.12: never 307 after a credential POST; 303 makes the browser switch to GET.
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def with_retry_after(response: Response, seconds: int | None) -> Response:
    if seconds:
        response.headers["Retry-After"] = str(seconds)  # RFC 6585 §4, RFC 9110 §10.2.3
    return response
