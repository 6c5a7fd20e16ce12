"""The shared anti-abuse state's Redis keys, their lifetimes, and the two Lua scripts that
read and write them atomically.

Per person and chat: `{prefix}recent:{chat}:{user}` (rate, burst, repeats, verdicts of
redelivered messages) and `{prefix}record:{chat}:{user}` (the day's total and the
engagement record, with a standing byte that other people's judgements read). Per chat:
`{prefix}chat:{chat}`, a hash of its presence (`p`, and `u` its people) and copy memory
(`c`). `{prefix}frozen` counts changes to the frozen accounts, which the ledger keeps.

The engagement book (domain/engagement.py): per chat, `{prefix}book:{chat}` (a hash,
message id -> the remembered message as text, engagement_codec.py) with
`{prefix}booked:{chat}` (its message ids by time, to drop the oldest); per person and chat,
`{prefix}giver:{chat}:{user}` (what they gave today); and `{prefix}pending`, the reactions
waiting to settle, `chat:message:reactor` by the time they settle. A reaction is added or
taken back by one script that edits the message's text in place; a response is judged on a
loaded message and giver and written back only if neither changed (compare-and-set on the
values themselves); settling pops what is due, so each reaction settles on one instance.

Every value starts with an 8-byte version; a write names the versions it read and is
refused when any changed meanwhile (compare-and-set), so two instances judging the same
chat at once never lose each other's update: the second one judges again on the new state.
"""

from __future__ import annotations

from dataclasses import dataclass

from plugins.gamification.domain.config import (
    AntiAbuseSection,
    EngagementSection,
    ReactionsSection,
)

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


# KEYS: book, booked. ARGV: message id, the message's text, its time, the time before which
# remembered messages are dropped, the most the chat remembers, the lifetime (ms). A message
# already remembered stays as it is (1: remembered now, 0: it was).
POSTED = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if extra > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[2], extra)
  for i = 1, #oldest, 2 do redis.call('HDEL', KEYS[1], oldest[i]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
"""

# KEYS: book, giver. ARGV: message id. The message's and the giver's texts ('' if none).
RESPONSE = """
return {redis.call('HGET', KEYS[1], ARGV[1]) or '', redis.call('GET', KEYS[2]) or ''}
"""

# KEYS: book, giver. ARGV: message id, its text read, its new text, the giver's text read,
# its new text, its lifetime (ms). 1 when written, 0 when either changed since it was read.
RESPONDED = """
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[4] then return 0 end
if ARGV[3] ~= ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
if ARGV[5] ~= ARGV[4] then redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[6]) end
return 1
"""

# KEYS: book, pending. ARGV: message id, reactor, the reaction's time, the engagement
# window, when it settles, its pending member, "1" added / "0" taken back, the most
# reactors a message keeps, the lifetime (ms). As EngagementBook.react: a reaction on a
# message not remembered, past the window or the author's own changes nothing; one taken
# back before it settled is forgotten, reactor and all.
REACT = """
local text = redis.call('HGET', KEYS[1], ARGV[1])
if not text then return 0 end
local author, at, base, engaged, reactors = string.match(text, '^(%S+) (%S+) (%S+) (%S+) (%S*)$')
if not author then return 0 end
if tonumber(ARGV[3]) - tonumber(at) > tonumber(ARGV[4]) then return 0 end
if author == ARGV[2] then return 0 end
local listed = ',' .. reactors .. ','
local found = string.find(listed, ',' .. ARGV[2] .. ',', 1, true)
if ARGV[7] == '0' then
  if redis.call('ZREM', KEYS[2], ARGV[6]) == 0 then return 0 end
  if found then
    listed = string.sub(listed, 1, found) .. string.sub(listed, found + #ARGV[2] + 2)
    reactors = string.sub(listed, 2, -2)
  end
else
  if found then return 0 end
  local count = 0
  for _ in string.gmatch(reactors, '[^,]+') do count = count + 1 end
  if count >= tonumber(ARGV[8]) then return 0 end
  reactors = (reactors == '') and ARGV[2] or (reactors .. ',' .. ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
  redis.call('PEXPIRE', KEYS[2], ARGV[9])
end
local fields = {author, at, base, engaged, reactors}
redis.call('HSET', KEYS[1], ARGV[1], table.concat(fields, ' '))
return 1
"""

# KEYS: pending. ARGV: now. Takes out and returns every reaction settled by now.
DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #due > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) end
return due
"""


@dataclass(frozen=True, slots=True)
class BookLifetimes:
    """How long the engagement book's keys outlive their last write (ms), and how far back
    (seconds) a chat's remembered messages reach: the engagement window, plus the time a
    reaction within it takes to settle, plus a margin. A member's day of giving lasts a day."""

    book: int
    giver: int
    reach: float

    @classmethod
    def of(cls, engagement: EngagementSection, reactions: ReactionsSection) -> BookLifetimes:
        reach = engagement.window_seconds + reactions.settle_seconds + MARGIN_SECONDS
        return cls(round(reach * 1000), (LONGEST_DAY + MARGIN_SECONDS) * 1000, reach)


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

    def book(self, chat_id: int) -> str:
        return f"{self.prefix}book:{chat_id}"

    def booked(self, chat_id: int) -> str:
        return f"{self.prefix}booked:{chat_id}"

    def giver(self, chat_id: int, user_id: int) -> str:
        return f"{self.prefix}giver:{chat_id}:{user_id}"

    @property
    def pending(self) -> str:
        return f"{self.prefix}pending"


class StoreUnavailable(Exception):
    """Redis did not answer in time or answered with an error (already logged)."""
