"""The integrity check's run time on a ledger of many transactions, as the daily job runs it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.baselines import BulkLedger
from plugins.gamification.storage.sqlite.integrity import run_check


@dataclass(frozen=True, slots=True)
class IntegrityRun:
    transactions: int
    accounts: int
    build_seconds: float
    seconds: float
    clean: bool


def integrity(path: Path, transactions: int, accounts: int) -> IntegrityRun:
    """Write a valid ledger (real chains, bulk inserted), then time run_check(record=True)
    with SQLite's quick_check, exactly what the daily job does. Blocking: run it in a thread.
    """
    started = time.perf_counter()
    ledger = BulkLedger(path, outbox=False)
    try:
        ledger.write(transactions, accounts, prefix="chk", start=time.time() - 86_400)
    finally:
        ledger.close()
    built = time.perf_counter() - started
    started = time.perf_counter()
    report = run_check(path, record=True, quick_check=True)
    seconds = time.perf_counter() - started
    return IntegrityRun(report.transactions, report.accounts, built, seconds, report.ok)
