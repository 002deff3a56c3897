"""The bank beside the authorization server, by deployment role (config.py `role`).

- Role `all`: the bank API is mounted in this process at /bank/v1 and still trusts the AS only over
  HTTP (bank/server.py `in_process_bank`); the consent page's customer-accounts port reads that
  bank's ledger.
- Role `as`: no bank API here; the bank runs as its own process (`fingrade serve --role bank`) on the
  deployment's database (docs/banking-api.md, "Roles"), so the port reads the ledger tables there,
  through the AS's own connection to that database.

Either way the core and the pages get the port (oauth/accounts.py), never a bank type.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount

from fingrade.bank.context import Bank
from fingrade.bank.customer_accounts import LedgerCustomerAccounts
from fingrade.bank.ledger import Ledger
from fingrade.bank.routes import bank_api, bank_mount
from fingrade.bank.server import in_process_bank
from fingrade.config import Settings
from fingrade.oauth.accounts import AccountChoice, CustomerAccounts
from fingrade.oauth.context import Core
from fingrade.runtime import ensure_bank_client
from fingrade.store.sql.db import Database


def bank_api_here(settings: Settings) -> tuple[Starlette, Mount] | None:
    """Role all: the bank API application (its state.bank is set at start) and its mount; else None."""
    if settings.role != "all":
        return None
    app, mounted = bank_api(settings.http_max_body_bytes)
    return app, bank_mount(mounted)


async def start_bank(settings: Settings, as_app: Starlette, bank_app: Starlette, core: Core, db: Database) -> Bank:
    """The in-process bank, introspecting as its configured client or the derived `fingrade-bank`
    (runtime.py `ensure_bank_client`); its tables are in the AS's database."""
    client_id, secret = settings.bank_client_id, settings.bank_client_secret
    if not client_id:
        client_id, secret = await ensure_bank_client(core)
    bank = in_process_bank(settings, as_app, core.onetime, core.server_key, db, client_id, secret)
    bank_app.state.bank = bank
    return bank


def customer_accounts(bank: Bank | None, db: Database) -> CustomerAccounts:
    """The consent page's accounts: the in-process bank's ledger, or (role as) the ledger in `db`."""
    ledger = bank.ledger if bank is not None else Ledger(db)
    return LedgerCustomerAccounts(ledger, AccountChoice)
