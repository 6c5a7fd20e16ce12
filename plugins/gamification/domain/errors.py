"""The gamification domain's errors: one root, grouped by what the caller can do about them."""

from __future__ import annotations


def N_(message: str) -> str:
    """Marks a sentence for the message catalogs; the Telegram side translates it when it
    shows the error to a person (the domain itself never translates)."""
    return message


class GamificationError(Exception):
    """Root of every error the gamification plugin raises on purpose.

    The message is one sentence meant for a person; handlers may show it as is. Raised with
    a template and its `params` (`Error(N_("… #{tx_id} …"), tx_id=5)`), the Telegram side
    shows the template translated, its numbers written for the reader's language.
    """

    def __init__(self, message: str = "", /, **params: object) -> None:
        self.template = message
        self.params = params
        super().__init__(message.format(**params) if params else message)


class RequestError(GamificationError):
    """The request itself is wrong; retrying it unchanged will fail again."""


class InvalidAmountError(RequestError):
    """An amount or multiplier is zero, negative, not an integer or out of range."""


class IdempotencyConflictError(RequestError):
    """An idempotency key was used before for a different request."""


class InsufficientBalanceError(RequestError):
    """A deduction would take the balance below zero and was not forced."""


class DailyCapError(RequestError):
    """Activity points past the day's cap the award was given (decided in the ledger's
    transaction, under the account's lock, so two processes never both pass it)."""

    def __init__(self, limit: int, today: int) -> None:
        super().__init__(
            N_("The day's cap of {limit:,} activity points is reached ({today:,} earned today)."),
            limit=limit,
            today=today,
        )
        self.limit = limit
        self.today = today


class TransactionNotFoundError(RequestError):
    """The referenced transaction does not exist (in this chat)."""


class RevertError(RequestError):
    """A revert that the ledger contract forbids: a revert of a revert, or a second revert."""


class EngineClosedError(GamificationError):
    """The engine was closed; it accepts no more operations."""


class StorageError(GamificationError):
    """The database could not do what was asked; nothing was written."""


class TransientStorageError(StorageError):
    """A fault that may pass by itself: nothing was written, and the same request can be
    tried again later (the plugin's own handlers do, with backoff).

    `retry_update` is the plugin's half of a small convention with its host: an exception
    raised out of a Telegram update's handling with a true `retry_update` asks the host not
    to confirm that update, so it is delivered again (see bot/polling.py). The plugin never
    imports its host, so the convention is an attribute, not a shared class.
    """

    retry_update = True


class DatabaseLockedError(TransientStorageError):
    """Another process held the database's write lock longer than the busy timeout."""


class DiskFullError(TransientStorageError):
    """The disk (or SQLite's size limit) has no room for the write."""


class StorageIOError(TransientStorageError):
    """The operating system reported an I/O error; it may pass (a network disk, a hiccup)."""


class StorageUnavailableError(TransientStorageError):
    """A transient fault outlasted the retries (`[storage] retry_seconds`); nothing was
    written, and the update or event must be delivered again."""


class DatabaseCorruptError(StorageError):
    """The file is not a SQLite database, or it is damaged."""


class SchemaVersionError(StorageError):
    """The database was written by a newer version of the plugin."""


class ForeignDatabaseError(StorageError):
    """The file is another application's SQLite database; it was left untouched."""


class ReadOnlyLedgerError(StorageError):
    """The ledger file, or the folder SQLite keeps its -wal and -shm files in, is read-only."""


class WriteTimeoutError(StorageError):
    """The writer did not confirm an operation in time; it may still commit later."""
