"""Engagement: which recent messages other members answered or reacted to, and within what
limits that earns.

The signal a script cannot cheaply fake is other people responding to it. Telegram's
`message_reaction` update does not say who wrote the reacted message, so the book keeps
a bounded map (chat, message) -> (author, time, base points) of recent scoreable
messages. The first qualifying response to a message (a reply, or a reaction that is not
taken back within `reactions.settle_seconds`) engages it: the author gets the bonus (base
x `engagement.bonus`, its own ledger transaction keyed on the message, halved for each
earlier engagement between the same two members in the record's window) and counts in
the author's engagement record (anti_abuse.py), at most `engaged_per_responder` times
per distinct member. A qualifying responder is another human with history of their own
in the chat (the caller checks the ledger), within a daily budget
(`engagement.daily_limit` messages engaged per responder per day, at most
`engagement.pair_daily_limit` of them the same author's): engagement is scarce, so a ring
of accounts answering each other lifts each other's record by a few messages, not by
thousands.

A reaction also gives the author `reactions.points` of its own, like a small thanks:
never from the author, at most `reactions.pair_daily_limit` per pair and
`reactions.daily_limit` per reacting member a day, and nothing for a reaction removed
before it settles. Pending reactions live in memory only (a restart forgets at most
`settle_seconds` of them); what was awarded is in the ledger under idempotency keys.
With shared anti-abuse state, the same records live in Redis (services/redis_engagement.py)
and `respond_on` decides there exactly as here.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from plugins.gamification.domain.config import EngagementSection, ReactionsSection


@dataclass(slots=True)
class Posted:
    """A recent scoreable message."""

    author: int
    at: float
    base: int
    engaged: bool = False
    # Members whose reaction on it is pending or settled (each reacts at most once).
    reactors: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Giver:
    """What one member gave today in one chat."""

    day: str = ""
    engaged: int = 0
    pairs: dict[int, int] = field(default_factory=dict)
    reactions: int = 0
    reaction_pairs: dict[int, int] = field(default_factory=dict)

    def on(self, day: str) -> Giver:
        if self.day != day:
            self.day, self.engaged, self.reactions = day, 0, 0
            self.pairs, self.reaction_pairs = {}, {}
        return self


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a response earns the author: the engagement bonus, reaction points, or both."""

    chat_id: int
    message_id: int
    author: int
    responder: int
    base: int
    bonus: bool
    reaction: bool


class EngagementBook:
    """Recent messages, pending reactions and what each member gave today; bounded."""

    def __init__(self, engagement: EngagementSection, reactions: ReactionsSection) -> None:
        self.engagement = engagement
        self.reactions = reactions
        self._messages: OrderedDict[tuple[int, int], Posted] = OrderedDict()
        self._givers: OrderedDict[tuple[int, int], Giver] = OrderedDict()
        # (due time, chat, message, reactor), in the order they arrived.
        self._pending: deque[tuple[float, int, int, int]] = deque()

    def __len__(self) -> int:
        return len(self._messages)

    def posted(self, chat_id: int, message_id: int, author: int, at: float, base: int) -> None:
        key = (chat_id, message_id)
        if key in self._messages:
            return
        self._messages[key] = Posted(author, at, base)
        while len(self._messages) > self.engagement.tracked_messages:
            self._messages.popitem(last=False)

    def lookup(self, chat_id: int, message_id: int, at: float) -> Posted | None:
        """The message, if it is remembered and still within the engagement window."""
        posted = self._messages.get((chat_id, message_id))
        if posted is None or at - posted.at > self.engagement.window_seconds:
            return None
        return posted

    def remembered(self, chat_id: int, message_id: int) -> Posted | None:
        """The message, if it is remembered, however old."""
        return self._messages.get((chat_id, message_id))

    def _giver(self, chat_id: int, user_id: int, day: str) -> Giver:
        key = (chat_id, user_id)
        giver = self._givers.get(key)
        if giver is None:
            giver = self._givers[key] = Giver()
            if len(self._givers) > self.engagement.tracked_messages:
                self._givers.popitem(last=False)
        else:
            self._givers.move_to_end(key)
        return giver.on(day)

    def respond(
        self, chat_id: int, message_id: int, responder: int, day: str, *, reaction: bool
    ) -> Outcome | None:
        """Count a settled response; None when it earns nothing."""
        posted = self._messages.get((chat_id, message_id))
        if posted is None or posted.author == responder:
            return None
        giver = self._giver(chat_id, responder, day)
        return respond_on(
            posted, giver, self.engagement, self.reactions, chat_id, message_id, responder,
            reaction=reaction,
        )  # fmt: skip

    def react(self, chat_id: int, message_id: int, reactor: int, at: float, added: bool) -> None:
        """A member's reaction appeared (pending until it settles) or went away."""
        posted = self.lookup(chat_id, message_id, at)
        if posted is None or posted.author == reactor:
            return
        if added:
            if reactor not in posted.reactors:
                posted.reactors.add(reactor)
                self._pending.append(
                    (at + self.reactions.settle_seconds, *(chat_id, message_id, reactor))
                )
            return
        pending = (chat_id, message_id, reactor)
        kept = deque(p for p in self._pending if p[1:] != pending)
        if len(kept) != len(self._pending):
            # Taken back before it settled: as if it never was, and it may come again.
            posted.reactors.discard(reactor)
            self._pending = kept

    def due(self, now: float) -> list[tuple[int, int, int]]:
        """(chat, message, reactor) of every pending reaction that has settled by `now`."""
        settled = []
        while self._pending and self._pending[0][0] <= now:
            _, chat_id, message_id, reactor = self._pending.popleft()
            settled.append((chat_id, message_id, reactor))
        return settled


def respond_on(
    posted: Posted,
    giver: Giver,
    engagement: EngagementSection,
    reactions: ReactionsSection,
    chat_id: int,
    message_id: int,
    responder: int,
    *,
    reaction: bool,
) -> Outcome | None:
    """Count a settled response of `responder` (whose `giver` is on today) to `posted`,
    changing both; None when it earns nothing."""
    bonus = False
    e = engagement
    if (
        e.enabled
        and not posted.engaged
        and giver.engaged < e.daily_limit
        and giver.pairs.get(posted.author, 0) < e.pair_daily_limit
    ):
        posted.engaged = bonus = True
        giver.engaged += 1
        giver.pairs[posted.author] = giver.pairs.get(posted.author, 0) + 1
    points = False
    r = reactions
    if (
        reaction
        and r.enabled
        and giver.reactions < r.daily_limit
        and giver.reaction_pairs.get(posted.author, 0) < r.pair_daily_limit
    ):
        points = True
        giver.reactions += 1
        giver.reaction_pairs[posted.author] = giver.reaction_pairs.get(posted.author, 0) + 1
    if not (bonus or points):
        return None
    return Outcome(chat_id, message_id, posted.author, responder, posted.base, bonus, points)
