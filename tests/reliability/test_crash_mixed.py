"""SIGKILL during mixed load: chat awards, bus events, admin reverts, achievements unlocking.

A worker process (mixed_worker.py) writes until it has acknowledged a random number of
writes and is then killed. After every kill: no acknowledged write is lost, nothing is
half-written (outbox rows, unlocks, rewards, revocations and counters all agree with the
ledger), the integrity check is clean. At the end an outbox relay started on the file
delivers every committed event, in commit order.
"""

from __future__ import annotations

import asyncio
import os
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugins.gamification import FakeClock, PointsEngine, TxKind
from plugins.gamification.bus.events import Event, EventHandler, Subscription
from plugins.gamification.bus.relay import OutboxRelay
from plugins.gamification.domain.progression import ProgressRules
from plugins.gamification.storage.sqlite.store import LedgerStore
from tests.reliability.conftest import Show
from tests.reliability.mixed_worker import ACHIEVEMENTS
from tests.support.ledger_checks import LedgerFigures, assert_sound, partial_writes
from tests.support.telegram_harness import START

WORKER = Path(__file__).with_name("mixed_worker.py")
# A guard against a hung worker only; nothing asserts on how long anything took.
NO_PROGRESS_LIMIT_S = 60.0


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged write as the worker printed it."""

    kind: str  # "A" for an award, "R" for a revert
    tx_id: int
    key: str
    amount: int
    chat_id: int | None = None
    user_id: int | None = None
    tx_kind: str = "revert"
    reverts_id: int | None = None


@dataclass(slots=True)
class Tally:
    kills: int = 0
    acks: int = 0
    chat_awards: int = 0
    event_awards: int = 0
    reverts: int = 0
    torn_tails: int = 0
    unacknowledged_rows: int = 0
    figures: LedgerFigures | None = None


def parse_line(line: bytes) -> Ack:
    """Parse one complete line; a line that is not exactly what the worker writes fails."""
    text = line.decode("ascii")
    body, _, crc = text.rpartition(" ")
    assert crc == f"{zlib.crc32(body.encode()):08x}", f"garbled line {text!r}"
    fields = body.split(" ")
    if fields[0] == "A":
        _, tx_id, key, chat_id, user_id, amount, kind = fields
        return Ack("A", int(tx_id), key, int(amount), int(chat_id), int(user_id), kind)
    assert fields[0] == "R", f"unknown line {text!r}"
    _, tx_id, key, original, amount = fields
    return Ack("R", int(tx_id), key, int(amount), reverts_id=int(original))


def run_and_kill(
    db_path: Path, run_id: int, stop_after: int, stderr_path: Path
) -> tuple[list[Ack], bool]:
    """Start the worker, read until `stop_after` lines arrived, SIGKILL it, read the rest."""
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(db_path), str(run_id), str(run_id * 104_729)],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert proc.stdout is not None
    buffer = b""
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            while buffer.count(b"\n") < stop_after:
                if not selector.select(timeout=NO_PROGRESS_LIMIT_S):
                    pytest.fail(f"run {run_id}: the worker printed nothing for a minute")
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    proc.wait()
                    pytest.fail(
                        f"run {run_id}: the worker exited with {proc.returncode}:\n"
                        + stderr_path.read_text()
                    )
                buffer += chunk
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        buffer += proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, stderr_path.read_text()
    *complete, tail = buffer.split(b"\n")
    return [parse_line(line) for line in complete], tail != b""


def verify_acknowledged(db_path: Path, acks: dict[str, Ack], tally: Tally) -> None:
    """Every acknowledged write is in the ledger exactly as it was acknowledged."""
    conn = sqlite3.connect(db_path)
    try:
        rows = {
            row[1]: row
            for row in conn.execute(
                "SELECT id, idem_key, chat_id, user_id, amount, kind, reverts_id FROM transactions"
            )
        }
    finally:
        conn.close()
    for key, ack in acks.items():
        assert key in rows, f"acknowledged {ack} is missing after the kill"
        tx_id, _, chat_id, user_id, amount, kind, reverts_id = rows[key]
        assert (tx_id, amount) == (ack.tx_id, ack.amount), ack
        if ack.kind == "A":
            assert (chat_id, user_id, kind, reverts_id) == (
                ack.chat_id, ack.user_id, ack.tx_kind, None,
            ), ack  # fmt: skip
        else:
            assert (kind, reverts_id) == ("revert", ack.reverts_id), ack
    # Requests (not the rewards and compensations they set off) committed before the kill
    # whose acknowledgement never got out: allowed, they were never promised.
    requested = [key for key in rows if key.startswith(("msg:", "evt:", "adm:"))]
    tally.unacknowledged_rows = len(requested) - len(acks)
    assert tally.unacknowledged_rows >= 0


class RecordingBus:
    """An EventBus that records what is published, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)

    def subscribe(
        self, pattern: str, handler: EventHandler, *, name: str | None = None
    ) -> Subscription:
        return Subscription(pattern, handler, name or "recorder")

    async def close(self) -> None:
        return None


async def relay_everything(db_path: Path) -> tuple[int, int]:
    """Restart on the file: a relay delivers every committed outbox row, in commit order.

    Returns (events delivered, of which points.* events).
    """
    conn = sqlite3.connect(db_path)
    try:
        committed = conn.execute("SELECT event_id, type FROM outbox ORDER BY id").fetchall()
        tx_order = [tx_id for (tx_id,) in conn.execute("SELECT id FROM transactions ORDER BY id")]
    finally:
        conn.close()
    assert committed, "the workers committed no events"
    store = await LedgerStore(db_path).open()
    bus = RecordingBus()
    # Keep every delivered row, so the file shows afterwards that each one was marked.
    relay = OutboxRelay(store, bus, clock=FakeClock(START), keep_delivered=10**9)
    try:
        delivered = -1
        async with asyncio.timeout(120):  # a hang guard only
            while delivered:  # each pass delivers what is pending, in batches of 500
                delivered = await relay.run_once()
        pending = await store.outbox_lag()
    finally:
        await store.close()
    assert [(e.id, e.type) for e in bus.events] == committed, "not every event, or out of order"
    assert relay.lag == 0
    assert pending == 0
    assert relay.failures == 0
    # Commit order: the points events name their transactions in ledger order.
    named = [int(e.id.removeprefix("tx:")) for e in bus.events if e.type.startswith("points.")]
    assert named == tx_order
    return len(bus.events), len(named)


def crash_loop(tmp_path: Path, kills: int, seed: int) -> Tally:
    rng = random.Random(seed)
    db_path = tmp_path / "mixed.sqlite3"
    acks: dict[str, Ack] = {}
    tally = Tally()
    for run_id in range(1, kills + 1):
        stop_after = rng.randint(10, 300)
        lines, torn = run_and_kill(db_path, run_id, stop_after, tmp_path / f"run{run_id}.err")
        assert len(lines) >= stop_after
        for ack in lines:
            assert ack.key not in acks, ack
            acks[ack.key] = ack
        tally.kills += 1
        tally.acks = len(acks)
        tally.chat_awards += sum(a.tx_kind == "activity" for a in lines)
        tally.event_awards += sum(a.tx_kind == "event" for a in lines)
        tally.reverts += sum(a.kind == "R" for a in lines)
        tally.torn_tails += torn
        verify_acknowledged(db_path, acks, tally)
        tally.figures = assert_sound(db_path, ACHIEVEMENTS)
    return tally


def check_and_show(tally: Tally, kills: int, tmp_path: Path, show: Show, label: str) -> None:
    figures = tally.figures
    assert figures is not None
    assert tally.kills == kills
    assert tally.acks >= kills * 10
    assert tally.chat_awards
    assert tally.event_awards
    assert tally.reverts
    # The load did what it is for: achievements were unlocked, paid, and revoked again.
    assert figures.unlock_events > 0
    assert figures.rewards > 0
    assert figures.revoke_events > 0
    delivered, points = asyncio.run(relay_everything(tmp_path / "mixed.sqlite3"))
    show(
        f"{label}: {tally.kills} kills, {tally.acks} acknowledged writes"
        f" ({tally.chat_awards} chat awards, {tally.event_awards} event awards,"
        f" {tally.reverts} admin reverts), 0 lost, 0 partial;"
        f" {figures.transactions} transactions ({tally.unacknowledged_rows} requests committed"
        f" but unacknowledged at a kill, {figures.rewards} rewards), {figures.unlock_events}"
        f" unlocks, {figures.revoke_events} revocations, {tally.torn_tails} torn lines;"
        f" relay after restart delivered {delivered} events ({points} points.*) in commit"
        " order, lag 0"
    )


def test_sigkill_during_mixed_load(tmp_path: Path, show: Show) -> None:
    tally = crash_loop(tmp_path, kills=20, seed=20_261_201)
    check_and_show(tally, 20, tmp_path, show, "crash (mixed)")


@pytest.mark.soak
def test_sigkill_during_mixed_load_soak(tmp_path: Path, show: Show) -> None:
    tally = crash_loop(tmp_path, kills=100, seed=3_000_017)
    check_and_show(tally, 100, tmp_path, show, "crash soak (mixed)")


TAMPERING = {
    "a transaction's outbox row is missing": "DELETE FROM outbox WHERE event_id = 'tx:3'",
    "an outbox row names no transaction": (
        "UPDATE outbox SET event_id = 'tx:999', payload = json_set(payload, '$.tx_id', 999)"
        " WHERE event_id = 'tx:2'"
    ),
    "an unlock was never announced": "DELETE FROM outbox WHERE type = 'achievement.unlocked'",
    "a revoked unlock still counts": "UPDATE unlocks SET revoked_tx_id = NULL",
    "a revocation is missing": "DELETE FROM outbox WHERE type = 'achievement.revoked'",
    "a counter moved alone": "UPDATE progress SET value = value + 1",
    "the account forgot an achievement": "UPDATE accounts SET achievements = ''",
}


@pytest.mark.parametrize("sql", list(TAMPERING.values()), ids=list(TAMPERING))
async def test_the_half_write_checks_see_what_they_look_for(tmp_path: Path, sql: str) -> None:
    """The checks above are only as good as what they notice: each tampering is found."""
    path = tmp_path / "tampered.sqlite3"
    engine = await PointsEngine.open(
        path, clock=FakeClock(START), progress=ProgressRules(achievements=ACHIEVEMENTS)
    )
    try:
        chat = -100_1001
        for i in range(4):
            await engine.award(chat, 1, 20, key=f"m{i}", tag="text")
        cause = await engine.award(chat, 2, 60, key="e1", kind=TxKind.EVENT, tag="game.won")
        await engine.award(chat, 2, 20, key="e2", kind=TxKind.EVENT, tag="game.won")
        await engine.revert(cause.transaction.id, key="undo", actor_id=9)
    finally:
        await engine.close()
    problems, figures = partial_writes(path, ACHIEVEMENTS)
    assert problems == []
    assert figures.unlock_events
    assert figures.revoke_events
    assert figures.rewards
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert conn.execute(sql).rowcount > 0
    finally:
        conn.close()
    problems, _ = partial_writes(path, ACHIEVEMENTS)
    assert problems, f"tampering not noticed: {sql}"
