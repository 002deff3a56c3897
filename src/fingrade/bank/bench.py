"""A benchmark hook for bench/: book N payments through the ledger and time them (the bank API is asked for
payment-execution throughput on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from typing import Any

from fingrade.bank.ledger import Ledger

FUNDING = 10**12  # minor units per debtor account: never the limit in a benchmark


async def run_transfers(
    book: Ledger, n: int, concurrency: int = 8, *, hot_account: bool = False, external: bool = True
) -> dict[str, Any]:
    """Book `n` payments, `concurrency` at a time, each in its own transaction, as the payment API
    will. Each worker pays from an account of its own (or all from one, `hot_account`, to measure
    contention on one row), to another bank through the clearing account (`external`) or to an
    account of this bank. Returns {booked, seconds, per_second, p50_ms, p99_ms}."""
    owner = "bench-" + secrets.token_hex(4)
    debtors = []
    for _ in range(1 if hot_account else concurrency):
        acc = await book.create_account(
            owner_user_id=owner, kind="current", currency="EUR", name="bench", holder_name="Bench Debtor"
        )
        await book.receive_external(
            creditor_account_id=acc.id,
            debtor_iban="DE89370400440532013000",
            debtor_name="Bench Funding",
            amount=FUNDING,
            currency="EUR",
        )
        debtors.append(acc)
    creditor = await book.create_account(
        owner_user_id=owner, kind="current", currency="EUR", name="bench", holder_name="Bench Creditor"
    )
    latencies: list[float] = []
    todo = iter(range(n))

    async def worker(w: int) -> None:
        debtor = debtors[w % len(debtors)]
        for i in todo:
            target: dict[str, Any] = (
                {"creditor_iban": "GB82WEST12345698765432", "creditor_name": "Bench Payee"}
                if external
                else {"creditor_account_id": creditor.id}
            )
            t0 = time.perf_counter()
            await book.transfer(
                debtor_account_id=debtor.id, amount=100 + i % 900, currency="EUR", remittance=f"bench {i}", **target
            )
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "booked": len(latencies),
        "seconds": seconds,
        "per_second": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0.0,
    }
