"""The PostgreSQL store's reads and side writes: sqlite/queries.py, sqlite/rows.py and
sqlite/sidetables.py in PostgreSQL's dialect.

Complete literals with $n parameters, like every statement of the ledger; each select
lists its columns in the order the shared converters (storage/reading.py,
sqlite/rows.row_to_transaction) read them. PostgreSQL's SUM of a BIGINT is NUMERIC, so sums
are cast back to BIGINT where a row is handed on as an integer.
"""

SELECT_TX_BY_ID = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id, reason,"
    " breakdown, created_at, reverts_id, prev_hash, hash FROM transactions WHERE id = $1"
)
SELECT_TX_BY_KEY = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id, reason,"
    " breakdown, created_at, reverts_id, prev_hash, hash FROM transactions WHERE idem_key = $1"
)
SELECT_HISTORY = (
    "SELECT id, chat_id, user_id, seq, amount, balance_after, kind, idem_key, actor_id, reason,"
    " breakdown, created_at, reverts_id, prev_hash, hash FROM transactions"
    " WHERE chat_id = $1 AND user_id = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4"
)
SELECT_BALANCE = "SELECT balance, earned, seq FROM accounts WHERE chat_id = $1 AND user_id = $2"
SELECT_LAST_ID = "SELECT COALESCE(MAX(id), 0) FROM transactions"
SELECT_PROGRESS = "SELECT name, value FROM progress WHERE chat_id = $1 AND user_id = $2"
SELECT_STREAK = (
    "SELECT streak_day, streak_length, streak_best FROM accounts"
    " WHERE chat_id = $1 AND user_id = $2 AND streak_day IS NOT NULL"
)
SELECT_UNLOCKS = (
    "SELECT achievement, unlocked_at FROM unlocks"
    " WHERE chat_id = $1 AND user_id = $2 AND revoked_tx_id IS NULL"
)
SELECT_TODAY = (
    "SELECT streak_day, streak_length, activity_day, activity_today FROM accounts"
    " WHERE chat_id = $1 AND user_id = $2"
)
STANDINGS_ALL = (
    "SELECT user_id, balance FROM accounts WHERE chat_id = $1 AND balance <> 0"
    " ORDER BY balance DESC, user_id LIMIT $2"
)
STANDINGS_SINCE = (
    "SELECT user_id, SUM(amount)::bigint AS points FROM transactions"
    " WHERE chat_id = $1 AND created_at >= $2 GROUP BY user_id HAVING SUM(amount) <> 0"
    " ORDER BY points DESC, user_id LIMIT $3"
)
STANDING_OF_ALL = (
    "WITH board AS (SELECT user_id, balance AS points FROM accounts"
    " WHERE chat_id = $1 AND balance <> 0)"
    " SELECT points, (SELECT COUNT(*) FROM board AS other"
    " WHERE other.points > board.points) + 1 FROM board WHERE user_id = $2"
)
STANDING_OF_SINCE = (
    "WITH board AS (SELECT user_id, SUM(amount)::bigint AS points FROM transactions"
    " WHERE chat_id = $1 AND created_at >= $3 GROUP BY user_id HAVING SUM(amount) <> 0)"
    " SELECT points, (SELECT COUNT(*) FROM board AS other"
    " WHERE other.points > board.points) + 1 FROM board WHERE user_id = $2"
)

# -- the outbox ---------------------------------------------------------------------------

INSERT_OUTBOX = (
    "INSERT INTO outbox (event_id, type, chat_id, user_id, payload, occurred_at)"
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING"
)
SELECT_PENDING = (
    "SELECT id, event_id, type, chat_id, user_id, payload, occurred_at FROM outbox"
    " WHERE delivered_at IS NULL ORDER BY id LIMIT $1"
)
COUNT_PENDING = "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL"
MARK_DELIVERED = "UPDATE outbox SET delivered_at = $1 WHERE id <= $2 AND delivered_at IS NULL"
SELECT_PRUNE_BOUND = (
    "SELECT id FROM outbox WHERE delivered_at IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET $1"
)
PRUNE_DELIVERED = "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND id <= $1"

# -- tables beside the ledger -------------------------------------------------------------

SELECT_FREEZES = "SELECT chat_id, user_id FROM freezes"
INSERT_FREEZE = (
    "INSERT INTO freezes (chat_id, user_id, frozen_at, frozen_by, reason)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (chat_id, user_id) DO NOTHING"
)
DELETE_FREEZE = "DELETE FROM freezes WHERE chat_id = $1 AND user_id = $2"
CLAIM_JOB_RUN = (
    "INSERT INTO job_runs (job, slot, claimed_at, claimed_by) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (job, slot) DO NOTHING"
)
SELECT_JOB_RUN = "SELECT claimed_by FROM job_runs WHERE job = $1 AND slot = $2"
FORGET_JOB_RUNS = "DELETE FROM job_runs WHERE claimed_at < $1"
SELECT_CHAT_LANGUAGE = "SELECT language FROM chat_settings WHERE chat_id = $1"
UPSERT_CHAT_LANGUAGE = (
    "INSERT INTO chat_settings (chat_id, language, updated_at, updated_by)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (chat_id) DO UPDATE SET language = excluded.language,"
    " updated_at = excluded.updated_at, updated_by = excluded.updated_by"
)
INSERT_SUSPICION = (
    "INSERT INTO suspicions (chat_id, user_id, reason, detail, created_at)"
    " VALUES ($1, $2, $3, $4, $5)"
)
INSERT_ADMIN_ACTION = (
    "INSERT INTO admin_actions (chat_id, actor_id, action, target_id, detail, created_at)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)
UPSERT_KNOWN_USER = (
    "INSERT INTO known_users (user_id, username, full_name, is_bot, updated_at)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET"
    " username = excluded.username, full_name = excluded.full_name,"
    " is_bot = excluded.is_bot, updated_at = excluded.updated_at"
)
SELECT_KNOWN_USER = (
    "SELECT user_id, username, full_name, is_bot FROM known_users WHERE user_id = $1"
)
# SQLite's COLLATE NOCASE; the index known_users_username is on lower(username).
SELECT_KNOWN_USERNAME = (
    "SELECT user_id, username, full_name, is_bot FROM known_users"
    " WHERE lower(username) = lower($1) ORDER BY updated_at DESC LIMIT 1"
)

# -- the ledger reads the Telegram side needs ----------------------------------------------

COUNT_THANKS_PAIR = (
    "SELECT COUNT(*) FROM transactions WHERE chat_id = $1 AND user_id = $2 AND actor_id = $3"
    " AND kind = 'thanks' AND created_at >= $4"
)
FIRST_TRANSACTION_AT = "SELECT MIN(created_at) FROM transactions WHERE chat_id = $1"
LAST_ADMIN_ACTION = (
    "SELECT detail FROM admin_actions WHERE chat_id = $1 AND action = $2 ORDER BY id DESC LIMIT 1"
)
COUNT_THANKS_GIVEN = (
    "SELECT COUNT(*) FROM transactions WHERE chat_id = $1 AND actor_id = $2"
    " AND kind = 'thanks' AND created_at >= $3"
)
COUNT_SCORED_MESSAGES = (
    "SELECT COUNT(*) FROM transactions WHERE chat_id = $1 AND user_id = $2"
    " AND kind = 'activity' AND idem_key LIKE 'msg:%' AND created_at >= $3"
)
ENGAGED_BY = (
    "SELECT actor_id, COUNT(*) FROM transactions WHERE chat_id = $1 AND user_id = $2"
    " AND kind = 'activity' AND idem_key LIKE 'eng:%' AND created_at >= $3 GROUP BY actor_id"
)
COUNT_ENGAGED_PAIR = (
    "SELECT COUNT(*) FROM transactions WHERE chat_id = $1 AND user_id = $2 AND actor_id = $3"
    " AND kind = 'activity' AND idem_key LIKE 'eng:%' AND created_at >= $4"
)
MEMBER_DAYS = (
    "SELECT SUM(amount)::bigint FROM transactions WHERE chat_id = $1 AND kind = 'activity'"
    " AND amount > 0 AND created_at >= $2 AND created_at < $3"
    " GROUP BY user_id, substr(created_at, 1, 10)"
)

# The pages on the web (services/web_access.py): never read by the scoring path.
SET_WEB_PUBLIC = (
    "INSERT INTO web_access (chat_id, public, changed_by, changed_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (chat_id) DO UPDATE SET public = excluded.public,"
    " changed_by = excluded.changed_by, changed_at = excluded.changed_at"
)
SELECT_WEB_PUBLIC = "SELECT public FROM web_access WHERE chat_id = $1"
CHAT_KNOWN = "SELECT EXISTS (SELECT 1 FROM accounts WHERE chat_id = $1)"
SELECT_AUDIT_TRAIL = (
    "SELECT id, actor_id, action, target_id, detail, created_at FROM admin_actions"
    " WHERE chat_id = $1 ORDER BY id DESC LIMIT $2"
)
SELECT_AMOUNTS_SINCE = (
    "SELECT created_at, amount FROM transactions"
    " WHERE chat_id = $1 AND user_id = $2 AND created_at >= $3 ORDER BY id"
)
