"""Statements for the tables beside the ledger, and the ledger reads the Telegram side needs.

All complete literals with ? parameters; nothing here is ever formatted at run time.
"""

SELECT_FREEZES = "SELECT chat_id, user_id FROM freezes"
INSERT_FREEZE = (
    "INSERT INTO freezes (chat_id, user_id, frozen_at, frozen_by, reason) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (chat_id, user_id) DO NOTHING"
)
DELETE_FREEZE = "DELETE FROM freezes WHERE chat_id = ? AND user_id = ?"
INSERT_SUSPICION = (
    "INSERT INTO suspicions (chat_id, user_id, reason, detail, created_at) VALUES (?, ?, ?, ?, ?)"
)
UPSERT_KNOWN_USER = (
    "INSERT INTO known_users (user_id, username, full_name, is_bot, updated_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET username = excluded.username,"
    " full_name = excluded.full_name, is_bot = excluded.is_bot, updated_at = excluded.updated_at"
)
SELECT_KNOWN_USER = (
    "SELECT user_id, username, full_name, is_bot FROM known_users WHERE user_id = ?"
)
SELECT_KNOWN_USERNAME = (
    "SELECT user_id, username, full_name, is_bot FROM known_users"
    " WHERE username = ? COLLATE NOCASE ORDER BY updated_at DESC LIMIT 1"
)
INSERT_ADMIN_ACTION = (
    "INSERT INTO admin_actions (chat_id, actor_id, action, target_id, detail, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
LAST_THANKS_PAIR = (
    "SELECT COUNT(*) FROM transactions WHERE chat_id = ? AND user_id = ? AND actor_id = ?"
    " AND kind = 'thanks' AND created_at >= ?"
)
FIRST_TRANSACTION_AT = "SELECT MIN(created_at) FROM transactions WHERE chat_id = ?"
LAST_ADMIN_ACTION = (
    "SELECT detail FROM admin_actions WHERE chat_id = ? AND action = ? ORDER BY id DESC LIMIT 1"
)
COUNT_THANKS_GIVEN = (
    "SELECT COUNT(*) FROM transactions WHERE chat_id = ? AND actor_id = ?"
    " AND kind = 'thanks' AND created_at >= ?"
)
COUNT_SCORED_MESSAGES = (
    "SELECT COUNT(*) FROM transactions WHERE chat_id = ? AND user_id = ? AND kind = 'activity'"
    " AND idem_key LIKE 'msg:%' AND created_at >= ?"
)
# Engagement bonuses a member received, by the member who engaged them.
ENGAGED_BY = (
    "SELECT actor_id, COUNT(*) FROM transactions WHERE chat_id = ? AND user_id = ?"
    " AND kind = 'activity' AND idem_key LIKE 'eng:%' AND created_at >= ? GROUP BY actor_id"
)
COUNT_ENGAGED_PAIR = (
    "SELECT COUNT(*) FROM transactions WHERE chat_id = ? AND user_id = ? AND actor_id = ?"
    " AND kind = 'activity' AND idem_key LIKE 'eng:%' AND created_at >= ?"
)
# Activity points per member and UTC day over a range of days: the chat's member-days.
MEMBER_DAYS = (
    "SELECT SUM(amount) FROM transactions WHERE chat_id = ? AND kind = 'activity'"
    " AND amount > 0 AND created_at >= ? AND created_at < ?"
    " GROUP BY user_id, substr(created_at, 1, 10)"
)
SELECT_TODAY = (
    "SELECT streak_day, streak_length, activity_day, activity_today FROM accounts"
    " WHERE chat_id = ? AND user_id = ?"
)
# Claims of scheduled runs: the first claimer's row stays; a later claim changes nothing.
CLAIM_JOB_RUN = (
    "INSERT INTO job_runs (job, slot, claimed_at, claimed_by) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (job, slot) DO NOTHING"
)
SELECT_JOB_RUN = "SELECT claimed_by FROM job_runs WHERE job = ? AND slot = ?"
FORGET_JOB_RUNS = "DELETE FROM job_runs WHERE claimed_at < ?"

# The pages on the web (services/web_access.py): never read by the scoring path.
SET_WEB_PUBLIC = (
    "INSERT INTO web_access (chat_id, public, changed_by, changed_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (chat_id) DO UPDATE SET public = excluded.public,"
    " changed_by = excluded.changed_by, changed_at = excluded.changed_at"
)
SELECT_WEB_PUBLIC = "SELECT public FROM web_access WHERE chat_id = ?"
CHAT_KNOWN = "SELECT EXISTS (SELECT 1 FROM accounts WHERE chat_id = ?)"
SELECT_AUDIT_TRAIL = (
    "SELECT id, actor_id, action, target_id, detail, created_at FROM admin_actions"
    " WHERE chat_id = ? ORDER BY id DESC LIMIT ?"
)
SELECT_AMOUNTS_SINCE = (
    "SELECT created_at, amount FROM transactions"
    " WHERE chat_id = ? AND user_id = ? AND created_at >= ? ORDER BY id"
)
# A chat's settings: the row is replaced whole (NULL language: each person's own).
SELECT_CHAT_LANGUAGE = "SELECT language FROM chat_settings WHERE chat_id = ?"
UPSERT_CHAT_LANGUAGE = (
    "INSERT INTO chat_settings (chat_id, language, updated_at, updated_by) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (chat_id) DO UPDATE SET language = excluded.language,"
    " updated_at = excluded.updated_at, updated_by = excluded.updated_by"
)
