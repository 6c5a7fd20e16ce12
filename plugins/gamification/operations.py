"""Old import path of the operator tasks, which live in ledger/maintenance.py."""

from plugins.gamification.ledger.maintenance import (
    EXPORT_COLUMNS,
    REBUILD_ACTION,
    AccountState,
    BalanceDifference,
    OperationRefusedError,
    RebuildRefusedError,
    backup,
    export,
    partial_name,
    rebuild_balances,
    refuse_unsafe_output,
)

__all__ = [
    "EXPORT_COLUMNS",
    "REBUILD_ACTION",
    "AccountState",
    "BalanceDifference",
    "OperationRefusedError",
    "RebuildRefusedError",
    "backup",
    "export",
    "partial_name",
    "rebuild_balances",
    "refuse_unsafe_output",
]
