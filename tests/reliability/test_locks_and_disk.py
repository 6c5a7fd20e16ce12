"""A database another process locks, a read-only database and a full disk.

Each refusal must be one clear sentence, nothing may be half-written or lost, and the same
engine (and bot) must write again once the trouble is gone. The tests run as root, which
ignores file permissions, so read-only and disk-full use SQLite's own mechanisms
(`PRAGMA query_only`, `PRAGMA max_page_count`) on the writer's connection, plus a proxy
connection that fails chosen statements the way SQLite reports these errors.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.types import Update

from bot.testing import UpdateFactory
from plugins.gamification import (
    DatabaseLockedError,
    FakeClock,
    GamificationError,
    LedgerPolicy,
    PointsEngine,
    Receipt,
    StorageError,
)
from plugins.gamification.domain.errors import StorageUnavailableError
from plugins.gamification.domain.progression import ProgressRules
from plugins.gamification.storage.sqlite.effects import Effects
from tests.reliability.conftest import Show
from tests.reliability.mixed_worker import ACHIEVEMENTS
from tests.support.faulty import FaultyStore, is_write
from tests.support.ledger_checks import assert_one_sentence, assert_sound
from tests.support.sqlite_store import sqlite_store
from tests.support.telegram_harness import START, TelegramHarness

CHAT_ID = -100
CHAT = UpdateFactory.group(CHAT_ID, "Club")
ALICE = UpdateFactory.user(1, "Alice", "alice")
BOB = UpdateFactory.user(2, "Bob", "bob")
HEALTH_LOG = "plugins.gamification.storage.health"
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(600)
"""


def plain(error: object, path: Path) -> str:
    """The sentence without the temporary path, for the figures line."""
    return str(error).replace(str(path), "<db>")


def tx_keys(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {key for (key,) in conn.execute("SELECT idem_key FROM transactions")}
    finally:
        conn.close()


class Locker:
    """Another process holding the database's write lock (BEGIN IMMEDIATE) until released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: asyncio.subprocess.Process | None = None

    async def hold(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCKER, str(self.path), stdout=asyncio.subprocess.PIPE
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        assert line.strip() == b"locked"

    async def release(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None


@pytest.fixture
async def locker(tmp_path: Path) -> AsyncIterator[Locker]:
    held = Locker(tmp_path / "ledger.sqlite3")
    yield held
    await held.release()


# -- locked -------------------------------------------------------------------------------


async def test_a_lock_held_by_another_process(locker: Locker, show: Show) -> None:
    path = locker.path
    clock = FakeClock(START)
    engine = await PointsEngine.open(
        path, clock=clock, policy=LedgerPolicy(max_amount=10_000), busy_timeout=0.2
    )
    try:
        before = [await engine.award(CHAT_ID, u, 10, key=f"before:{u}") for u in (1, 2, 3)]
        await locker.hold()
        during = await asyncio.wait_for(
            asyncio.gather(
                *(engine.award(CHAT_ID, 1 + i % 3, 5, key=f"during:{i}") for i in range(12)),
                engine.revert(before[0].transaction.id, key="during:revert", actor_id=9),
                return_exceptions=True,
            ),
            60,
        )
        for error in during:
            assert isinstance(error, DatabaseLockedError), error
            assert_one_sentence(error)
            assert str(path) in str(error)
        # Readers are not blocked (WAL), and what was acknowledged before is all there.
        assert [(await engine.balance(CHAT_ID, u)).balance for u in (1, 2, 3)] == [10, 10, 10]
        assert tx_keys(path) == {"before:1", "before:2", "before:3"}

        await locker.release()
        again = await asyncio.wait_for(
            asyncio.gather(
                *(engine.award(CHAT_ID, 1 + i % 3, 5, key=f"during:{i}") for i in range(12)),
                engine.revert(before[0].transaction.id, key="during:revert", actor_id=9),
            ),
            60,
        )
        assert not any(r.duplicate for r in again)
        # User 1: 10, reverted, then 4 x 5; users 2 and 3: 10 + 4 x 5.
        assert [(await engine.balance(CHAT_ID, u)).balance for u in (1, 2, 3)] == [20, 30, 30]
    finally:
        await engine.close()
    figures = assert_sound(path)
    show(
        f"locked: {len(during)} writes (awards and a revert) waited out a 0.2 s busy timeout"
        " and got DatabaseLockedError while another process held the write lock; the"
        f" {len(before)} earlier awards intact, the same engine then wrote all"
        f" {len(again)} ({figures.transactions} transactions, check clean)"
    )


def locked_bot(path: Path, cooldown: int = 0) -> TelegramHarness:
    """The bot on `path` with a 0.2 s busy timeout and writes retried for 0.5 s;
    anti-abuse as shipped but with the given cooldown (none by default), one message a
    cooldown (no burst), so a second message inside it is refused."""
    h = TelegramHarness(
        path,
        admins={CHAT_ID: {9}},
        gamification={
            "activity": {"points": {"text": 10}},
            # A hard cooldown: one message, then none until it has passed.
            "anti_abuse": {"cooldown_seconds": cooldown, "cooldown_burst": 1},
        },
    )
    h.config = h.config.model_copy(
        update={
            "storage": h.config.storage.model_copy(
                update={"busy_timeout_seconds": 0.2, "retry_seconds": 0.5}
            )
        }
    )
    return h


async def message_during_lock(
    h: TelegramHarness, locker: Locker, caplog: pytest.LogCaptureFixture
) -> tuple[Update, str]:
    """Alice scores, the lock is taken, Bob writes: retried, then handed back to the host
    (`retry_update`) with one warning for the outage, nothing written, no crash."""
    await h.say(CHAT, ALICE, "hello everyone, good morning")
    assert h.runtime.relay is not None
    await h.runtime.relay.run_once()  # nothing of the relay's left to write later
    await sqlite_store(h.services.engine).execute("SELECT 1")  # and nothing queued behind it
    await locker.hold()
    update = h.factory.message(CHAT, BOB, "a message while it is locked")
    with caplog.at_level(logging.WARNING), pytest.raises(StorageUnavailableError) as raised:
        await asyncio.wait_for(h.feed(update), 60)
    assert raised.value.retry_update is True
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    line = lines[0]
    assert line.name == HEALTH_LOG
    assert line.exc_info is None
    assert "\n" not in line.getMessage()
    assert "locked" in line.getMessage()
    assert await h.balance(CHAT_ID, 2) == 0
    assert h.tx_count() == 1
    await locker.release()
    return update, f"{len(caplog.records)} log line in all: {line.getMessage()}"


async def test_the_bot_survives_a_locked_database(
    locker: Locker, caplog: pytest.LogCaptureFixture, show: Show
) -> None:
    h = await locked_bot(locker.path).start()
    try:
        _, logged = await message_during_lock(h, locker, caplog)
        # The outage ends with the next commit.
        await sqlite_store(h.services.engine).execute("SELECT 1")
        h.clock.advance(5)
        await asyncio.wait_for(h.say(CHAT, BOB, "first words after the release"), 60)
        await asyncio.wait_for(h.say(CHAT, ALICE, "welcome back to the chat"), 60)
        assert (await h.balance(CHAT_ID, 1), await h.balance(CHAT_ID, 2)) == (20, 10)
        report = await h.services.engine.check()
        assert report.ok, report.to_text()
    finally:
        await h.close()
        h.assert_sent_html_valid()
    show(
        "locked (bot): a message during another process's lock was retried and handed back"
        f" for redelivery with {plain(logged, locker.path)}; the bot kept running and"
        " scored the next messages after the release"
    )


async def test_a_message_refused_during_a_lock_scores_when_redelivered(
    locker: Locker, caplog: pytest.LogCaptureFixture, show: Show
) -> None:
    """The gate kept the handed-back message's verdict and reservation, so its redelivery
    scores the same amount and is neither refused as a repeat of itself nor counted twice."""
    h = await locked_bot(locker.path).start()
    try:
        update, _ = await message_during_lock(h, locker, caplog)
        h.clock.advance(90)  # a webhook retry, well inside the 15-minute repeat window
        await asyncio.wait_for(h.feed(update), 60)
        assert h.services.stats.refusals == {}, h.services.stats.refusals
        assert await h.balance(CHAT_ID, 2) == 10
        await asyncio.wait_for(h.feed(update), 60)  # and once more: nothing changes
        assert await h.balance(CHAT_ID, 2) == 10
        assert h.tx_count() == 2
    finally:
        await h.close()
        h.assert_sent_html_valid()
    show("locked (bot): the message handed back during the lock scored once when redelivered")


async def test_a_handed_back_message_keeps_its_place_and_its_author_is_remembered(
    locker: Locker, caplog: pytest.LogCaptureFixture, show: Show
) -> None:
    """The handed-back message keeps its verdict: a later message of the same person, in
    its cooldown, is the one refused, and the redelivered first one scores. The name that
    could not be written during the lock is written when the person is seen again."""
    h = locked_bot(locker.path, cooldown=60)
    await h.start()
    try:
        update, _ = await message_during_lock(h, locker, caplog)
        h.clock.advance(5)
        later = await asyncio.wait_for(h.say(CHAT, BOB, "and a second message of mine"), 60)
        h.clock.advance(5)
        await asyncio.wait_for(h.feed(update), 60)
        assert update.message is not None
        assert later.message is not None
        keys = tx_keys(locker.path)
        assert f"msg:{CHAT_ID}:{update.message.message_id}" in keys
        assert f"msg:{CHAT_ID}:{later.message.message_id}" not in keys
        assert h.services.stats.refusals == {"cooldown": 1}
        # The names written in the background.
        await sqlite_store(h.services.engine).execute("SELECT 1")
        assert h.rows("SELECT full_name FROM known_users WHERE user_id = 2") == [("Bob",)]
    finally:
        await h.close()
    show(
        "locked (bot): the handed-back message kept its cooldown slot and scored when"
        " redelivered; the author's name was written once the lock was gone"
    )


# -- read-only and disk full ----------------------------------------------------------------


async def open_faulty(path: Path) -> tuple[FaultyStore, PointsEngine]:
    clock = FakeClock(START)
    effects = Effects(ProgressRules(achievements=ACHIEVEMENTS))
    store = FaultyStore(path, clock=clock, effects=effects)
    await store.open()
    return store, PointsEngine(store, clock=clock, effects=effects)


async def awards(engine: PointsEngine, prefix: str, count: int) -> list[Receipt | BaseException]:
    """`count` concurrent awards on a few accounts, each with an unlockable achievement."""
    calls = [
        engine.award(CHAT_ID, 1 + i % 5, 7 + i % 11, key=f"{prefix}:{i}", tag="text")
        for i in range(count)
    ]
    return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 60)


def assert_refused(results: list[Receipt | BaseException], needle: str) -> StorageError:
    assert results
    for result in results:
        assert isinstance(result, StorageError), result
        assert needle in str(result), result
        assert_one_sentence(result)
    error = results[0]
    assert isinstance(error, StorageError)
    return error


async def test_a_read_only_database(tmp_path: Path, show: Show) -> None:
    """SQLite's own read-only refusal (query_only), then a proxy refusing every write."""
    path = tmp_path / "ledger.sqlite3"
    store, engine = await open_faulty(path)
    read_only = {"on": False}
    try:
        first = await awards(engine, "before", 20)
        assert all(isinstance(r, Receipt) for r in first)

        await store.on_writer(lambda raw: raw.execute("PRAGMA query_only = ON"))
        refused = await awards(engine, "sqlite", 20)
        error = assert_refused(refused, "read-only; nothing was written")
        assert (await engine.balance(CHAT_ID, 1)).tx_count > 0  # reads still work
        await store.on_writer(lambda raw: raw.execute("PRAGMA query_only = OFF"))
        assert all(isinstance(r, Receipt) for r in await awards(engine, "sqlite", 20))

        def rule(_index: int, sql: str) -> BaseException | None:
            if read_only["on"] and is_write(sql):
                return sqlite3.OperationalError("attempt to write a readonly database")
            return None

        store.rule = rule
        read_only["on"] = True
        assert_refused(await awards(engine, "proxy", 20), "read-only; nothing was written")
        assert not {k for k in tx_keys(path) if k.startswith("proxy:")}
        read_only["on"] = False  # "permission" is back
        retried = await awards(engine, "proxy", 20)
        assert all(isinstance(r, Receipt) and not r.duplicate for r in retried), retried
    finally:
        await engine.close()
    figures = assert_sound(path, ACHIEVEMENTS)
    assert len(tx_keys(path) - {k for k in tx_keys(path) if k.startswith("ach:")}) == 60
    show(
        "read-only: 20 awards refused by SQLite (query_only) and 20 by a read-only proxy,"
        f" each told '{plain(error, path)}'; nothing written, all retried after;"
        f" {figures.transactions} transactions ({figures.rewards} rewards), check clean"
    )


async def test_a_full_disk_on_sqlite_own_limit(tmp_path: Path, show: Show) -> None:
    """PRAGMA max_page_count: the file may not grow, so SQLite reports SQLITE_FULL for real."""
    path = tmp_path / "ledger.sqlite3"
    store, engine = await open_faulty(path)
    acknowledged: set[str] = set()
    refused: list[str] = []
    try:
        assert all(isinstance(r, Receipt) for r in await awards(engine, "warm", 10))
        pages = await store.on_writer(lambda raw: raw.execute("PRAGMA page_count").fetchone()[0])
        await store.on_writer(lambda raw: raw.execute(f"PRAGMA max_page_count = {pages + 6}"))
        error: GamificationError | None = None
        for wave in range(200):  # fill the remaining pages; bounded
            results = await awards(engine, f"w{wave}", 10)
            for i, result in enumerate(results):
                if isinstance(result, Receipt):
                    acknowledged.add(f"w{wave}:{i}")
                else:
                    refused.append(f"w{wave}:{i}")
                    error = assert_refused([result], "is full; nothing was written")
            if refused:
                break
        assert error is not None, "the page limit was never reached"
        keys = tx_keys(path)
        assert acknowledged <= keys, "an acknowledged award was lost"
        assert not keys & set(refused), "a refused award was written"
        assert (
            await store.on_writer(lambda raw: raw.execute("PRAGMA quick_check").fetchone())
        ) == ("ok",)

        await store.on_writer(lambda raw: raw.execute("PRAGMA max_page_count = 1073741823"))
        retried = [
            await engine.award(CHAT_ID, 1 + int(k.split(":")[1]) % 5,
                               7 + int(k.split(":")[1]) % 11, key=k, tag="text")
            for k in refused
        ]  # fmt: skip
        assert all(not r.duplicate for r in retried)
        assert all(isinstance(r, Receipt) for r in await awards(engine, "after", 25))
    finally:
        await engine.close()
    figures = assert_sound(path, ACHIEVEMENTS)
    show(
        f"disk full (SQLite max_page_count): {len(acknowledged)} awards fitted, {len(refused)}"
        f" refused with '{plain(error, path)}'; nothing half-written; after space"
        f" returned the refused ones and 25 more committed ({figures.transactions}"
        " transactions, check clean)"
    )


@pytest.mark.parametrize("where", ["COMMIT", "INSERT INTO transactions", "INSERT INTO outbox"])
async def test_a_full_disk_reported_by_a_statement(tmp_path: Path, show: Show, where: str) -> None:
    """The disk fills at COMMIT or at an INSERT, for as long as a flag says so."""
    path = tmp_path / "ledger.sqlite3"
    store, engine = await open_faulty(path)
    full = {"on": False, "hits": 0}

    def rule(_index: int, sql: str) -> BaseException | None:
        if full["on"] and sql.startswith(where):
            full["hits"] += 1
            return sqlite3.OperationalError("database or disk is full")
        return None

    try:
        assert all(isinstance(r, Receipt) for r in await awards(engine, "before", 20))
        store.rule = rule
        full["on"] = True
        error = assert_refused(await awards(engine, "full", 30), "is full; nothing was written")
        assert_refused(await awards(engine, "full", 30), "is full; nothing was written")
        assert full["hits"] >= 2
        assert not {k for k in tx_keys(path) if k.startswith("full:")}
        assert_sound(path, ACHIEVEMENTS)
        full["on"] = False
        retried = await awards(engine, "full", 30)
        assert all(isinstance(r, Receipt) and not r.duplicate for r in retried), retried
    finally:
        await engine.close()
    figures = assert_sound(path, ACHIEVEMENTS)
    show(
        f"disk full at {where}: {full['hits']} failed batches, every caller told"
        f" '{plain(error, path)}'; nothing written; 30 retried and committed"
        f" ({figures.transactions} transactions, check clean)"
    )
