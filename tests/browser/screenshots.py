"""Take the screenshots in docs/screenshots/: the login, consent (scopes; a payment) and error pages at 1280
and 375 px wide.

    .venv/bin/python tests/browser/screenshots.py [output-dir]

Starts the real server (SQLite, demo data) on a free loopback port, drives Debian's Chromium and
writes small PNGs. Not a test: the pages' behaviour is tested in tests/browser/.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from browserkit import launch_chromium, sign_in, start_authorization  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from support.server import free_port, start_server  # noqa: E402

WIDTHS = {"desktop": (1280, 800), "mobile": (375, 740)}
REDIRECT = "http://127.0.0.1:8765/callback"  # never reached: we stop at the consent page
BACKEND_REDIRECT = "https://localhost:9443/callback"  # demo-backend's, never reached either
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "25.00"},
    "creditorName": "Acme Ltd",
    "creditorAccount": {"iban": "GB33BUKB20201555555555"},
    "remittanceInformationUnstructured": "Invoice 123",
}


def _default_port() -> int:
    """8443, the default port, so the pages show the address people will see; else any free one."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8443))
            return 8443
        except OSError:
            return free_port()


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), port=_default_port())
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p)
                for label, (width, height) in WIDTHS.items():
                    ctx = browser.new_context(
                        ignore_https_errors=True, base_url=server.base_url, viewport={"width": width, "height": height}
                    )
                    page = ctx.new_page()
                    start_authorization(page, REDIRECT, scope="openid profile accounts")
                    page.screenshot(path=out / f"login-{label}.png")
                    sign_in(page)
                    page.screenshot(path=out / f"consent-{label}.png")
                    page.goto("/authorize?client_id=unknown-app&response_type=code")
                    page.screenshot(path=out / f"error-{label}.png")
                    # A rich authorization request (RFC 9396): a payment, always asked for.
                    start_authorization(
                        page,
                        BACKEND_REDIRECT,
                        client_id="demo-backend",
                        scope="openid",
                        authorization_details=json.dumps([PAYMENT]),
                    )
                    page.screenshot(path=out / f"consent-payment-{label}.png", full_page=True)
                    ctx.close()
                browser.close()
        finally:
            server.stop()
    for png in sorted(out.glob("*.png")):
        print(f"{png}  {png.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
