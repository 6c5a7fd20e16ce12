"""Statements of the store's named reads and the outbox's bookkeeping.

Complete literals with ? parameters, like every statement of the ledger.
"""

SELECT_PROGRESS = "SELECT name, value FROM progress WHERE chat_id = ? AND user_id = ?"
SELECT_STREAK = (
    "SELECT streak_day, streak_length, streak_best FROM accounts"
    " WHERE chat_id = ? AND user_id = ? AND streak_day IS NOT NULL"
)
SELECT_UNLOCKS = (
    "SELECT achievement, unlocked_at FROM unlocks"
    " WHERE chat_id = ? AND user_id = ? AND revoked_tx_id IS NULL"
)
SELECT_BALANCE = "SELECT balance, earned, seq FROM accounts WHERE chat_id = ? AND user_id = ?"
SELECT_LAST_ID = "SELECT COALESCE(MAX(id), 0) FROM transactions"
STANDINGS_ALL = (
    "SELECT user_id, balance FROM accounts WHERE chat_id = ? AND balance != 0"
    " ORDER BY balance DESC, user_id LIMIT ?"
)
STANDINGS_SINCE = (
    "SELECT user_id, SUM(amount) AS points FROM transactions"
    " WHERE chat_id = ? AND created_at >= ? GROUP BY user_id HAVING points != 0"
    " ORDER BY points DESC, user_id LIMIT ?"
)
STANDING_OF_ALL = (
    "WITH board AS (SELECT user_id, balance AS points FROM accounts"
    " WHERE chat_id = :chat AND balance != 0)"
    " SELECT points, (SELECT COUNT(*) FROM board AS other"
    " WHERE other.points > board.points) + 1 FROM board"
    " WHERE user_id = :user AND points != 0"
)
STANDING_OF_SINCE = (
    "WITH board AS (SELECT user_id, SUM(amount) AS points FROM transactions"
    " WHERE chat_id = :chat AND created_at >= :since GROUP BY user_id"
    " HAVING points != 0)"
    " SELECT points, (SELECT COUNT(*) FROM board AS other"
    " WHERE other.points > board.points) + 1 FROM board"
    " WHERE user_id = :user AND points != 0"
)

# The partial index outbox_pending covers the two reads of undelivered rows.
SELECT_PENDING = (
    "SELECT id, event_id, type, chat_id, user_id, payload, occurred_at FROM outbox"
    " WHERE delivered_at IS NULL ORDER BY id LIMIT ?"
)
COUNT_PENDING = "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL"
MARK_DELIVERED = "UPDATE outbox SET delivered_at = ? WHERE id <= ? AND delivered_at IS NULL"
# The newest delivered row that falls outside the `keep_delivered` window, if any.
SELECT_PRUNE_BOUND = (
    "SELECT id FROM outbox WHERE delivered_at IS NOT NULL ORDER BY id DESC LIMIT 1 OFFSET ?"
)
PRUNE_DELIVERED = "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND id <= ?"
