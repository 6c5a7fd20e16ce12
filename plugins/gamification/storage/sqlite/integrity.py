"""The integrity check: balances equal sums, hash chains hold, revert links are sound."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from plugins.gamification.domain.clock import Clock, SystemClock, format_utc
from plugins.gamification.domain.errors import DatabaseCorruptError, StorageError
from plugins.gamification.storage.hashing import chain_hash, heads_digest
from plugins.gamification.storage.sqlite.faults import storage_error
from plugins.gamification.storage.sqlite.files import check_ledger_path
from plugins.gamification.storage.sqlite.schema import GENESIS_HASH, SCHEMA_VERSION, ledger_version

MAX_LISTED = 1000
SELECT_LATEST_CHECKPOINT = (
    "SELECT id, created_at, high_water, tx_count, digest FROM checkpoints ORDER BY id DESC LIMIT 1"
)
SELECT_CHECKPOINT_HEADS = (
    "SELECT chat_id, user_id, seq, hash FROM checkpoint_heads WHERE checkpoint_id = ?"
)
INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (created_at, high_water, tx_count, accounts, digest, violations,"
    " report) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_CHECKPOINT_HEAD = (
    "INSERT INTO checkpoint_heads (checkpoint_id, chat_id, user_id, seq, hash)"
    " VALUES (?, ?, ?, ?, ?)"
)
DELETE_OLDER_HEADS = "DELETE FROM checkpoint_heads WHERE checkpoint_id < ?"
OUTBOX_LAG = "SELECT COUNT(*), MIN(occurred_at) FROM outbox WHERE delivered_at IS NULL"
FETCH_CHUNK = 5000


class CheckpointNotStoredError(StorageError):
    """The check ran to its verdict, but its checkpoint could not be stored; `report` holds it."""

    def __init__(self, report: IntegrityReport, cause: StorageError) -> None:
        reason = str(cause).rstrip(".").split("; nothing was written")[0]
        super().__init__(
            f"The checkpoint was not stored: {reason[:1].lower()}{reason[1:]}; run with"
            " --no-record to check without storing one."
        )
        self.report = report


@dataclass(frozen=True, slots=True)
class Violation:
    """The first bad row found for one account (tx_id None: the account row itself)."""

    chat_id: int | None
    user_id: int | None
    tx_id: int | None
    problem: str

    def describe(self) -> str:
        where = "ledger" if self.chat_id is None else f"account {self.chat_id}/{self.user_id}"
        row = f", transaction #{self.tx_id}" if self.tx_id is not None else ""
        return f"{where}{row}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An earlier report's anchor: the digest of all chain heads as of one transaction id."""

    id: int
    created_at: str
    high_water: int
    tx_count: int
    digest: str
    # (chat_id, user_id) -> (seq, hash) of every chain head then; empty if not kept.
    heads: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)


@dataclass(slots=True)
class IntegrityReport:
    checked_at: str
    accounts: int = 0
    transactions: int = 0
    high_water: int = 0
    digest: str = ""
    violation_count: int = 0
    violations: list[Violation] = field(default_factory=list)
    anchor: Checkpoint | None = None
    quick_check: str = "not run"
    outbox_pending: int = 0
    outbox_oldest: str | None = None
    duration_s: float = 0.0
    heads: list[tuple[int, int, int, str]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.violation_count == 0

    def add(self, violation: Violation) -> None:
        self.violation_count += 1
        if len(self.violations) < MAX_LISTED:
            self.violations.append(violation)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("heads")
        if data["anchor"] is not None:
            data["anchor"].pop("heads")
        data["ok"] = self.ok
        return json.dumps(data, indent=2, ensure_ascii=False)

    def to_text(self, listed: int = 10) -> str:
        verdict = "CLEAN" if self.ok else f"VIOLATIONS FOUND: {self.violation_count}"
        lines = [
            f"Ledger integrity: {verdict}",
            f"Checked {self.accounts:,} accounts and {self.transactions:,} transactions"
            f" in {self.duration_s:.2f} s (up to transaction #{self.high_water}).",
            f"Digest: {self.digest}",
            f"SQLite quick_check: {self.quick_check}",
            f"Outbox: {self.outbox_pending:,} events waiting"
            + (f", the oldest since {self.outbox_oldest}." if self.outbox_oldest else "."),
        ]
        if self.anchor is not None:
            lines.append(
                f"Compared with the checkpoint of {self.anchor.created_at}"
                f" (transaction #{self.anchor.high_water}, digest {self.anchor.digest[:16]}…)."
            )
        for violation in self.violations[:listed]:
            lines.append(f"- {violation.describe()}")
        if self.violation_count > listed:
            lines.append(f"… and {self.violation_count - listed:,} more.")
        return "\n".join(lines)


@dataclass(slots=True)
class _Chain:
    seq: int = 0
    head: str = GENESIS_HASH
    balance: int = 0
    earned: int = 0
    anchored_seq: int = 0
    anchored_head: str = GENESIS_HASH
    broken: bool = False
    # Whether the row at the checkpoint's head seq has the checkpoint's hash (None: unseen).
    anchor_match: bool | None = None


def open_for_check(path: str | Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open an existing ledger without creating one; one-sentence errors for bad files.

    With `read_only`, nothing can be written through the connection (export). The path goes
    through a file: URI built by pathlib, so names with '?' or '#' open the right file.
    """
    path = Path(path)
    try:
        missing = not path.exists() and not path.is_symlink()
    except OSError as exc:
        raise StorageError(f"Cannot look at the ledger {path}: {exc.strerror or exc}.") from exc
    if missing:
        raise StorageError(f"There is no database at {path}.")
    check_ledger_path(path, writing=False)
    if path.stat().st_size == 0:
        raise DatabaseCorruptError(f"The file {path} is empty, not a points ledger.")
    uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5)
    except sqlite3.Error as exc:
        raise storage_error(exc, path, writing=False) from exc
    try:
        version = ledger_version(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(exc, path, writing=False) from exc
    except StorageError:
        conn.close()
        raise
    if version != SCHEMA_VERSION:
        conn.close()
        if version == 0:
            raise DatabaseCorruptError(f"The file {path} is an empty database, not a ledger.")
        raise StorageError(
            f"The ledger {path} has schema version {version}; this program reads {SCHEMA_VERSION}."
        )
    return conn


def latest_checkpoint(conn: sqlite3.Connection) -> Checkpoint | None:
    row = conn.execute(SELECT_LATEST_CHECKPOINT).fetchone()
    if row is None:
        return None
    heads = {
        (chat, user): (seq, head)
        for chat, user, seq, head in conn.execute(SELECT_CHECKPOINT_HEADS, (row[0],))
    }
    return Checkpoint(row[0], row[1], row[2], row[3], row[4], heads=heads)


def check_ledger(
    conn: sqlite3.Connection,
    *,
    anchor: Checkpoint | None = None,
    quick_check: bool = True,
    clock: Clock | None = None,
) -> IntegrityReport:
    """Verify the whole ledger inside one read snapshot.

    The scan runs in id order in chunks; in WAL mode a reader never blocks the writer, and
    one snapshot makes every balance comparable with its sum however long the scan takes.
    """
    started = time.perf_counter()
    report = IntegrityReport(checked_at=format_utc((clock or SystemClock()).now()))
    report.anchor = anchor
    try:
        conn.execute("BEGIN")
        try:
            if quick_check:
                rows = conn.execute("PRAGMA quick_check").fetchall()
                report.quick_check = "; ".join(str(r[0]) for r in rows[:5])
                if report.quick_check != "ok":
                    report.add(Violation(None, None, None, f"quick_check: {report.quick_check}"))
            chains = _scan_transactions(conn, report, anchor)
            _check_accounts(conn, report, chains)
            _check_reverts(conn, report)
            report.outbox_pending, report.outbox_oldest = conn.execute(OUTBOX_LAG).fetchone()
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise storage_error(exc, _path_of(conn), writing=False) from exc
    heads = sorted((c, u, chain.seq, chain.head) for (c, u), chain in chains.items())
    report.accounts = len(chains)
    report.digest = heads_digest(heads)
    report.heads = heads
    if anchor is not None and anchor.heads:
        _check_anchored_heads(report, anchor, chains)
    if anchor is not None:
        anchored = sorted(
            (c, u, chain.anchored_seq, chain.anchored_head)
            for (c, u), chain in chains.items()
            if chain.anchored_seq
        )
        if heads_digest(anchored) != anchor.digest:
            report.add(
                Violation(
                    None,
                    None,
                    anchor.high_water,
                    f"history up to this transaction no longer matches the checkpoint of "
                    f"{anchor.created_at} (digest {anchor.digest[:16]}…): rows were rewritten"
                    " or cut since",
                )
            )
    report.duration_s = time.perf_counter() - started
    return report


def _check_anchored_heads(
    report: IntegrityReport, anchor: Checkpoint, chains: dict[tuple[int, int], _Chain]
) -> None:
    """Every chain head of the checkpoint must still be in its chain, unchanged."""
    stored = sorted((c, u, seq, head) for (c, u), (seq, head) in anchor.heads.items())
    if heads_digest(stored) != anchor.digest:
        report.add(
            Violation(None, None, None, f"the chain heads kept with the checkpoint of "
                      f"{anchor.created_at} do not match its digest: they were altered")
        )  # fmt: skip
        return
    for (chat_id, user_id), (seq, _head) in anchor.heads.items():
        chain = chains.get((chat_id, user_id))
        if chain is None or chain.anchor_match is None:
            problem = f"its chain head #{seq} of the checkpoint of {anchor.created_at} is gone"
        elif not chain.anchor_match:
            problem = f"its chain head #{seq} of the checkpoint of {anchor.created_at} changed"
        else:
            continue
        report.add(Violation(chat_id, user_id, None, f"{problem}: history was cut or rewritten"))


def _scan_transactions(
    conn: sqlite3.Connection, report: IntegrityReport, anchor: Checkpoint | None
) -> dict[tuple[int, int], _Chain]:
    chains: dict[tuple[int, int], _Chain] = {}
    high_water = anchor.high_water if anchor else 0
    anchor_heads = anchor.heads if anchor else {}
    anchored_rows = 0
    cursor = conn.execute(
        "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id,"
        " reason, breakdown, created_at, reverts_id, prev_hash, hash FROM transactions"
        " ORDER BY id"
    )
    while rows := cursor.fetchmany(FETCH_CHUNK):
        for row in rows:
            (tx_id, chat_id, user_id, seq, amount, balance_after, kind, key, actor_id, reason,
             breakdown, created_at, reverts_id, prev_hash, stored_hash) = row  # fmt: skip
            report.transactions += 1
            report.high_water = tx_id
            chain = chains.get((chat_id, user_id))
            if chain is None:
                chain = chains[(chat_id, user_id)] = _Chain()
            problem = None
            if seq != chain.seq + 1:
                problem = f"sequence {seq} follows {chain.seq} (a row is missing or moved)"
            elif prev_hash != chain.head:
                problem = "its previous-hash link does not match the row before it"
            elif balance_after != chain.balance + amount:
                problem = f"balance after {balance_after} is not {chain.balance} + {amount}"
            else:
                expected = chain_hash(
                    prev_hash, tx_id=tx_id, chat_id=chat_id, user_id=user_id, seq=seq,
                    amount=amount, balance_after=balance_after, kind=kind, idem_key=key,
                    actor_id=actor_id, reason=reason, breakdown=breakdown,
                    created_at=created_at, reverts_id=reverts_id,
                )  # fmt: skip
                if expected != stored_hash:
                    problem = "its content does not match its hash (the row was edited)"
            if problem is not None and not chain.broken:
                chain.broken = True
                report.add(Violation(chat_id, user_id, tx_id, problem))
            chain.seq, chain.head = seq, stored_hash
            chain.balance += amount
            if kind == "revert":
                chain.earned -= max(-amount, 0)
            elif amount > 0:
                chain.earned += amount
            if tx_id <= high_water:
                anchored_rows += 1
                chain.anchored_seq, chain.anchored_head = seq, stored_hash
            if anchor_heads:
                expected_head = anchor_heads.get((chat_id, user_id))
                if expected_head is not None and expected_head[0] == seq:
                    chain.anchor_match = expected_head[1] == stored_hash
    if anchor is not None and anchored_rows != anchor.tx_count:
        report.add(
            Violation(
                None,
                None,
                anchor.high_water,
                f"{anchored_rows:,} transactions up to this one exist, the checkpoint of "
                f"{anchor.created_at} counted {anchor.tx_count:,}",
            )
        )
    return chains


def _check_accounts(
    conn: sqlite3.Connection, report: IntegrityReport, chains: dict[tuple[int, int], _Chain]
) -> None:
    seen: set[tuple[int, int]] = set()
    cursor = conn.execute("SELECT chat_id, user_id, balance, earned, seq, head_hash FROM accounts")
    while rows := cursor.fetchmany(FETCH_CHUNK):
        for chat_id, user_id, balance, earned, seq, head in rows:
            seen.add((chat_id, user_id))
            chain = chains.get((chat_id, user_id), _Chain())
            if balance != chain.balance:
                problem = f"cached balance {balance} but its transactions sum to {chain.balance}"
            elif earned != chain.earned:
                problem = f"cached lifetime earned {earned} but the ledger says {chain.earned}"
            elif (seq, head) != (chain.seq, chain.head):
                problem = f"cached chain head is at {seq}, the ledger's at {chain.seq}"
            else:
                continue
            report.add(Violation(chat_id, user_id, None, problem))
    for chat_id, user_id in chains.keys() - seen:
        report.add(Violation(chat_id, user_id, None, "has transactions but no balance row"))


def _check_reverts(conn: sqlite3.Connection, report: IntegrityReport) -> None:
    rows = conn.execute(
        "SELECT r.id, r.chat_id, r.user_id, r.kind, r.amount, r.reverts_id,"
        " o.id, o.chat_id, o.user_id, o.kind, o.amount"
        " FROM transactions AS r LEFT JOIN transactions AS o ON o.id = r.reverts_id"
        " WHERE r.reverts_id IS NOT NULL OR r.kind = 'revert'"
    )
    targets: dict[int, int] = {}
    for r_id, chat, user, kind, amount, reverts_id, o_id, o_chat, o_user, o_kind, o_amount in rows:
        if kind != "revert" or reverts_id is None:
            problem = "a revert must have kind 'revert' and name its original"
        elif o_id is None:
            problem = f"reverts #{reverts_id}, which does not exist"
        elif (o_chat, o_user) != (chat, user) or amount != -o_amount:
            problem = f"does not exactly compensate #{o_id}"
        elif o_kind == "revert":
            problem = f"reverts #{o_id}, which is itself a revert"
        elif o_id >= r_id:
            problem = f"reverts #{o_id}, which comes after it"
        elif reverts_id in targets:
            problem = f"reverts #{reverts_id} a second time (first by #{targets[reverts_id]})"
        else:
            targets[reverts_id] = r_id
            continue
        report.add(Violation(chat, user, r_id, problem))


def record_checkpoint(conn: sqlite3.Connection, report: IntegrityReport) -> None:
    """Store the report and its chain heads, the anchor the next check is held to.

    Only the latest checkpoint keeps its heads (one row per account), so the table stays
    as large as the number of accounts; older checkpoints keep their digest and report.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.execute(
                INSERT_CHECKPOINT,
                (
                    report.checked_at,
                    report.high_water,
                    report.transactions,
                    report.accounts,
                    report.digest,
                    report.violation_count,
                    report.to_json(),
                ),
            )
            checkpoint_id = cursor.lastrowid
            conn.executemany(
                INSERT_CHECKPOINT_HEAD,
                ((checkpoint_id, c, u, seq, head) for c, u, seq, head in report.heads),
            )
            conn.execute(DELETE_OLDER_HEADS, (checkpoint_id,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise storage_error(exc, _path_of(conn)) from exc


def _path_of(conn: sqlite3.Connection) -> str:
    """The file behind a connection, for a sentence (the connection may be failing)."""
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
    except sqlite3.Error:
        return "the ledger"
    return str(row[2]) if row and row[2] else "the ledger"


def run_check(
    path: str | Path,
    *,
    record: bool = False,
    quick_check: bool = True,
    clock: Clock | None = None,
) -> IntegrityReport:
    """Open the ledger at `path`, check it against its latest checkpoint, optionally record."""
    conn = open_for_check(path)
    try:
        try:
            anchor = latest_checkpoint(conn)
        except sqlite3.Error as exc:
            raise storage_error(exc, path) from exc
        report = check_ledger(conn, anchor=anchor, quick_check=quick_check, clock=clock)
        if record:
            try:
                record_checkpoint(conn, report)
            except StorageError as exc:
                raise CheckpointNotStoredError(report, exc) from exc
        return report
    finally:
        conn.close()
