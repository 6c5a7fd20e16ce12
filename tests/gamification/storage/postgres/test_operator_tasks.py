"""Every operator task on PostgreSQL gives what it gives on SQLite, and `migrate` moves a whole
ledger between them, proven by digest.

One SQLite ledger with real content (awards, a revert that revokes achievements, audits, a
recorded checkpoint, then more awards; freezes, suspicions, known people, a delivered outbox
event, a claimed scheduled run, chats' page access) is migrated to a fresh PostgreSQL
database; the tasks then run on both and are compared.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.__main__ import main
from plugins.gamification.domain.clock import FakeClock
from plugins.gamification.domain.models import TxKind
from plugins.gamification.storage import tasks
from plugins.gamification.storage.export import ExportFormat
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.storage.operations import Operation, Reversal
from plugins.gamification.storage.options import parse_location
from plugins.gamification.storage.postgres import maintenance as pg
from plugins.gamification.storage.postgres.connect import connect
from plugins.gamification.storage.rebuild import OperationRefusedError, RebuildRefusedError
from plugins.gamification.storage.records import AuditNote
from plugins.gamification.storage.sqlite import maintenance as lite
from plugins.gamification.storage.sqlite import schema as sqlite_schema
from plugins.gamification.storage.sqlite.integrity import run_check
from plugins.gamification.storage.sqlite.writer import BatchWriter
from plugins.gamification.storage.tables import TABLES
from plugins.gamification.storage.transfer import TransferMismatchError, TransferRefusedError
from tests.support.postgres import (
    create_database,
    database_url,
    drop_database,
    fresh_database,
    require_postgres,
)
from tests.support.postings import CHAT, effects, post

OTHER = CHAT - 1
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CLOCK = FakeClock(datetime(2026, 4, 1, tzinfo=UTC))


BEFORE_CHECKPOINT: list[list[Operation]] = [
    [
        post(1, 30, "m1"),
        post(1, 30, "m2"),
        post(2, 1200, "m3"),
        post(
            3,
            20,
            "a1",
            TxKind.ADMIN,
            actor_id=9,
            reason='help "quoted", é',
            audit=AuditNote("award", "20 for help"),
        ),
        post(1, 7, "o1", chat=OTHER),
    ],
    [Reversal(3, "r1", 9, "mistake", CHAT, AuditNote("revert", "#3")), post(4, 5, "m4")],
]
AFTER_CHECKPOINT: list[list[Operation]] = [[post(1, 5, "m5"), post(2, 9, "o2", chat=OTHER)]]


def build_sqlite_ledger(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    sqlite_schema.migrate(conn)
    moments: Iterator[datetime] = (START + timedelta(hours=h) for h in range(100))
    writer = BatchWriter(lambda: next(moments), effects())
    for batch in BEFORE_CHECKPOINT:
        writer.apply(conn, batch)
    conn.execute("INSERT INTO freezes VALUES (?, 5, '2026-03-02T00:00:00Z', 9, 'spam')", (CHAT,))
    conn.execute(
        "INSERT INTO suspicions (chat_id, user_id, reason, detail, created_at)"
        " VALUES (?, 5, 'flood', '{}', '2026-03-02T00:00:00Z')",
        (CHAT,),
    )
    conn.executemany(
        "INSERT INTO known_users VALUES (?, ?, ?, ?, '2026-03-02T00:00:00Z')",
        [(1, "ann", "Ann", 0), (2, None, "Bob ✓", 0), (7, "helper_bot", "Helper", 1)],
    )
    conn.execute("UPDATE outbox SET delivered_at = '2026-03-02T00:00:00Z' WHERE id = 1")
    conn.execute(
        "INSERT INTO job_runs VALUES ('integrity', '2026-03-02T02:00:00.000000Z',"
        " '2026-03-02T02:00:00.100000Z', 'host:1:abc')"
    )
    conn.execute("INSERT INTO chat_settings VALUES (?, 'ru', '2026-03-02T00:00:00Z', 9)", (CHAT,))
    conn.executemany(
        "INSERT INTO web_access VALUES (?, ?, 9, '2026-03-02T00:00:00Z')",
        [(CHAT, 1), (OTHER, 0)],
    )
    conn.close()
    assert run_check(path, record=True, clock=CLOCK).ok
    conn = sqlite3.connect(path, isolation_level=None)
    for batch in AFTER_CHECKPOINT:
        writer.apply(conn, batch)
    conn.close()


@pytest.fixture(scope="module")
def sqlite_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite3"
    build_sqlite_ledger(path)
    return path


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with fresh_database("gamif_c") as dsn:
        yield dsn


@pytest.fixture
async def pg_ledger(sqlite_ledger: Path, pg_dsn: str) -> str:
    """The SQLite ledger migrated into a fresh PostgreSQL database."""
    await tasks.migrate(parse_location(sqlite_ledger), parse_location(pg_dsn))
    return pg_dsn


def sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {t.name: sorted(t.normalise(r) for r in conn.execute(t.select)) for t in TABLES}
    finally:
        conn.close()


async def pg_rows(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await connect(dsn)
    try:
        return {
            t.name: sorted(t.normalise(tuple(r)) for r in await conn.fetch(t.select))
            for t in TABLES
        }
    finally:
        await conn.close()


def same_report(a: IntegrityReport, b: IntegrityReport) -> None:
    """Every line but the storage-specific one and the duration."""
    assert a.digest == b.digest
    assert [v.describe() for v in a.violations] == [v.describe() for v in b.violations]
    lines_a, lines_b = a.to_text(listed=50).splitlines(), b.to_text(listed=50).splitlines()
    assert lines_a[0] == lines_b[0]
    assert lines_a[2] == lines_b[2]
    assert lines_a[4:] == lines_b[4:]
    assert lines_a[1].split(" in ")[0] == lines_b[1].split(" in ")[0]


async def test_migrate_round_trip_keeps_every_row_and_the_digest(
    sqlite_ledger: Path, pg_dsn: str, tmp_path: Path
) -> None:
    result = await tasks.migrate(parse_location(sqlite_ledger), parse_location(pg_dsn))
    back = tmp_path / "back.sqlite3"
    again = await tasks.migrate(parse_location(pg_dsn), parse_location(back))
    expected = sqlite_rows(sqlite_ledger)
    assert all(expected[name] for name in expected), "every table has rows to copy"
    assert await pg_rows(pg_dsn) == expected
    assert sqlite_rows(back) == expected
    counts = {name: len(rows) for name, rows in expected.items()}
    assert result.copied == result.source_counts == result.target_counts == counts
    assert again.copied == counts
    assert result.source_report
    assert result.target_report
    assert again.target_report
    digests = {result.source_report.digest, result.target_report.digest}
    assert digests == {again.target_report.digest}
    text = result.to_text()
    assert f"Source digest: {result.source_report.digest} (clean" in text
    assert "Copy   digest:" in text
    assert "transactions" in text
    # The checks of both sides read the same, against the same (copied) checkpoint.
    same_report(run_check(sqlite_ledger), await tasks.check(parse_location(pg_dsn), record=False))
    # New rows on PostgreSQL get ids after the copied ones.
    conn = await connect(pg_dsn)
    try:
        new_id = await conn.fetchval(
            "INSERT INTO suspicions (chat_id, user_id, reason, detail, created_at)"
            " VALUES (1, 1, 'x', '{}', 'now') RETURNING id"
        )
    finally:
        await conn.close()
    assert new_id == counts["suspicions"] + 1


async def test_check_on_postgresql_reads_like_sqlite_and_records_a_checkpoint(
    pg_ledger: str, sqlite_ledger: Path
) -> None:
    conn = await connect(pg_ledger)
    try:
        report = await pg.check(conn, "the test ledger", record=True, clock=CLOCK)
        assert report.ok
        assert report.quick_check == "ok"
        assert report.storage_check == "PostgreSQL append-only triggers"
        assert "PostgreSQL append-only triggers: ok" in report.to_text()
        # The next check is held to the checkpoint just stored.
        later = await pg.check(conn, "the test ledger", record=False, clock=CLOCK)
        assert later.anchor is not None
        assert later.anchor.digest == report.digest
        assert later.anchor.high_water == report.high_water
        assert later.ok
    finally:
        await conn.close()
    assert report.digest == run_check(sqlite_ledger).digest


TAMPERING = {
    "edited amount": (
        "UPDATE transactions SET amount = amount + 1 WHERE id = 2",
        "UPDATE transactions SET amount = amount + 1 WHERE id = 2",
    ),
    "edited hash": (
        "UPDATE transactions SET hash = '" + "f" * 64 + "' WHERE id = 4",
        "UPDATE transactions SET hash = '" + "f" * 64 + "' WHERE id = 4",
    ),
    "deleted row": (
        "DELETE FROM transactions WHERE id = 1",
        "DELETE FROM transactions WHERE id = 1",
    ),
    "deleted last row": (
        "DELETE FROM transactions WHERE id = (SELECT MAX(id) FROM transactions)",
        "DELETE FROM transactions WHERE id = (SELECT MAX(id) FROM transactions)",
    ),
}


# SQLite does not enforce its foreign keys (no PRAGMA foreign_keys); the attacker drops them.
FOREIGN_KEYS = (
    ("unlocks", "unlocks_cause_tx_id_fkey"),
    ("transactions", "transactions_reverts_id_fkey"),
)


def names_in(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir()]


def copy_file(source: Path, dest: Path) -> None:
    dest.write_bytes(source.read_bytes())


@pytest.mark.parametrize("how", sorted(TAMPERING))
async def test_tampering_is_reported_the_same_on_both_backends(
    how: str, pg_ledger: str, sqlite_ledger: Path, tmp_path: Path
) -> None:
    lite_sql, pg_sql = TAMPERING[how]
    copy = tmp_path / "tampered.sqlite3"
    copy_file(sqlite_ledger, copy)
    conn = sqlite3.connect(copy, isolation_level=None)
    conn.execute("DROP TRIGGER transactions_no_update")
    conn.execute("DROP TRIGGER transactions_no_delete")
    conn.execute(lite_sql)
    conn.close()
    # An attacker with the server's superuser: the triggers off, history edited, back on.
    admin = await asyncpg.connect(pg_ledger)
    try:
        await admin.execute("ALTER TABLE transactions DISABLE TRIGGER USER")
        await admin.execute("ALTER TABLE unlocks DROP CONSTRAINT unlocks_cause_tx_id_fkey")
        await admin.execute(
            "ALTER TABLE transactions DROP CONSTRAINT transactions_reverts_id_fkey"
        )
        await admin.execute(pg_sql)
        await admin.execute("ALTER TABLE transactions ENABLE TRIGGER USER")
    finally:
        await admin.close()
    on_sqlite = run_check(copy)
    on_postgres = await tasks.check(parse_location(pg_ledger), record=False)
    assert not on_sqlite.ok
    same_report(on_sqlite, on_postgres)


async def test_a_disabled_append_only_trigger_is_a_violation(pg_ledger: str) -> None:
    admin = await asyncpg.connect(pg_ledger)
    try:
        await admin.execute("ALTER TABLE transactions DISABLE TRIGGER transactions_no_delete")
    finally:
        await admin.close()
    report = await tasks.check(parse_location(pg_ledger), record=False)
    assert report.violation_count == 1
    assert report.quick_check.startswith("transactions_no_delete is disabled")
    assert "append-only triggers" in report.violations[0].describe()


async def test_backup_writes_a_sqlite_ledger_that_checks_with_the_same_digest(
    pg_ledger: str, tmp_path: Path
) -> None:
    dest = tmp_path / "backup.sqlite3"
    report = await tasks.backup(parse_location(pg_ledger), dest)
    assert report.ok
    assert report.quick_check == "ok"
    assert report.digest == (await tasks.check(parse_location(pg_ledger), record=False)).digest
    assert sqlite_rows(dest) == await pg_rows(pg_ledger)
    assert await asyncio.to_thread(names_in, tmp_path) == [dest.name]
    with pytest.raises(OperationRefusedError, match="already exists"):
        await tasks.backup(parse_location(pg_ledger), dest)


@pytest.mark.parametrize(("fmt", "chat"), [("csv", None), ("jsonl", None), ("csv", OTHER)])
async def test_export_is_byte_identical_to_sqlites(
    fmt: ExportFormat, chat: int | None, pg_ledger: str, sqlite_ledger: Path
) -> None:
    on_sqlite, on_postgres = io.StringIO(), io.StringIO()
    count = lite.export(sqlite_ledger, on_sqlite, fmt, chat)
    assert await tasks.export(parse_location(pg_ledger), on_postgres, fmt, chat) == count
    assert count > 0
    assert on_postgres.getvalue() == on_sqlite.getvalue()


async def test_rebuild_balances_on_postgresql(pg_ledger: str) -> None:
    conn = await connect(pg_ledger)
    try:
        await conn.execute("UPDATE accounts SET balance = balance + 50 WHERE user_id = 1")
        found = await pg.rebuild_balances(conn, "db", apply=False, actor="t", at="2026-05-01")
        assert [(d.chat_id, d.user_id) for d in found] == [(OTHER, 1), (CHAT, 1)]
        assert all(d.cached and d.cached.balance == d.recomputed.balance + 50 for d in found)
        fixed = await pg.rebuild_balances(conn, "db", apply=True, actor="t", at="2026-05-01")
        assert fixed == found
        audit = await conn.fetch(
            "SELECT chat_id, target_id, detail, created_at FROM admin_actions"
            " WHERE action = 'rebuild-balance' ORDER BY id"
        )
        assert [(r[0], r[1], r[3]) for r in audit] == [
            (OTHER, 1, "2026-05-01"), (CHAT, 1, "2026-05-01"),
        ]  # fmt: skip
        assert '"actor": "t"' in audit[0][2]
        assert await pg.rebuild_balances(conn, "db", apply=False, actor="t", at="x") == []
        assert (await pg.check(conn, "db", record=False, clock=CLOCK)).ok
        # A tampered ledger is never laundered into the cache.
        await conn.execute("UPDATE accounts SET balance = 0 WHERE user_id = 2")
        await conn.execute("ALTER TABLE transactions DISABLE TRIGGER USER")
        await conn.execute("UPDATE transactions SET reason = 'rewritten' WHERE id = 1")
        await conn.execute("ALTER TABLE transactions ENABLE TRIGGER USER")
        with pytest.raises(RebuildRefusedError, match="launder"):
            await pg.rebuild_balances(conn, "db", apply=True, actor="t", at="x")
    finally:
        await conn.close()


async def test_migrate_refuses_a_target_with_rows_and_rolls_back_a_bad_copy(
    pg_ledger: str, sqlite_ledger: Path, tmp_path: Path
) -> None:
    before = await pg_rows(pg_ledger)
    with pytest.raises(TransferRefusedError, match="not empty"):
        await tasks.migrate(parse_location(sqlite_ledger), parse_location(pg_ledger))
    with pytest.raises(TransferRefusedError, match="same ledger"):
        await tasks.migrate(parse_location(pg_ledger), parse_location(pg_ledger))
    assert await pg_rows(pg_ledger) == before
    # A source that fails its check is not copied: the target is left as it was.
    bad = tmp_path / "bad.sqlite3"
    copy_file(sqlite_ledger, bad)
    conn = sqlite3.connect(bad, isolation_level=None)
    conn.execute("UPDATE accounts SET balance = 1 WHERE user_id = 2")
    conn.close()
    target = tmp_path / "copy.sqlite3"
    with pytest.raises(TransferMismatchError, match="did not verify") as caught:
        await tasks.migrate(parse_location(bad), parse_location(target))
    assert "the source fails the integrity check" in str(caught.value)
    assert not target.exists()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_on_postgresql(
    sqlite_ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_postgres()
    name = asyncio.run(create_database("gamif_c"))
    dsn = database_url(name)
    try:
        code, out, err = run_cli(capsys, "migrate", "--from", str(sqlite_ledger), "--to", dsn)
        assert code == 0, err
        assert err == ""
        assert "both sides check clean with the same digest" in out
        expected = run_check(sqlite_ledger)
        digest = expected.digest
        assert out.count(digest) == 2
        code, out, err = run_cli(capsys, "check", "--db", dsn, "--no-record")
        assert code == 0
        assert f"Digest: {digest}" in out
        assert "PostgreSQL append-only triggers: ok" in out
        code, out, err = run_cli(capsys, "migrate", "--from", str(sqlite_ledger), "--to", dsn)
        assert code == 2
        assert "not empty" in err
        assert len(err.strip().splitlines()) == 1
        dest = tmp_path / "b.sqlite3"
        code, out, _ = run_cli(capsys, "backup", str(dest), "--db", dsn)
        assert code == 0
        assert "(a SQLite ledger file)" in out
        assert f"Digest: {digest}" in out
        code, out, _ = run_cli(capsys, "export", "--format", "jsonl", "--db", dsn)
        assert code == 0
        assert len(out.splitlines()) == expected.transactions
        code, out, _ = run_cli(capsys, "rebuild-balances", "--db", dsn)
        assert code == 0
        assert "nothing to change" in out
    finally:
        asyncio.run(drop_database(name))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ann:s3cret-pw@127.0.0.1:notaport/db",
        "postgresql://ann:s3cret-pw@127.0.0.1:1/db",
        "mysql://ann:s3cret-pw@127.0.0.1/db",
    ],
)
def test_cli_refuses_a_bad_url_in_one_sentence_without_the_password(
    url: str, sqlite_ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (("migrate", "--from", str(sqlite_ledger), "--to", url), ("check", "--db", url)):
        code, out, err = run_cli(capsys, *args)
        assert code == 2, err
        assert "s3cret" not in err + out
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


def test_cli_migrate_exits_1_and_keeps_nothing_when_the_copy_does_not_verify(
    sqlite_ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, target = tmp_path / "bad.sqlite3", tmp_path / "copy.sqlite3"
    copy_file(sqlite_ledger, bad)
    conn = sqlite3.connect(bad, isolation_level=None)
    conn.execute("UPDATE accounts SET earned = 0 WHERE user_id = 2")
    conn.close()
    code, out, err = run_cli(capsys, "migrate", "--from", str(bad), "--to", str(target))
    assert code == 1
    assert "Source digest:" in out
    assert "did not verify" in err
    assert len(err.strip().splitlines()) == 1
    assert not target.exists()
