"""Points, an append-only hash-chained ledger and achievements for aiogram bots.

The public Python API, usable without Telegram::

    from plugins.gamification import PointsEngine, LedgerPolicy, message_key

    engine = await PointsEngine.open("points.sqlite3", policy=LedgerPolicy(max_amount=10_000))
    receipt = await engine.award(chat_id, user_id, 10, key=event_key("quiz-42"), reason="quiz")
    print(receipt.balance, receipt.duplicate)
    board = await engine.leaderboard(chat_id, Period.WEEK)
    await engine.close()

Every write returns only once it is committed to disk, and is idempotent on its key: a
repeated key returns the first receipt (`duplicate=True`), the same key with different
content raises IdempotencyConflictError. Every error the plugin raises on purpose is a
GamificationError whose message is one sentence fit to show a person.
"""

from plugins.gamification.domain.clock import Clock, FakeClock, SystemClock
from plugins.gamification.domain.errors import (
    DailyCapError,
    DatabaseCorruptError,
    DatabaseLockedError,
    EngineClosedError,
    GamificationError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InvalidAmountError,
    RequestError,
    RevertError,
    SchemaVersionError,
    StorageError,
    TransactionNotFoundError,
    WriteTimeoutError,
)
from plugins.gamification.domain.keys import admin_key, event_key, message_key
from plugins.gamification.domain.models import (
    AccountBalance,
    Breakdown,
    Leaderboard,
    Multiplier,
    Period,
    Receipt,
    Standing,
    Transaction,
    TxKind,
)
from plugins.gamification.engine import LedgerPolicy, PointsEngine
from plugins.gamification.storage.integrity import IntegrityReport, Violation
from plugins.gamification.storage.sqlite.integrity import check_ledger

__all__ = [
    "AccountBalance",
    "Breakdown",
    "Clock",
    "DailyCapError",
    "DatabaseCorruptError",
    "DatabaseLockedError",
    "EngineClosedError",
    "FakeClock",
    "GamificationError",
    "IdempotencyConflictError",
    "InsufficientBalanceError",
    "IntegrityReport",
    "InvalidAmountError",
    "Leaderboard",
    "LedgerPolicy",
    "Multiplier",
    "Period",
    "PointsEngine",
    "Receipt",
    "RequestError",
    "RevertError",
    "SchemaVersionError",
    "Standing",
    "StorageError",
    "SystemClock",
    "Transaction",
    "TransactionNotFoundError",
    "TxKind",
    "Violation",
    "WriteTimeoutError",
    "admin_key",
    "check_ledger",
    "event_key",
    "message_key",
]
