"""A server that does nothing: it answers every request with a fixed token-sized JSON response.

Used only to measure the load driver's own ceiling (`run.py --scenario null`): pinned to the
server core, it is far cheaper per request than Fingrade, so the rate the driver reaches against it
is the most the driver can measure on its core.

    python bench/null_server.py PORT [CERT KEY]
"""

from __future__ import annotations

import asyncio
import ssl
import sys

import httptools
import uvloop

BODY = b'{"access_token":"' + b"x" * 560 + b'","token_type":"Bearer","expires_in":300,"scope":"accounts"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
    b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class Null(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.transport.write(RESPONSE)  # type: ignore[attr-defined]


async def main() -> None:
    port = int(sys.argv[1])
    ctx = None
    if len(sys.argv) > 3:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    server = await asyncio.get_running_loop().create_server(Null, "127.0.0.1", port, ssl=ctx, backlog=1024)
    print(f"null server on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
