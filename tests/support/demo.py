"""The demo clients as the tests address them (seeded by `fingrade serve --demo`, fingrade/demo.py)."""

from __future__ import annotations

from .server import DEMO_SECRET

NATIVE = "demo-native"
NATIVE_REDIRECT = "http://127.0.0.1:51234/callback"  # RFC 8252 §7.3: any port of the registered loopback URI
SPA = "demo-spa"
SPA_REDIRECT = "https://localhost:3000/callback"
SPA_ORIGIN = "https://localhost:3000"
BACKEND = "demo-backend"
BACKEND_REDIRECT = "https://localhost:9443/callback"
BASIC = (BACKEND, DEMO_SECRET)  # client_secret_basic credentials of demo-backend
