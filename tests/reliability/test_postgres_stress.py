"""PostgreSQL only: several OS processes on one ledger, writers killed with SIGKILL, and
the server itself stopped mid-load; nothing acknowledged is lost, nothing is half-written.

The workers (pg_worker.py) print each acknowledged award right after its `await` returned,
and each error a caller saw. Every test has its own database (the server stop: its own
throwaway cluster), dropped afterwards. Longer variants are marked `soak`.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from plugins.gamification import PointsEngine
from plugins.gamification.domain.errors import TransientStorageError
from plugins.gamification.storage.sqlite.schema import GENESIS_HASH
from tests.reliability import pg_cluster
from tests.support import postgres

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("pg_worker.py")
# A worker that prints nothing for this long is stuck, not slow.
SILENCE_LIMIT_S = 60.0
RETRYABLE_WORDS = ("deadlock", "serializ", "could not serialize", "40P01", "40001")


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    async with postgres.fresh_database("gamif_i") as url:
        yield url


async def start_worker(
    dsn: str, run_id: str, count: int, in_flight: int
) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), dsn, run_id, str(count), str(in_flight),
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def read_all(proc: asyncio.subprocess.Process) -> tuple[list[str], list[str]]:
    """Every line of a worker that ends by itself: (acknowledged keys, error lines)."""
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return split(out.decode().splitlines())


def split(lines: list[str]) -> tuple[list[str], list[str]]:
    acks = [line.split()[1] for line in lines if line.startswith("A ")]
    errors = [line for line in lines if line.startswith("E ")]
    return acks, errors


async def ledger_rows(dsn: str) -> tuple[list[tuple], list[tuple]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        txs = await conn.fetch(
            "SELECT id, chat_id, user_id, seq, amount, balance_after, idem_key, prev_hash, hash"
            " FROM transactions ORDER BY chat_id, user_id, seq"
        )
        accounts = await conn.fetch(
            "SELECT chat_id, user_id, balance, seq, head_hash FROM accounts"
        )
    finally:
        await conn.close()
    return [tuple(r) for r in txs], [tuple(r) for r in accounts]


async def assert_sound(dsn: str, acknowledged: list[str]) -> int:
    """Chains linear, balances = sums, ids and keys unique, every acknowledged key there
    exactly once, and the integrity check clean; returns the number of transactions."""
    txs, accounts = await ledger_rows(dsn)
    ids = Counter(row[0] for row in txs)
    keys = Counter(row[6] for row in txs)
    assert not [i for i, n in ids.items() if n > 1], "duplicate transaction ids"
    assert not [k for k, n in keys.items() if n > 1], "duplicate idempotency keys"
    missing = set(acknowledged) - set(keys)
    assert not missing, (
        f"{len(missing)} acknowledged awards are missing, e.g. {sorted(missing)[:3]}"
    )
    chains: dict[tuple[int, int], list[tuple]] = defaultdict(list)
    for row in txs:
        chains[(row[1], row[2])].append(row)
    heads = {(a[0], a[1]): a[2:] for a in accounts}
    assert set(heads) == set(chains)
    for account, rows in chains.items():
        balance, prev = 0, GENESIS_HASH
        for seq, row in enumerate(rows, 1):
            balance += row[4]
            assert (row[3], row[5], row[7]) == (seq, balance, prev), (account, row)
            prev = row[8]
        assert heads[account] == (balance, len(rows), prev), account
    async with await PointsEngine.open(dsn) as engine:
        report = await engine.check(record=False)
    assert report.ok, report.to_text()
    return len(txs)


# -- (a) several processes on the same 50 accounts -------------------------------------------


@pytest.mark.parametrize(
    ("processes", "awards"),
    [
        (2, 1_500),
        (4, 750),
        pytest.param(4, 25_000, marks=pytest.mark.soak),
    ],
)
async def test_processes_award_the_same_accounts_at_once(
    dsn: str, processes: int, awards: int, show: object
) -> None:
    workers = [await start_worker(dsn, f"p{i}", awards, 100) for i in range(processes)]
    results = await asyncio.gather(*(read_all(w) for w in workers))

    acknowledged = [key for acks, _ in results for key in acks]
    errors = [line for _, errs in results for line in errs]
    assert errors == [], errors[:5]  # no caller ever saw a deadlock or a retry
    assert len(acknowledged) == processes * awards
    total = await assert_sound(dsn, acknowledged)
    assert total == processes * awards


# -- (b) a writer process killed with SIGKILL at random moments -----------------------------


async def run_until_killed(dsn: str, run_id: str, after: int) -> tuple[list[str], list[str]]:
    """Start a worker, SIGKILL it once `after` awards were acknowledged, keep every line."""
    proc = await start_worker(dsn, run_id, 0, 64)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while sum(line.startswith("A ") for line in lines) < after:
            line = await asyncio.wait_for(proc.stdout.readline(), SILENCE_LIMIT_S)
            assert line, "the worker stopped on its own"
            lines.append(line.decode().strip())
    finally:
        proc.kill()
        rest, _ = await proc.communicate()
    # A line the worker printed before it died is an acknowledgement too; a torn last line
    # (no newline) is not.
    text = rest.decode(errors="replace")
    complete = text.splitlines()[:-1] if text and not text.endswith("\n") else text.splitlines()
    return split(lines + complete)


@pytest.mark.parametrize("kills", [4, pytest.param(40, marks=pytest.mark.soak)])
async def test_a_killed_writer_loses_no_acknowledged_award(dsn: str, kills: int) -> None:
    rng = random.Random(20_261_125)
    acknowledged: list[str] = []
    for run in range(kills):
        acks, errors = await run_until_killed(dsn, f"k{run}", rng.randint(1, 400))
        assert errors == [], errors[:5]
        acknowledged += acks

    await assert_sound(dsn, acknowledged)


# -- (c) the server itself stopped during load and started again ----------------------------


@pytest.fixture
def cluster() -> Iterator[pg_cluster.Cluster]:
    postgres.skip_unless_available(pg_cluster.unavailable())
    made = pg_cluster.Cluster()
    try:
        made.init()
        yield made
    finally:
        made.destroy()


class Load:
    """Awards with retries of the same key, as the plugin's handlers do, and what they met."""

    def __init__(self, engine: PointsEngine, workers: int) -> None:
        self.engine = engine
        self.acknowledged: list[str] = []
        self.errors: list[BaseException] = []
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._next = 0
        self.tasks = [asyncio.create_task(self._run()) for _ in range(workers)]

    async def _run(self) -> None:
        while not self._stop.is_set():
            n, self._next = self._next, self._next + 1
            key = f"crash:{n}"
            while True:
                try:
                    await self.engine.award(-100_7070, 1 + n % 50, 1 + n % 5, key=key)
                except TransientStorageError as exc:
                    self.errors.append(exc)
                    self._changed.set()
                    await asyncio.sleep(0.05)
                    continue
                except Exception as exc:  # anything else is a finding: kept and judged
                    self.errors.append(exc)
                    self._changed.set()
                    await asyncio.sleep(0.05)
                    continue
                self.acknowledged.append(key)
                self._changed.set()
                break

    async def until(self, done: Callable[[], bool]) -> None:
        """Wait until `done()` holds (the caller bounds the wait)."""
        while not done():
            self._changed.clear()
            await self._changed.wait()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 120)


async def test_the_server_stopped_mid_load_loses_nothing_acknowledged(
    cluster: pg_cluster.Cluster, show: object
) -> None:
    import asyncpg

    await cluster.start()
    admin = await asyncpg.connect(cluster.dsn)
    await admin.execute("CREATE DATABASE ledger")
    await admin.close()
    dsn = cluster.dsn.rsplit("/", 1)[0] + "/ledger"

    engine = await PointsEngine.open(dsn, write_timeout=10)
    load = Load(engine, workers=32)
    try:
        async with asyncio.timeout(60):
            await load.until(lambda: len(load.acknowledged) >= 300)
        await cluster.stop_immediately()
        async with asyncio.timeout(60):  # callers are told, not left hanging
            await load.until(lambda: bool(load.errors))
        await asyncio.sleep(1)
        during = len(load.errors)
        await cluster.start()
        # The writer reconnects by itself: awards are acknowledged again.
        before = len(load.acknowledged)
        async with asyncio.timeout(60):
            await load.until(lambda: len(load.acknowledged) >= before + 300)
    finally:
        await load.stop()
        await engine.close()

    assert during > 0
    for error in load.errors:
        assert isinstance(error, TransientStorageError), repr(error)
        sentence = str(error)
        assert sentence.endswith(".")
        assert "\n" not in sentence
        assert "Traceback" not in sentence
    await assert_sound(dsn, load.acknowledged)
