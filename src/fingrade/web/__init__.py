"""The web layer: ASGI app, routing, parsing, security headers, sessions and the HTML pages."""
