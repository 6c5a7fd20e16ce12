"""PostgresStore answers every protocol method as the SQLite LedgerStore does, and keeps
the ledger's promises with two stores on one database and through a lost connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from plugins.gamification.domain.clock import FakeClock
from plugins.gamification.domain.errors import (
    EngineClosedError,
    GamificationError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    SchemaVersionError,
    StorageError,
    TransientStorageError,
)
from plugins.gamification.domain.models import Receipt, TxKind
from plugins.gamification.storage.operations import Posting, Reversal
from plugins.gamification.storage.postgres.store import PostgresStore
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.records import (
    AdminAction,
    AuditNote,
    KnownPerson,
    OutboxEvent,
)
from plugins.gamification.storage.sqlite.store import LedgerStore
from tests.support.postgres import fresh_database
from tests.support.postings import CHAT, effects, post

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    async with fresh_database("gamif_s") as url:
        yield url


async def outcome(store: LedgerStorage, op: Posting | Reversal) -> object:
    try:
        receipt: Receipt = await store.submit(op)
    except GamificationError as exc:
        return type(exc).__name__
    tx = receipt.transaction
    return (tx.id, tx.amount, tx.hash, receipt.duplicate)


async def scenario(store: LedgerStorage, clock: FakeClock) -> list[object]:
    """The same writes on either backend; everything the protocol reads afterwards."""
    seen: list[object] = []
    for op in [
        post(1, 30, "m1"), post(1, 30, "m2"), post(2, 1200, "m3"), post(1, 30, "m1"),
        post(1, 31, "m1"), post(3, -5, "d1", TxKind.ADMIN),
        post(3, 7, "t1", TxKind.THANKS, actor_id=1),
        post(3, 20, "a1", TxKind.ADMIN, actor_id=9, audit=AuditNote("award", "20")),
        post(2, 4, "eng:1", actor_id=3, tag="engagement"),
        post(2, 5, "msg:1:1"),
    ]:  # fmt: skip
        seen.append(await outcome(store, op))
    clock.advance(timedelta(days=1))
    seen.append(await outcome(store, Reversal(3, "r1", 9, "mistake", CHAT)))
    seen.append(await outcome(store, Reversal(3, "r2", 9, "again")))
    seen.append(await outcome(store, post(1, 10, "m4")))
    at = "2026-03-03T10:00:00.000000Z"
    await store.freeze(CHAT, 5, at, 9, "spam", AdminAction(CHAT, 9, "freeze", 5, "spam"))
    await store.freeze(CHAT, 6, at, None, "spam")
    await store.unfreeze(CHAT, 6, at, AdminAction(CHAT, 9, "unfreeze", 6, ""))
    await store.record_admin_action(AdminAction(CHAT, 9, "note", None, "hello"), at)
    event = OutboxEvent("sus:1", "suspicion.raised", CHAT, 4, "{}", at)
    await store.record_suspicion(CHAT, 4, "flood", "10 in 1 s", at, event)
    store.remember_person_later(KnownPerson(7, "Alice_B", "Alice B", False), at)
    await store.publish(OutboxEvent("ext:1", "custom", None, None, '{"a":1}', at))
    since = "2026-03-01T00:00:00.000000Z"
    seen += [
        await store.balance(CHAT, 1), await store.balance(CHAT, 99),
        await store.history(CHAT, 1, 10), await store.history(CHAT, 1, 2, before_seq=3),
        await store.transaction(2), await store.transaction(999),
        await store.last_transaction_id(),
        await store.standings(CHAT, None, 10), await store.standings(CHAT, since, 10),
        await store.standings(CHAT, "2026-03-03T00:00:00.000000Z", 10),
        await store.standing_of(CHAT, 1, None), await store.standing_of(CHAT, 3, since),
        await store.standing_of(CHAT, 99, None),
        await store.progress(CHAT, 1), await store.progress(CHAT, 2), await store.today(CHAT, 1),
        await store.today(CHAT, 99), await store.frozen_accounts(),
        await store.known_person(7), await store.known_person(8),
        await store.known_username("alice_b"), await store.known_username("bob"),
        await store.thanks_between(CHAT, 3, 1, since), await store.thanks_given(CHAT, 1, since),
        sorted(await store.member_days(CHAT, since, "2026-03-10")),
        await store.scored_messages(CHAT, 2, since),
        sorted(await store.engaged_by(CHAT, 2, since)),
        await store.engaged_pair(CHAT, 2, 3, since),
        await store.outbox_lag(),
    ]  # fmt: skip
    pending = await store.outbox_pending(1000)
    seen.append([(r.event_id, r.type, r.chat_id, r.user_id, r.payload, r.occurred_at)
                 for r in pending])  # fmt: skip
    await store.outbox_delivered(pending[5].id, at)
    seen.append(await store.outbox_lag())
    await store.outbox_prune(2)
    seen.append([r.event_id for r in await store.outbox_pending(1000)])
    seen.append(store.queue_depth)
    return seen


async def test_every_read_and_write_matches_sqlite(dsn: str, tmp_path: Path) -> None:
    results = []
    for make in (
        lambda clock: LedgerStore(tmp_path / "l.sqlite3", clock=clock, effects=effects()),
        lambda clock: PostgresStore(dsn, clock=clock, effects=effects()),
    ):
        clock = FakeClock(START)
        store = await make(clock).open()
        try:
            results.append(await scenario(store, clock))
        finally:
            await store.close()
    for index, (lite, pg) in enumerate(zip(*results, strict=True)):
        assert lite == pg, f"item {index} differs"


async def test_an_audit_without_an_actor_is_refused_alone(dsn: str) -> None:
    store = await PostgresStore(dsn, clock=FakeClock(START)).open()
    try:
        results = await asyncio.gather(
            store.submit(post(1, 5, "ok:1")),
            store.submit(post(1, 5, "bad:1", TxKind.ADMIN, audit=AuditNote("award", "x"))),
            store.submit(post(1, 5, "ok:2")),
            return_exceptions=True,
        )
        assert isinstance(results[0], Receipt)
        assert isinstance(results[2], Receipt)
        assert isinstance(results[1], StorageError)
        assert (await store.balance(CHAT, 1)).balance == 10
        with pytest.raises(IdempotencyConflictError):
            await store.submit(post(1, 6, "ok:1"))
        assert (await store.submit(post(1, 5, "ok:1"))).duplicate
    finally:
        await store.close()


async def test_two_stores_on_one_database_keep_balances_and_chains(dsn: str) -> None:
    stores = [await PostgresStore(dsn, max_batch=64).open() for _ in range(2)]
    try:

        async def one(i: int) -> int:
            store = stores[i % 2]
            user = i % 5
            amount = -3 if i % 4 == 3 else 2
            try:
                await store.submit(post(user, amount, f"c:{i}", TxKind.ADMIN))
            except InsufficientBalanceError:
                return 0
            return amount

        applied = await asyncio.gather(*(one(i) for i in range(1200)))
        expected: dict[int, int] = {}
        for i, amount in enumerate(applied):
            expected[i % 5] = expected.get(i % 5, 0) + amount
        for user, total in expected.items():
            assert (await stores[0].balance(CHAT, user)).balance == total
    finally:
        for store in stores:
            await store.close()
    await assert_linear(dsn)


async def assert_linear(dsn: str) -> None:
    """Per account: seq 1..n, each row chained to the one before, balances = sums >= 0."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT chat_id, user_id, seq, amount, balance_after, prev_hash, hash"
            " FROM transactions ORDER BY chat_id, user_id, seq"
        )
        balances = {
            (r[0], r[1]): r[2]
            for r in await conn.fetch("SELECT chat_id, user_id, balance FROM accounts")
        }
    finally:
        await conn.close()
    last: dict[tuple[int, int], tuple[int, str, int]] = {}
    for chat, user, seq, amount, after, prev, digest in rows:
        previous = last.get((chat, user))
        if previous is not None:
            assert (seq, prev, after) == (previous[0] + 1, previous[1], previous[2] + amount)
        else:
            assert (seq, after) == (1, amount)
        last[(chat, user)] = (seq, digest, after)
    assert {account: v[2] for account, v in last.items()} == balances


async def test_close_commits_what_was_queued_then_refuses(dsn: str) -> None:
    store = await PostgresStore(dsn).open()
    committed: list[int] = []
    store.on_commit = lambda: committed.append(1)
    queued = [asyncio.ensure_future(store.submit(post(1, 1, f"q:{i}"))) for i in range(50)]
    await asyncio.sleep(0)
    await store.close()
    assert all(isinstance(f.result(), Receipt) for f in queued)
    assert committed
    with pytest.raises(EngineClosedError):
        await store.submit(post(1, 1, "late"))
    reopened = await PostgresStore(dsn).open()
    try:
        assert (await reopened.balance(CHAT, 1)).balance == 50
    finally:
        await reopened.close()


async def test_a_newer_schema_is_refused_in_one_sentence(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE ledger_schema SET version = 99")
    finally:
        await conn.close()
    with pytest.raises(SchemaVersionError) as refused:
        await PostgresStore(dsn).open()
    assert "newer than this program" in str(refused.value)
    assert "\n" not in str(refused.value)


async def terminate(dsn: str, pids: list[int]) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        for pid in pids:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_a_killed_writer_connection_fails_callers_clearly_and_reconnects(
    dsn: str,
) -> None:
    store = await PostgresStore(dsn, max_batch=16).open()
    try:
        acknowledged: list[str] = []
        errors: list[BaseException] = []

        async def award(i: int) -> None:
            key = f"k:{i}"
            try:
                await store.submit(post(i % 7, 1, key))
            except TransientStorageError as exc:
                errors.append(exc)
            else:
                acknowledged.append(key)

        first = [asyncio.ensure_future(award(i)) for i in range(400)]
        await asyncio.sleep(0.01)
        assert store._write_conn is not None
        await terminate(dsn, [store._write_conn.get_server_pid()])
        await asyncio.gather(*first)
        for error in errors:
            text = str(error)
            assert "\n" not in text
            assert "Traceback" not in text
            assert "nothing was written" in text or "may or may not" in text
        # The writer reconnects by itself; later writes go through.
        for _attempt in range(100):
            try:
                await store.submit(post(1, 1, "after"))
                break
            except TransientStorageError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the writer never reconnected")
        assert not store.health.unavailable
        assert store.health.outages == (1 if errors else 0)
        assert store.stats.failed_batches >= (1 if errors else 0)
        keys = {tx.key for user in range(7) for tx in await store.history(CHAT, user, 1000)}
        assert set(acknowledged) <= keys
    finally:
        await store.close()
    await assert_linear(dsn)


async def test_a_read_on_a_killed_pool_connection_is_retried(dsn: str) -> None:
    store = await PostgresStore(dsn, pool_size=1).open()
    try:
        await store.submit(post(1, 3, "r:1"))
        admin = await asyncpg.connect(dsn)
        try:
            pids = [
                r[0]
                for r in await admin.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()"
                )
            ]
        finally:
            await admin.close()
        writer = store._write_conn
        assert writer is not None
        await terminate(dsn, [p for p in pids if p != writer.get_server_pid()])
        assert (await store.balance(CHAT, 1)).balance == 3
    finally:
        await store.close()


async def test_a_commit_lost_in_flight_says_the_outcome_is_unknown() -> None:
    from plugins.gamification.storage.postgres.connect import CommitInDoubt, storage_error

    lost = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle")
    error = storage_error(CommitInDoubt(lost), "postgresql://u:secret@h/db")
    assert isinstance(error, TransientStorageError)
    assert "may or may not have been written; retrying with the same key is safe" in str(error)
    assert "secret" not in str(error)
    assert "nothing was written" not in str(error)
    killed = storage_error(asyncpg.exceptions.InternalClientError("x"), "postgresql://h/db")
    assert isinstance(killed, TransientStorageError)
