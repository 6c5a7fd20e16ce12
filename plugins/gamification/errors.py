"""The gamification domain's errors: one root, grouped by what the caller can do about them."""

from __future__ import annotations


class GamificationError(Exception):
    """Root of every error the gamification plugin raises on purpose.

    The message is one sentence meant for a person; handlers may show it as is.
    """


class RequestError(GamificationError):
    """The request itself is wrong; retrying it unchanged will fail again."""


class InvalidAmountError(RequestError):
    """An amount or multiplier is zero, negative, not an integer or out of range."""


class IdempotencyConflictError(RequestError):
    """An idempotency key was used before for a different request."""


class InsufficientBalanceError(RequestError):
    """A deduction would take the balance below zero and was not forced."""


class TransactionNotFoundError(RequestError):
    """The referenced transaction does not exist (in this chat)."""


class RevertError(RequestError):
    """A revert that the ledger contract forbids: a revert of a revert, or a second revert."""


class EngineClosedError(GamificationError):
    """The engine was closed; it accepts no more operations."""


class StorageError(GamificationError):
    """The database could not do what was asked; nothing was written."""


class DatabaseLockedError(StorageError):
    """Another process held the database's write lock longer than the busy timeout."""


class DatabaseCorruptError(StorageError):
    """The file is not a SQLite database, or it is damaged."""


class SchemaVersionError(StorageError):
    """The database was written by a newer version of the plugin."""


class ForeignDatabaseError(StorageError):
    """The file is another application's SQLite database; it was left untouched."""


class ReadOnlyLedgerError(StorageError):
    """The ledger file, or the folder SQLite keeps its -wal and -shm files in, is read-only."""


class DiskFullError(StorageError):
    """The disk holding the ledger has no room left for SQLite's own files."""


class WriteTimeoutError(StorageError):
    """The writer did not confirm an operation in time; it may still commit later."""
