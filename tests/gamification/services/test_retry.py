"""Transient storage faults: which errors are worth a retry, and how the retries behave."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from plugins.gamification.domain.errors import (
    DatabaseCorruptError,
    DatabaseLockedError,
    DiskFullError,
    InvalidAmountError,
    StorageError,
    StorageIOError,
    StorageUnavailableError,
    TransientStorageError,
)
from plugins.gamification.services.retry import StorageRetry
from plugins.gamification.storage.health import StorageHealth
from plugins.gamification.storage.sqlite.faults import storage_error

HEALTH_LOG = "plugins.gamification.storage.health"


@pytest.mark.parametrize(
    ("message", "kind", "transient"),
    [
        ("database is locked", DatabaseLockedError, True),
        ("database table is locked", DatabaseLockedError, True),
        ("database or disk is full", DiskFullError, True),
        ("disk I/O error", StorageIOError, True),
        ("attempt to write a readonly database", StorageError, False),
        ("file is not a database", DatabaseCorruptError, False),
        ("database disk image is malformed", DatabaseCorruptError, False),
    ],
)
def test_storage_errors_that_may_pass_are_transient(
    message: str, kind: type[StorageError], transient: bool
) -> None:
    error = storage_error(sqlite3.OperationalError(message), "ledger.sqlite3")
    assert isinstance(error, kind)
    assert isinstance(error, TransientStorageError) is transient
    assert getattr(error, "retry_update", False) is transient


def test_a_real_busy_database_is_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0.01, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            other.execute("INSERT INTO t VALUES (1)")
        assert isinstance(storage_error(caught.value, path), DatabaseLockedError)
    finally:
        other.close()
        holder.close()


class Flaky:
    """An operation failing with `error` for its first `failures` calls."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self, value: int) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return value


def locked() -> DatabaseLockedError:
    return DatabaseLockedError("The database x is locked by another process.")


def retry(bound: float = 60.0) -> StorageRetry:
    return StorageRetry(
        StorageHealth(Path("x")), bound=bound, first_delay=0.001, max_delay=0.004,
        jitter=lambda: 1.0,
    )  # fmt: skip


async def test_a_transient_fault_is_retried_and_one_outage_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = retry()
    ops = [Flaky(3, locked()), Flaky(5, locked()), Flaky(0, locked())]
    with caplog.at_level(logging.INFO, logger=HEALTH_LOG):
        assert [await r(op, i) for i, op in enumerate(ops)] == [0, 1, 2]
    assert [op.calls for op in ops] == [4, 6, 1]
    lines = [(rec.levelname, rec.getMessage()) for rec in caplog.records]
    assert [level for level, _ in lines] == ["WARNING", "INFO", "WARNING", "INFO"]
    assert "1 operations were delayed, 0 of them handed back" in lines[1][1]
    health = r.health
    assert (health.outages, health.retries, health.handed_back) == (2, 8, 0)
    assert not health.unavailable


async def test_past_the_bound_the_operation_is_handed_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = retry(bound=0.02)
    op = Flaky(10**9, DiskFullError("The disk holding x is full; nothing was written."))
    with (
        caplog.at_level(logging.INFO, logger=HEALTH_LOG),
        pytest.raises(StorageUnavailableError) as raised,
    ):
        await r(op, 1)
    assert raised.value.retry_update is True
    assert "is full" in str(raised.value)
    assert op.calls > 1
    assert r.health.unavailable
    assert r.health.handed_back == 1
    assert len(caplog.records) == 1  # the outage's warning, nothing per try


async def test_a_zero_bound_hands_back_at_once() -> None:
    r = retry(bound=0)
    op = Flaky(1, locked())
    with pytest.raises(StorageUnavailableError):
        await r(op, 1)
    assert op.calls == 1


async def test_a_permanent_error_is_not_retried() -> None:
    r = retry()
    op = Flaky(1, InvalidAmountError("The amount must not be zero."))
    with pytest.raises(InvalidAmountError):
        await r(op, 1)
    assert op.calls == 1
    assert not r.health.unavailable
