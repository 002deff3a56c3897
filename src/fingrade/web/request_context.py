"""What a route reads from the application (create_app puts it on `app.state`): the core, the edge
settings, the customer-accounts port; and the client's address behind trusted proxies."""

from __future__ import annotations

from starlette.requests import Request

from fingrade.oauth.accounts import CustomerAccounts
from fingrade.oauth.context import Core
from fingrade.protocol import edge


def core(request: Request) -> Core:
    return request.app.state.core


def trusted_proxies(request: Request) -> tuple[str, ...]:
    return request.app.state.trusted_proxies


def cert_header(request: Request) -> str:
    return request.app.state.cert_header


def customer_accounts(request: Request) -> CustomerAccounts:
    return request.app.state.customer_accounts


def client_ip(request: Request) -> str:
    """The client's address (RFC 9700 §4.13: X-Forwarded-For only from a trusted proxy)."""
    return edge.client_ip(request, trusted_proxies(request))
