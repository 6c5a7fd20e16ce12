"""Old import path of the integrity check, which lives in ledger/integrity.py."""

from plugins.gamification.ledger.integrity import (
    Checkpoint,
    CheckpointNotStoredError,
    IntegrityReport,
    Violation,
    check_ledger,
    latest_checkpoint,
    open_for_check,
    record_checkpoint,
    run_check,
)

__all__ = [
    "Checkpoint",
    "CheckpointNotStoredError",
    "IntegrityReport",
    "Violation",
    "check_ledger",
    "latest_checkpoint",
    "open_for_check",
    "record_checkpoint",
    "run_check",
]
