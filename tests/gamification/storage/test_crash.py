"""Crash safety: SIGKILL a writing process at random moments; nothing acknowledged is lost."""

from __future__ import annotations

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

from plugins.gamification.storage.sqlite.integrity import run_check

WORKER = Path(__file__).with_name("crash_worker.py")
# A guard against a hung worker only; nothing asserts on how long anything took.
NO_PROGRESS_LIMIT_S = 60.0


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged write as the worker printed it."""

    kind: str  # "A" for an award, "R" for a revert
    tx_id: int
    key: str
    chat_id: int | None = None
    user_id: int | None = None
    amount: int | None = None
    reverts_id: int | None = None


@dataclass(slots=True)
class Tally:
    kills: int = 0
    acks: int = 0
    reverts: int = 0
    torn_tails: int = 0
    unacknowledged_rows: int = 0


def parse_line(line: bytes) -> Ack:
    """Parse one complete line; a line that is not exactly what the worker writes fails."""
    text = line.decode("ascii")
    body, _, crc = text.rpartition(" ")
    assert crc == f"{zlib.crc32(body.encode()):08x}", f"garbled line {text!r}"
    fields = body.split(" ")
    if fields[0] == "A":
        _, tx_id, key, chat_id, user_id, amount = fields
        return Ack("A", int(tx_id), key, int(chat_id), int(user_id), int(amount))
    assert fields[0] == "R", f"unknown line {text!r}"
    _, tx_id, key, original, amount = fields
    return Ack("R", int(tx_id), key, amount=int(amount), reverts_id=int(original))


def run_and_kill(
    db_path: Path, run_id: int, stop_after: int, stderr_path: Path
) -> tuple[list[Ack], bool]:
    """Start the worker, read until `stop_after` lines arrived, SIGKILL it, read the rest.

    Returns every complete line it wrote before it died, and whether a torn last line
    (no newline yet) was left over and ignored.
    """
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(db_path), str(run_id), str(run_id * 7919)],
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
                    lines = buffer.count(b"\n")
                    pytest.fail(
                        f"run {run_id}: the worker exited with {proc.returncode} after"
                        f" {lines} lines:\n{stderr_path.read_text()}"
                    )
                buffer += chunk
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Whatever it wrote before dying is still in the pipe.
        buffer += proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, stderr_path.read_text()
    *complete, tail = buffer.split(b"\n")
    return [parse_line(line) for line in complete], tail != b""


def verify_database(db_path: Path, acks: dict[str, Ack], tally: Tally) -> None:
    """Every acknowledged write is there as acknowledged; the file and the ledger are sound."""
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = {
            row[1]: row
            for row in conn.execute(
                "SELECT id, idem_key, chat_id, user_id, amount, kind, reverts_id FROM transactions"
            )
        }
        originals = dict(conn.execute("SELECT id, amount FROM transactions"))
    finally:
        conn.close()
    for key, ack in acks.items():
        assert key in rows, f"acknowledged {ack} is missing after the kill"
        tx_id, _, chat_id, user_id, amount, kind, reverts_id = rows[key]
        assert tx_id == ack.tx_id, ack
        if ack.kind == "A":
            assert (chat_id, user_id, amount, kind, reverts_id) == (
                ack.chat_id,
                ack.user_id,
                ack.amount,
                "activity",
                None,
            ), ack
        else:
            assert (amount, kind, reverts_id) == (ack.amount, "revert", ack.reverts_id), ack
            assert ack.reverts_id is not None
            assert amount == -originals[ack.reverts_id], ack
    tally.unacknowledged_rows = len(rows) - len(acks)
    report = run_check(db_path)
    assert report.ok, report.to_text()
    assert report.quick_check == "ok"
    assert report.transactions == len(rows)


def crash_loop(tmp_path: Path, kills: int, seed: int) -> Tally:
    rng = random.Random(seed)
    db_path = tmp_path / "crash.sqlite3"
    acks: dict[str, Ack] = {}
    tally = Tally()
    for run_id in range(1, kills + 1):
        stop_after = rng.randint(20, 400)
        lines, torn = run_and_kill(db_path, run_id, stop_after, tmp_path / f"run{run_id}.err")
        assert len(lines) >= stop_after
        for ack in lines:
            assert ack.key.startswith(f"r{run_id}:"), ack
            assert ack.key not in acks, ack
            acks[ack.key] = ack
        tally.kills += 1
        tally.acks = len(acks)
        tally.reverts += sum(ack.kind == "R" for ack in lines)
        tally.torn_tails += torn
        verify_database(db_path, acks, tally)
    return tally


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    tally = crash_loop(tmp_path, kills=40, seed=20261127)
    assert tally.kills == 40
    assert tally.acks >= 40 * 20
    assert tally.reverts > 0
    print(f"crash: {tally}")


@pytest.mark.soak
def test_sigkill_soak(tmp_path: Path) -> None:
    tally = crash_loop(tmp_path, kills=100, seed=1_000_003)
    assert tally.kills == 100
    assert tally.acks >= 100 * 20
    assert tally.reverts > 0
    print(f"crash soak: {tally}")
