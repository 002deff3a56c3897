"""`fingrade serve --demo` seeds the demo bank ledger: alice and bob have their
accounts and months of bookings, and the books balance — read straight from the server's database."""

from __future__ import annotations

import pytest
from support.database import db_rows, user_id
from support.server import Server

pytestmark = pytest.mark.bank


def test_serve_demo_seeds_a_balanced_bank_ledger(server: Server) -> None:
    alice, bob = user_id(server, "alice"), user_id(server, "bob")
    rows = db_rows(
        server,
        "SELECT owner_user_id, kind, currency, status FROM bank_accounts "
        "WHERE owner_user_id IS NOT NULL ORDER BY owner_user_id, kind, currency",
    )
    assert sorted((o == alice, k, c, s) for o, k, c, s in rows) == sorted(
        [
            (True, "current", "EUR", "open"),
            (True, "savings", "EUR", "open"),
            (False, "current", "EUR", "open"),
            (False, "current", "GBP", "open"),
        ]
    )
    assert {o for o, *_ in rows} == {alice, bob}
    # every account's balance is the sum of its entries, and every currency sums to zero
    assert (
        db_rows(
            server,
            "SELECT a.id FROM bank_accounts a LEFT JOIN bank_entries e ON e.account_id = a.id "
            "GROUP BY a.id, a.balance HAVING a.balance != COALESCE(SUM(e.amount), 0)",
        )
        == []
    )
    assert db_rows(server, "SELECT currency FROM bank_entries GROUP BY currency HAVING SUM(amount) != 0") == []
    ((entries,),) = db_rows(
        server,
        "SELECT COUNT(*) FROM bank_entries e JOIN bank_accounts a ON a.id = e.account_id WHERE a.owner_user_id = ?",
        alice,
    )
    assert entries > 100
    log = (server.data_dir / "server.log").read_text()
    assert "demo bank ledger: 4 accounts" in log
