"""The shared anti-abuse state's Redis keys, their lifetimes, and the two Lua scripts that
read and write them atomically.

Per person and chat: `{prefix}recent:{chat}:{user}` (rate, burst, repeats, verdicts of
redelivered messages) and `{prefix}record:{chat}:{user}` (the day's total and the
engagement record, with a standing byte that other people's judgements read). Per chat:
`{prefix}chat:{chat}`, a hash of its presence (`p`, and `u` its people) and copy memory
(`c`). `{prefix}frozen` counts changes to the frozen accounts, which the ledger keeps.

Every value starts with an 8-byte version; a write names the versions it read and is
refused when any changed meanwhile (compare-and-set), so two instances judging the same
chat at once never lose each other's update: the second one judges again on the new state.
"""

from __future__ import annotations

from dataclasses import dataclass

from plugins.gamification.domain.config import AntiAbuseSection

# Nothing is remembered for a shorter time than this: the verdicts of redelivered updates
# (a webhook's retries come within minutes; older repeats meet the ledger's keys).
VERDICT_SECONDS = 3600
# Past the longest window, so that state is never dropped while a rule still reads it.
MARGIN_SECONDS = 60
DAY_SECONDS = 86_400
# A local day is at most 25 hours long (a daylight-saving change).
LONGEST_DAY = 25 * 3600
VERSION_BYTES = 8

# KEYS: recent, record, chat, frozen. ARGV: the record keys' prefix for the chat's people,
# "1" to read the chat, "1" to read its copy memory. Returns the server's TIME (seconds,
# microseconds), the recent and record values, the chat's version, presence and copies,
# the frozen count, then (person, standing byte) for each person of the chat's presence.
# Missing values are empty strings.
LOAD = """
local now = redis.call('TIME')
local out = {now[1], now[2], redis.call('GET', KEYS[1]) or '',
             redis.call('GET', KEYS[2]) or '', '', '', '', redis.call('GET', KEYS[4]) or ''}
if ARGV[2] == '1' then
  local chat = redis.call('HMGET', KEYS[3], 'v', 'p', 'u')
  if chat[1] then
    out[5] = chat[1]
    out[6] = chat[2] or ''
    if ARGV[3] == '1' then out[7] = redis.call('HGET', KEYS[3], 'c') or '' end
    for person in string.gmatch(chat[3] or '', '%S+') do
      out[#out + 1] = person
      out[#out + 1] = redis.call('GETRANGE', ARGV[1] .. person, 8, 8)
    end
  end
end
return out
"""

# KEYS: recent, record[, chat]. ARGV: the recent and record versions read, their new
# values, their lifetimes (ms)[, the chat's version read, its new version, presence,
# people, "1" when the copy memory is written, the copy memory, its lifetime (ms)].
# Returns 1 when written, 0 when a version changed since it was read (nothing written).
STORE = """
if redis.call('GETRANGE', KEYS[1], 0, 7) ~= ARGV[1] then return 0 end
if redis.call('GETRANGE', KEYS[2], 0, 7) ~= ARGV[2] then return 0 end
if #KEYS == 3 and (redis.call('HGET', KEYS[3], 'v') or '') ~= ARGV[7] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[5])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[6])
if #KEYS == 3 then
  redis.call('HSET', KEYS[3], 'v', ARGV[8], 'p', ARGV[9], 'u', ARGV[10])
  if ARGV[11] == '1' then redis.call('HSET', KEYS[3], 'c', ARGV[12]) end
  redis.call('PEXPIRE', KEYS[3], ARGV[13])
end
return 1
"""


# KEYS: frozen. ARGV: its lifetime (ms). Counts a change to the frozen accounts.
BUMP = """
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return count
"""


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """How long each key outlives its last write, in milliseconds: the longest window any
    rule reads it for, plus a margin. A key that expired reads as a person or chat nobody
    heard from in that long, which is what the rules would make of it anyway."""

    recent: int
    record: int
    chat: int

    @classmethod
    def of(cls, s: AntiAbuseSection) -> Lifetimes:
        recent = max(
            s.repeat_window_seconds,
            s.burst_seconds,
            s.cooldown_seconds * s.cooldown_burst,  # an empty bucket refilled
            VERDICT_SECONDS,
        )
        # The engagement record counts the messages of its last `engagement_days` days;
        # without it, the record holds only the day's total (read again from the ledger).
        record = max(s.engagement_days * DAY_SECONDS if s.engaged_share > 0 else 0, LONGEST_DAY)
        chat = max(s.presence_seconds, s.answer_seconds, s.copy_window_seconds)
        return cls(
            *(round((seconds + MARGIN_SECONDS) * 1000) for seconds in (recent, record, chat))
        )


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix (each bot sharing a Redis server has its own)."""

    prefix: str

    def recent(self, chat_id: int, user_id: int) -> str:
        return f"{self.prefix}recent:{chat_id}:{user_id}"

    def record(self, chat_id: int, user_id: int) -> str:
        return f"{self.prefix}record:{chat_id}:{user_id}"

    def records(self, chat_id: int) -> str:
        """The record keys of a chat's people, but for the person's id."""
        return f"{self.prefix}record:{chat_id}:"

    def chat(self, chat_id: int) -> str:
        return f"{self.prefix}chat:{chat_id}"

    @property
    def frozen(self) -> str:
        return f"{self.prefix}frozen"
