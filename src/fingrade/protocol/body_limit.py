"""Request body limits, shared by the authorization server (web/) and the bank API (bank/): every
route has one, and it holds while the body streams in. A body is never read whole before the check.

- `BodyLimit`, an ASGI middleware in front of every route: a declared Content-Length above the
  route's limit is answered 413 before the application runs (so before any `100 Continue`); a
  chunked body is counted as it arrives and cut off past the limit.
- `read_body`, the one way a route reads its body, with its own limit (equal or lower).

An answer given before the body was read to its end says `Connection: close`; the server then drops
what still arrives for a moment and closes (web/connection_limits.py) instead of reading it all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "BodyLimits", "BodyTooLarge", "declared_length", "read_body"]


class BodyTooLarge(Exception):
    """The request body is larger than its route accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


def declared_length(value: str | bytes) -> int | None:
    """A Content-Length value, or None if it is not a plain decimal number (then it is refused)."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return int(text) if text.isascii() and text.isdigit() else None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read no further than `limit` bytes (+ one chunk, to tell it is too large)."""
    declared = request.headers.get("content-length")
    if declared is not None and ((size := declared_length(declared)) is None or size > limit):
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class BodyLimits:
    """The body limit of each path: `default`, or the lower limit of the first matching prefix in
    `routes`; none for the prefixes in `delegated` (a mounted application with a BodyLimit of its own)."""

    default: int
    routes: tuple[tuple[str, int], ...] = ()
    delegated: tuple[str, ...] = ()

    def for_path(self, path: str) -> int | None:
        if any(_under(path, prefix) for prefix in self.delegated):
            return None
        for prefix, limit in self.routes:
            if _under(path, prefix):
                return min(limit, self.default)
        return self.default


class BodyLimit:
    """Answers `too_large()` (a 413 in the application's error format) to a body over the path's limit."""

    def __init__(self, app: ASGIApp, limits: BodyLimits, too_large: Callable[[], Response]) -> None:
        self.app = app
        self.limits = limits
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.for_path(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared: list[bytes] = []
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared.append(value)
            elif name == b"transfer-encoding":
                chunked = True
        try:
            if declared:
                if len(declared) != 1 or (size := declared_length(declared[0])) is None or size > limit:
                    await self._refuse(scope, receive, send)
                    return
                # The HTTP layer delivers exactly the declared length: nothing to count.
                await self.app(scope, receive, send)
            elif chunked:
                await self._counted(scope, receive, send, limit)
            else:
                await self.app(scope, receive, send)  # neither: no body (RFC 9112 §6.3)
        except BodyTooLarge:  # from a route's own read_body with a lower limit, left unanswered by it
            await self._refuse(scope, receive, send)
        except ClientDisconnect:
            pass  # the client is gone (or the server cut it off, web/connection_limits.py): nobody to answer

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        cut = started = False

        async def counted_receive() -> Message:
            nonlocal received, cut
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut = True
                    raise BodyTooLarge(limit)
            return message

        async def send_closing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if cut:  # the application answered its own 413: the rest of the body is not read either
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, counted_receive, send_closing)
        except BodyTooLarge:
            if not started:  # (an answer already under way is left unfinished: the server closes the connection)
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.too_large()
        response.headers["connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)
