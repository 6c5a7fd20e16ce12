"""Schema migrations keyed by `PRAGMA user_version`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from plugins.gamification.domain.errors import ForeignDatabaseError, SchemaVersionError
from plugins.gamification.storage.hashing import GENESIS_HASH

__all__ = ["GENESIS_HASH", "MIGRATIONS", "SCHEMA_VERSION", "ledger_version", "migrate"]

# Each entry migrates from version index to index + 1. Never edit a released entry:
# append a new one, so every database walks the same path.
MIGRATIONS: tuple[str, ...] = (
    # 1: accounts, the append-only hash-chained ledger, integrity checkpoints.
    f"""
    CREATE TABLE accounts (
        chat_id     INTEGER NOT NULL,
        user_id     INTEGER NOT NULL,
        balance     INTEGER NOT NULL DEFAULT 0,
        earned      INTEGER NOT NULL DEFAULT 0,
        seq         INTEGER NOT NULL DEFAULT 0,
        head_hash   TEXT    NOT NULL DEFAULT '{GENESIS_HASH}',
        updated_at  TEXT    NOT NULL,
        PRIMARY KEY (chat_id, user_id)
    ) WITHOUT ROWID;

    CREATE TABLE transactions (
        id            INTEGER PRIMARY KEY,
        chat_id       INTEGER NOT NULL,
        user_id       INTEGER NOT NULL,
        seq           INTEGER NOT NULL,
        amount        INTEGER NOT NULL,
        balance_after INTEGER NOT NULL,
        kind          TEXT    NOT NULL,
        idem_key      TEXT    NOT NULL,
        request_hash  TEXT    NOT NULL,
        actor_id      INTEGER,
        reason        TEXT    NOT NULL,
        breakdown     TEXT    NOT NULL,
        created_at    TEXT    NOT NULL,
        reverts_id    INTEGER REFERENCES transactions (id),
        prev_hash     TEXT    NOT NULL,
        hash          TEXT    NOT NULL
    );
    CREATE UNIQUE INDEX transactions_idem_key ON transactions (idem_key);
    CREATE UNIQUE INDEX transactions_account_seq ON transactions (chat_id, user_id, seq);
    CREATE UNIQUE INDEX transactions_reverts ON transactions (reverts_id)
        WHERE reverts_id IS NOT NULL;
    CREATE INDEX transactions_chat_time ON transactions (chat_id, created_at);

    CREATE TRIGGER transactions_no_update BEFORE UPDATE ON transactions
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: transactions cannot be updated'); END;
    CREATE TRIGGER transactions_no_delete BEFORE DELETE ON transactions
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: transactions cannot be deleted'); END;

    CREATE TABLE checkpoints (
        id          INTEGER PRIMARY KEY,
        created_at  TEXT    NOT NULL,
        high_water  INTEGER NOT NULL,
        tx_count    INTEGER NOT NULL,
        accounts    INTEGER NOT NULL,
        digest      TEXT    NOT NULL,
        violations  INTEGER NOT NULL
    );
    """,
    # 2: what the Telegram side keeps: freezes, suspicions, people seen, the admin audit log.
    """
    CREATE TABLE freezes (
        chat_id     INTEGER NOT NULL,
        user_id     INTEGER NOT NULL,
        frozen_at   TEXT    NOT NULL,
        frozen_by   INTEGER,
        reason      TEXT    NOT NULL,
        PRIMARY KEY (chat_id, user_id)
    ) WITHOUT ROWID;

    CREATE TABLE suspicions (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        user_id     INTEGER NOT NULL,
        reason      TEXT    NOT NULL,
        detail      TEXT    NOT NULL,
        created_at  TEXT    NOT NULL
    );

    CREATE TABLE known_users (
        user_id     INTEGER PRIMARY KEY,
        username    TEXT,
        full_name   TEXT    NOT NULL,
        is_bot      INTEGER NOT NULL,
        updated_at  TEXT    NOT NULL
    );
    CREATE INDEX known_users_username ON known_users (username COLLATE NOCASE);

    CREATE TABLE admin_actions (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        actor_id    INTEGER NOT NULL,
        action      TEXT    NOT NULL,
        target_id   INTEGER,
        detail      TEXT    NOT NULL,
        created_at  TEXT    NOT NULL
    );

    CREATE INDEX transactions_actor ON transactions (chat_id, actor_id, created_at);
    """,
    # 3: the transactional outbox, progress counters, streaks and achievement unlocks.
    """
    CREATE TABLE outbox (
        id           INTEGER PRIMARY KEY,
        event_id     TEXT    NOT NULL UNIQUE,
        type         TEXT    NOT NULL,
        chat_id      INTEGER,
        user_id      INTEGER,
        payload      TEXT    NOT NULL,
        occurred_at  TEXT    NOT NULL,
        delivered_at TEXT
    );
    CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;

    CREATE TABLE progress (
        chat_id     INTEGER NOT NULL,
        user_id     INTEGER NOT NULL,
        name        TEXT    NOT NULL,
        value       INTEGER NOT NULL,
        PRIMARY KEY (chat_id, user_id, name)
    ) WITHOUT ROWID;

    CREATE TABLE streaks (
        chat_id     INTEGER NOT NULL,
        user_id     INTEGER NOT NULL,
        last_day    TEXT    NOT NULL,
        length      INTEGER NOT NULL,
        best        INTEGER NOT NULL,
        PRIMARY KEY (chat_id, user_id)
    ) WITHOUT ROWID;

    CREATE TABLE unlocks (
        chat_id        INTEGER NOT NULL,
        user_id        INTEGER NOT NULL,
        achievement    TEXT    NOT NULL,
        unlocked_at    TEXT    NOT NULL,
        cause_tx_id    INTEGER NOT NULL REFERENCES transactions (id),
        reward_tx_id   INTEGER REFERENCES transactions (id),
        revoked_tx_id  INTEGER REFERENCES transactions (id),
        PRIMARY KEY (chat_id, user_id, achievement)
    ) WITHOUT ROWID;
    CREATE INDEX unlocks_cause ON unlocks (cause_tx_id);
    """,
    # 4: the full report with each checkpoint, and the chain heads of the latest one, so a
    # later check can name every account whose history was cut or rewritten since.
    """
    ALTER TABLE checkpoints ADD COLUMN report TEXT;

    CREATE TABLE checkpoint_heads (
        checkpoint_id INTEGER NOT NULL REFERENCES checkpoints (id),
        chat_id       INTEGER NOT NULL,
        user_id       INTEGER NOT NULL,
        seq           INTEGER NOT NULL,
        hash          TEXT    NOT NULL,
        PRIMARY KEY (checkpoint_id, chat_id, user_id)
    ) WITHOUT ROWID;
    """,
    # 5: streaks and the set of unlocked achievements live on the account row, which the
    # writer reads for every transaction anyway: no extra lookups on the hot path.
    """
    ALTER TABLE accounts ADD COLUMN streak_day TEXT;
    ALTER TABLE accounts ADD COLUMN streak_length INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN streak_best INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN achievements TEXT NOT NULL DEFAULT '';
    UPDATE accounts SET
        streak_day = (SELECT s.last_day FROM streaks AS s
                      WHERE s.chat_id = accounts.chat_id AND s.user_id = accounts.user_id),
        streak_length = COALESCE((SELECT s.length FROM streaks AS s
                      WHERE s.chat_id = accounts.chat_id AND s.user_id = accounts.user_id), 0),
        streak_best = COALESCE((SELECT s.best FROM streaks AS s
                      WHERE s.chat_id = accounts.chat_id AND s.user_id = accounts.user_id), 0),
        achievements = COALESCE((SELECT group_concat(u.achievement, ',') FROM unlocks AS u
                      WHERE u.chat_id = accounts.chat_id AND u.user_id = accounts.user_id
                      AND u.revoked_tx_id IS NULL), '');
    DROP TABLE streaks;

    -- Only thanks and admin changes have an actor: leave activity out of this index.
    DROP INDEX transactions_actor;
    CREATE INDEX transactions_actor ON transactions (chat_id, actor_id, created_at)
        WHERE actor_id IS NOT NULL;
    """,
    # 6: activity points earned on the account's last active day, for the daily cap: one
    # row read tells the Telegram side both the streak and what is left of today's cap.
    """
    ALTER TABLE accounts ADD COLUMN activity_day TEXT;
    ALTER TABLE accounts ADD COLUMN activity_today INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: claims of scheduled runs (the daily check, the weekly posts), so that several
    # processes sharing the ledger run each scheduled slot once. Not part of the chain.
    """
    CREATE TABLE job_runs (
        job         TEXT    NOT NULL,
        slot        TEXT    NOT NULL,
        claimed_at  TEXT    NOT NULL,
        claimed_by  TEXT    NOT NULL,
        PRIMARY KEY (job, slot)
    ) WITHOUT ROWID;
    CREATE INDEX job_runs_claimed_at ON job_runs (claimed_at);
    """,
    # 8: which chats show their pages to anyone (`/web public on`), and the audit trail
    # read by chat for the admins' page. Not part of the chain.
    """
    CREATE TABLE web_access (
        chat_id     INTEGER PRIMARY KEY,
        public      INTEGER NOT NULL,
        changed_by  INTEGER,
        changed_at  TEXT    NOT NULL
    );
    CREATE INDEX admin_actions_chat ON admin_actions (chat_id, id);
    """,
    # 9: settings a chat's admins choose (its language), one row per chat. Not part of
    # the chain: a setting is not points.
    """
    CREATE TABLE chat_settings (
        chat_id     INTEGER PRIMARY KEY,
        language    TEXT,
        updated_at  TEXT    NOT NULL,
        updated_by  INTEGER
    );
    """,
    # 10: one person's activity over a time range (their scored messages, the engagement
    # their messages drew): read for every answer and every new day, it must not scan the
    # whole chat's recent rows, which is what (chat_id, created_at) left it to do.
    """
    CREATE INDEX transactions_account_activity ON transactions (chat_id, user_id, created_at)
        WHERE kind = 'activity';
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
# Present in every ledger from version 1 on: how a ledger is told from someone else's file.
LEDGER_TABLES = frozenset({"accounts", "transactions", "checkpoints"})


def ledger_version(conn: sqlite3.Connection, path: str | Path) -> int:
    """The ledger's schema version, 0 for an empty database; reads only, changes nothing.

    Refuses another application's database (tables, but not the ledger's) and one written
    by a newer version, before anything (a migration, the switch to WAL) is written to it.
    """
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    tables = {
        str(name)
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not str(name).startswith("sqlite_")
    }
    if (version or tables) and not tables >= LEDGER_TABLES:
        raise ForeignDatabaseError(
            f"The file {path} is another application's SQLite database, not a points ledger;"
            " it was left untouched (point [storage] database or --db at a ledger or a new"
            " file)."
        )
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(_newer(version, path))
    return int(version)


def _newer(version: int, path: str | Path | None) -> str:
    subject = "The database" if path is None else f"The ledger {path}"
    return (
        f"{subject} has schema version {version}, newer than this program's "
        f"{SCHEMA_VERSION}; upgrade the program instead of downgrading the data."
    )


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to SCHEMA_VERSION; refuse one written by a newer version.

    Runs in its own IMMEDIATE transaction so two processes starting at once cannot
    both apply the same migration.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(_newer(version, None))
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _split(MIGRATIONS[target - 1]):
                conn.execute(statement)
            # PRAGMA takes no parameters; target is an int from range().
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def _split(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
