"""The anti-abuse gate: rate, length, repeats, copies, letter soup, bursts, the engagement
record and caps, with reason codes.

Every text rule judges `text.normalise`d text (NFKC, confusable skeleton, invisible and
filler code points removed, word order ignored in short texts), never the raw string.

- Rate: a token bucket per person (`cooldown_burst` tokens, one back every
  `cooldown_seconds`): the sustained rate of the old fixed cooldown, but two or three quick
  follow-ups, as people write, all score.
- Length: fewer than `min_length` letters is padding, unless the message is an answer (a
  reply to another person, or said within `answer_seconds` of someone else's message):
  then it scores, times `short_answer_factor`.
- Repeats: like one of the person's own recent texts, or the same file (`file_unique_id`)
  again. Copies: like another person's recent message in the chat (conversation.py).
  Letter soup: no language makes sense of it (text.py).
- Monologue: with nobody else talking in the chat within `presence_seconds`, a message is
  worth `monologue_factor` of itself.
- Engagement record: a message is worth its full amount when at least `engaged_share` of
  the person's recent messages (over `engagement.history_days`) drew replies or reactions
  from other members; below that, proportionally less (the "engagement" multiplier), and
  nothing under `min_engagement_factor`. A newcomer starts at a neutral prior
  (`engagement_prior` messages, half of them engaged), so honest new members are not
  punished; a script posting hundreds of messages that nobody answers falls to nothing
  within its first dozens, however ordinary each message looks. Engaged messages still
  earn their engagement bonus when the response comes (engagement.py). The count of
  engaged messages comes from the ledger at each day's start; the count of messages sent
  is kept in memory by day (a restart forgets it: the record restarts from the prior).
- Caps: the fixed `daily_cap`, and the chat's relative cap passed in by the caller.

Per-user short-term state (recent timestamps and texts) lives in a bounded LRU map: it
never grows past `tracked_users` however many people write, and per-chat state past
`tracked_chats`. What must survive a restart (freezes, suspicions, points earned today)
lives in the database; the gate only caches it. The same judgement also runs on state
loaded from elsewhere (`judge_on` with a `GateView`): the shared backend keeps it in Redis
(services/redis_gate.py, encoded by gate_codec.py) and gives the same verdicts.
"""

from __future__ import annotations

import enum
import hashlib
from array import array
from collections import OrderedDict, deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from plugins.gamification.domain.activity import ActivityFact
from plugins.gamification.domain.config import AntiAbuseSection
from plugins.gamification.domain.conversation import Chats, ChatTrack, hashes
from plugins.gamification.domain.models import Multiplier
from plugins.gamification.domain.rules import apply_multipliers
from plugins.gamification.domain.text import comparable, content_length, is_letter_soup

TEXT_KINDS = frozenset({"text"})
# Media people share as a vocabulary: the same sticker from two people is no copy.
SHARED_MEDIA = frozenset({"sticker", "animation", "dice"})
SKETCH = 16
# Bits of the per-person filter of remembered hashes (a power of two).
FILTER_BITS = 4096
# Verdicts remembered per person, for updates delivered again (a webhook retry comes
# within minutes); an older repeat still meets the ledger's idempotency key.
VERDICTS = 16
# Distinct responders remembered per person: more never limits the record.
RESPONDERS = 64


class Refusal(enum.StrEnum):
    """Why a message or a thanks earned nothing; counted per reason for /gstats."""

    FROZEN = "frozen"
    TOO_SHORT = "too_short"
    COOLDOWN = "cooldown"
    REPEAT = "repeat"
    BURST = "burst"
    DAILY_CAP = "daily_cap"
    SELF_THANKS = "self_thanks"
    BOT_THANKS = "bot_thanks"
    THANKS_COOLDOWN = "thanks_cooldown"
    THANKS_LIMIT = "thanks_daily_limit"
    THANKS_TOO_OLD = "thanks_too_old"
    COPY = "copy"
    LETTER_SOUP = "letter_soup"
    NO_ENGAGEMENT = "no_engagement"
    CHAT_CAP = "chat_cap"
    THANKS_GIVER_INACTIVE = "thanks_giver_inactive"
    THANKS_PAIR_DECAY = "thanks_pair_decay"
    REACTION_LIMIT = "reaction_limit"
    RESPONDER_INACTIVE = "responder_inactive"


# Refusals that judge the content itself: such a message is not worth engaging with either.
CONTENT_REFUSALS = frozenset(
    {Refusal.FROZEN, Refusal.TOO_SHORT, Refusal.REPEAT, Refusal.BURST, Refusal.COPY,
     Refusal.LETTER_SOUP}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verdict:
    """Allowed with `amount` (possibly clipped to the daily cap), or refused with a reason."""

    amount: int = 0
    refusal: Refusal | None = None
    suspicious: bool = False
    redelivery: bool = False
    # What the amount is: base times these (the caller's and the gate's), rounded once.
    multipliers: tuple[Multiplier, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.refusal is None


@dataclass(slots=True)
class Track:
    """What the gate remembers about one (chat, user)."""

    seen: deque[float] = field(default_factory=deque)
    # (time, sketch packed as SKETCH signed 64-bit integers, message id), oldest first.
    # Packed, a text costs about 160 bytes instead of the 1.2 KB of a frozenset of ints:
    # with tens of thousands of people tracked, that is the gate's whole memory.
    texts: deque[tuple[float, bytes, int]] = field(default_factory=deque)
    # A bit per hash of the remembered texts (4,096 bits, a hash's bit is its low 12
    # bits): a message with too few of its hashes' bits set shares too few with every
    # remembered text to repeat any of them. Forgetting a text leaves its bits set (still
    # a correct, only looser, filter) until `stale` forgotten texts rebuild it.
    bits: bytearray = field(default_factory=lambda: bytearray(FILTER_BITS // 8))
    stale: int = 0
    # Rate tokens and when they were counted (None: a full bucket).
    tokens: float = 0.0
    counted_at: float | None = None
    # Recent verdicts by message id: a redelivered update gets the same verdict again
    # (and, if allowed, the same amount, so the ledger sees an exact repeat and ignores it)
    # instead of counting twice toward bursts, repeats and refusals.
    # (At most VERDICTS, oldest first.)
    verdicts: dict[int, Verdict] = field(default_factory=dict)
    day: str = ""
    today: int | None = None
    flagged_at: float | None = None
    # Today's messages that earned at once, and the person's messages others engaged with
    # over the last days (engagement.history_days, from the ledger at the day's start).
    # The distinct members who engaged them (at most RESPONDERS).
    responders: set[int] = field(default_factory=set)
    # Eligible messages judged, per day, over the record's window: [day, count], oldest first.
    sent: deque[list[Any]] = field(default_factory=deque)
    engaged: int = 0

    def remember(self, t: float, shape: frozenset[int], message_id: int) -> None:
        self.texts.append((t, array("q", shape).tobytes(), message_id))
        self._mark(shape)

    def forget_oldest(self) -> None:
        self.texts.popleft()
        self._forgot(1)

    def forget(self, message_id: int) -> None:
        """Drop the text of `message_id` from the repeat memory, if it is there."""
        kept = deque(entry for entry in self.texts if entry[2] != message_id)
        self._forgot(len(self.texts) - len(kept))
        self.texts = kept

    def shared_bits(self, shape: frozenset[int]) -> int:
        """How many of `shape`'s hashes have their bit set: at least as many as it shares
        with any one remembered text."""
        bits, mask = self.bits, FILTER_BITS - 1
        return sum(bits[(h & mask) >> 3] >> (h & 7) & 1 for h in shape)

    def _mark(self, shape: Iterable[int]) -> None:
        bits, mask = self.bits, FILTER_BITS - 1
        for h in shape:
            bits[(h & mask) >> 3] |= 1 << (h & 7)

    def _forgot(self, count: int) -> None:
        self.stale += count
        if self.stale >= max(len(self.texts), 8):
            self.rebuild_filter()

    def rebuild_filter(self) -> None:
        """The filter's bits from the remembered texts alone."""
        self.bits = bytearray(FILTER_BITS // 8)
        for _, packed, _ in self.texts:
            self._mark(unpack(packed))
        self.stale = 0


def unpack(packed: bytes) -> frozenset[int]:
    """A sketch as remembered (see Track.texts), back as a frozenset."""
    return frozenset(hashes(packed))


def fingerprint(text: str) -> frozenset[int]:
    """A bounded sketch of the character trigrams of `text.comparable(text)`: the SKETCH
    smallest trigram hashes (all of them for short texts).

    A fixed-size sketch keeps the repeat memory small however long the messages are, and
    still estimates the similarity of two texts well (bottom-k MinHash).
    """
    codes = list(map(ord, comparable(text)[:600]))
    if len(codes) < 3:
        return frozenset({hash(tuple(codes))})
    # Trigrams as tuples of code points: the hash of a tuple of ints is not salted per
    # process like a str's, so the same messages get the same verdicts after a restart;
    # and it is computed without a Python call per trigram.
    trigrams = set(map(hash, zip(codes, codes[1:], codes[2:], strict=False)))
    if len(trigrams) > SKETCH:
        return frozenset(sorted(trigrams)[:SKETCH])
    return frozenset(trigrams)


def media_shape(media_id: str) -> frozenset[int]:
    """A file as a one-hash sketch: the same file again is the same "text"."""
    digest = hashlib.blake2b(media_id.encode(), digest_size=8).digest()
    return frozenset({int.from_bytes(digest, "big", signed=True)})


def similarity(a: frozenset[int], b: Collection[int]) -> float:
    """Estimated Jaccard similarity of two sketches: 1.0 for the same text, ~0 if unrelated.

    `b` may be a remembered sketch as it is stored (a memoryview of its hashes, see
    `hashes`): no set is built for it.
    """
    if not a or not b:
        return 0.0
    # Sorting two sketches of at most SKETCH values is cheaper than heapq.nsmallest here.
    union = sorted(a.union(b))[:SKETCH]
    both = a.intersection(b)
    return sum(1 for h in union if h in both) / len(union)


def at_least_as_similar(a: frozenset[int], b: Collection[int], threshold: float) -> bool:
    """similarity(a, b) >= threshold (for a threshold above 0), mostly without computing it.

    The estimate counts shared hashes among the smallest of the union, so it is at most
    (shared hashes) / (size of that part of the union); most pairs of messages share too
    few to reach the threshold, and are told apart by one intersection count in C.
    """
    both = len(a.intersection(b))
    if both < threshold * min(SKETCH, len(a) + len(b) - both):
        return False
    return similarity(a, b) >= threshold


def meaningful_length(text: str) -> int:
    """Letters and digits of the normalised text, with a run of one repeated character
    counted once.

    Punctuation, spaces, emoji and invisible characters are not content: "ok...",
    "a a a", "a\u200ba", "k.k.k" and "!!!!" are padding, whatever their length.
    """
    return content_length(text)


class GateView(Protocol):
    """Where a judgement finds the chat's conversation and other people's standing: the
    gate's own memory, or state loaded for this one judgement (the shared backend)."""

    def chat(self, chat_id: int) -> ChatTrack: ...

    def in_good_standing(self, chat_id: int, user_id: int) -> bool: ...


class AntiAbuseGate:
    """Decides whether an activity message scores; all time comes in through `now`.

    The methods taking a `Track` judge and change that state wherever it lives; the others
    work on the gate's own memory (the "memory" backend), a bounded LRU of tracks.
    """

    def __init__(self, settings: AntiAbuseSection) -> None:
        self.settings = settings
        self._tracks: OrderedDict[tuple[int, int], Track] = OrderedDict()
        self.chats = Chats(settings.tracked_chats, settings.copy_memory)
        self.frozen: set[tuple[int, int]] = set()
        self._short = Multiplier("short answer", Decimal(str(settings.short_answer_factor)))
        self._alone = Multiplier("monologue", Decimal(str(settings.monologue_factor)))

    def __len__(self) -> int:
        return len(self._tracks)

    def track(self, chat_id: int, user_id: int) -> Track:
        """The person's state in memory (made when missing, the least recent dropped)."""
        key = (chat_id, user_id)
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = Track()
            if len(self._tracks) > self.settings.tracked_users:
                self._tracks.popitem(last=False)
        else:
            self._tracks.move_to_end(key)
        return track

    _track = track

    def adopt(self, chat_id: int, user_id: int, track: Track) -> None:
        """Keep `track` as the person's state in memory (the shared backend's latest copy,
        so that memory takes over warm when the shared store goes away)."""
        key = (chat_id, user_id)
        self._tracks[key] = track
        self._tracks.move_to_end(key)
        if len(self._tracks) > self.settings.tracked_users:
            self._tracks.popitem(last=False)

    # -- the GateView of the gate's own memory --------------------------------------------

    def chat(self, chat_id: int) -> ChatTrack:
        return self.chats.get(chat_id)

    def in_good_standing(self, chat_id: int, user_id: int) -> bool:
        """Whether the person's record is at the engaged share (a newcomer's prior is):
        only such people make a room "lively" (a dozen scripts posting at 4 a.m. that
        nobody answers are still an empty room)."""
        if self.settings.engaged_share <= 0:
            return True
        track = self._tracks.get((chat_id, user_id))
        return track is not None and self.standing(track)

    def standing(self, track: Track) -> bool:
        """in_good_standing of the person whose state `track` is."""
        if self.settings.engaged_share <= 0:
            return True
        sent = sum(int(count) for _, count in track.sent)
        prior = self.settings.engagement_prior
        return (self._engaged(track) + prior / 2) / (sent + prior) >= self.settings.engaged_share

    # -- the day's totals and the engagement record ---------------------------------------

    def needs_daily_total(self, fact: ActivityFact, day: str) -> bool:
        """True when the caller must load today's total from the ledger before `judge`."""
        return self.needs_total(self.track(fact.chat_id, fact.user_id), day)

    @staticmethod
    def needs_total(track: Track, day: str) -> bool:
        return track.day != day or track.today is None

    def set_daily_total(
        self,
        fact: ActivityFact,
        day: str,
        total: int,
        *,
        engaged: int = 0,
        responders: Iterable[int] = (),
    ) -> None:
        """Today's activity points so far, and the person's messages engaged lately (both
        from the ledger, so they survive restarts)."""
        track = self.track(fact.chat_id, fact.user_id)
        self.load_total(track, day, total, engaged=engaged, responders=responders)

    @staticmethod
    def load_total(
        track: Track, day: str, total: int, *, engaged: int = 0, responders: Iterable[int] = ()
    ) -> None:
        # Another message of the same user may have loaded and reserved meanwhile.
        if track.day != day or track.today is None:
            track.day, track.today = day, total
            track.engaged = engaged
            track.responders = set(responders)

    def engaged(self, chat_id: int, user_id: int, day: str, responder: int) -> None:
        """One of the person's messages drew engagement from `responder`."""
        self.engaged_on(self.track(chat_id, user_id), day, responder)

    @staticmethod
    def engaged_on(track: Track, day: str, responder: int) -> None:
        if track.day == day:
            track.engaged += 1
            if len(track.responders) < RESPONDERS:
                track.responders.add(responder)

    def _engaged(self, track: Track) -> int:
        """Engaged messages as the record counts them: at most `engaged_per_responder` per
        distinct member who engaged them, so a closed group of accounts answering each
        other cannot carry a stream of messages (people in a chat are answered by many)."""
        return min(track.engaged, self.settings.engaged_per_responder * len(track.responders))

    def add_engagement_points(self, chat_id: int, user_id: int, day: str, amount: int) -> int:
        """Count an engagement bonus toward today's total; what the caps leave of it."""
        return self.add_points_on(self.track(chat_id, user_id), day, amount)

    def add_points_on(self, track: Track, day: str, amount: int) -> int:
        if track.day != day or track.today is None:
            return amount  # not loaded today: the next message loads the ledger's total
        granted = max(0, min(amount, self.settings.daily_cap - track.today))
        track.today += granted
        return granted

    # -- judging ---------------------------------------------------------------------------

    def judge(
        self,
        fact: ActivityFact,
        amount: int,
        now: datetime,
        day: str,
        *,
        multipliers: Sequence[Multiplier] = (),
        cap: int | None = None,
    ) -> Verdict:
        """Refuse with the first reason that applies, cheapest checks first.

        `amount` is the base; the verdict's amount is base times `multipliers` and the
        gate's own factors, rounded once, clipped to what the caps leave (`cap`: the
        chat's relative cap, if any). Every message is remembered for burst, repeat and
        copy detection, scored or not, so alternating spam and padding cannot slip
        between the checks.
        """
        track = self.track(fact.chat_id, fact.user_id)
        return self.judge_on(self, track, fact, amount, now.timestamp(), day, multipliers, cap)

    def judge_on(
        self,
        view: GateView,
        track: Track,
        fact: ActivityFact,
        amount: int,
        t: float,
        day: str,
        multipliers: Sequence[Multiplier] = (),
        cap: int | None = None,
    ) -> Verdict:
        """`judge` on the person's `track` and the chat and standings `view` gives, at `t`
        (seconds since the epoch)."""
        verdicts = track.verdicts
        earlier = verdicts.get(fact.message_id)
        if earlier is not None:
            return replace(earlier, redelivery=True, suspicious=False)
        verdict = self._judge(view, track, fact, amount, t, day, multipliers, cap)
        verdicts[fact.message_id] = verdict
        if len(verdicts) > VERDICTS:
            del verdicts[next(iter(verdicts))]
        return verdict

    def _judge(
        self,
        view: GateView,
        track: Track,
        fact: ActivityFact,
        amount: int,
        t: float,
        day: str,
        multipliers: Sequence[Multiplier],
        cap: int | None,
    ) -> Verdict:
        s = self.settings
        key = (fact.chat_id, fact.user_id)
        chat = view.chat(fact.chat_id)
        while track.seen and track.seen[0] <= t - s.burst_seconds:
            track.seen.popleft()
        track.seen.append(t)
        while len(track.seen) > s.burst_messages + 1:
            track.seen.popleft()
        # Whether anyone in good standing is here: the first such person is enough.
        lively = any(
            view.in_good_standing(fact.chat_id, user)
            for user in chat.people_within(fact.user_id, t, s.presence_seconds)
        )
        answer = (
            fact.reply_to_user is not None and fact.reply_to_user != fact.user_id
        ) or chat.others_within(fact.user_id, t, s.answer_seconds) > 0
        chat.saw(t, fact.user_id)
        repeated, copied = self._remember(track, chat, fact, t, answer)

        if key in self.frozen:
            return Verdict(refusal=Refusal.FROZEN)
        if len(track.seen) > s.burst_messages:
            first = track.flagged_at is None or t - track.flagged_at > s.burst_seconds
            track.flagged_at = t
            return Verdict(refusal=Refusal.BURST, suspicious=first)
        own: list[Multiplier] = []
        if fact.kind in TEXT_KINDS:
            length = meaningful_length(fact.text)
            if length < s.min_length:
                if not answer or length == 0:
                    return Verdict(refusal=Refusal.TOO_SHORT)
                own.append(self._short)
        if repeated:
            return Verdict(refusal=Refusal.REPEAT)
        if copied:
            return Verdict(refusal=Refusal.COPY)
        if fact.text and is_letter_soup(fact.text):
            return Verdict(refusal=Refusal.LETTER_SOUP)
        if not self._take_token(track, t):
            return Verdict(refusal=Refusal.COOLDOWN)
        if track.day != day:
            track.day, track.today = day, 0
        record = self._record(track, day)
        if record is not None:
            if record.factor < s.min_engagement_factor:
                self._give_token(track)
                return Verdict(refusal=Refusal.NO_ENGAGEMENT)
            own.append(record)
        if not lively:
            own.append(self._alone)
        today = track.today or 0
        limit = s.daily_cap if cap is None else min(s.daily_cap, cap)
        remaining = limit - today
        if remaining <= 0:
            self._give_token(track)
            return Verdict(refusal=Refusal.DAILY_CAP if limit == s.daily_cap else Refusal.CHAT_CAP)
        factors = (*multipliers, *(m for m in own if m.factor != 1))
        worth = apply_multipliers(amount, factors).result
        if worth <= 0:
            self._give_token(track)
            return Verdict(refusal=Refusal.NO_ENGAGEMENT)
        # Reserve now: concurrent messages of one user are judged before either award
        # commits, and must not both pass the rate. `refund` undoes a failed award.
        granted = min(worth, remaining)
        track.today = today + granted
        return Verdict(amount=granted, multipliers=factors if granted == worth else ())

    def _remember(
        self, track: Track, chat: ChatTrack, fact: ActivityFact, t: float, answer: bool
    ) -> tuple[bool, bool]:
        """(repeats the person, copies someone else), remembering the message."""
        s = self.settings
        shapes: list[tuple[frozenset[int], bool]] = []
        length = content_length(fact.text) if fact.text else 0
        # "lol", "same", "nice" again, as answers in a conversation, are no repeats.
        exempt = answer and length < s.repeat_min_length
        if fact.text:
            shapes.append((fingerprint(fact.text), length >= s.copy_min_length))
        if fact.media_id:
            shapes.append((media_shape(fact.media_id), fact.kind not in SHARED_MEDIA))
        # (Keep in step with `copies_needed`, which says beforehand whether this runs.)
        repeated = copied = False
        for shape, copyable in shapes:
            repeated = repeated or (not exempt and self._repeats(track, shape, t))
            if copyable and not copied:
                copied = any(
                    at_least_as_similar(shape, other, s.copy_similarity)
                    for other in chat.copy_candidates(
                        shape, fact.user_id, t, s.copy_window_seconds
                    )
                )
            track.remember(t, shape, fact.message_id)
            while len(track.texts) > s.repeat_memory:
                track.forget_oldest()
            if copyable:
                chat.remember(t, fact.user_id, shape)
        return repeated, copied

    def _record(self, track: Track, day: str) -> Multiplier | None:
        """Count this message as sent; the engagement factor of the person's record."""
        s = self.settings
        if s.engaged_share <= 0:
            return None
        if not track.sent or track.sent[-1][0] != day:
            track.sent.append([day, 0])
            while len(track.sent) > s.engagement_days:
                track.sent.popleft()
        track.sent[-1][1] += 1
        # The message itself is not yet answered: it counts as sent, not as engaged.
        sent = sum(int(count) for _, count in track.sent) - 1
        prior = s.engagement_prior
        share = (self._engaged(track) + prior / 2) / (sent + prior)
        if share >= s.engaged_share:
            return None
        # Squared: a record far below the share falls off fast (a script's first dozens of
        # unanswered messages must not add up to a member's day).
        factor = Decimal((share / s.engaged_share) ** 2).quantize(Decimal("0.01"))
        return Multiplier("engagement", max(factor, Decimal("0.01")))

    def _take_token(self, track: Track, t: float) -> bool:
        s = self.settings
        if s.cooldown_seconds <= 0:
            return True
        if track.counted_at is None:
            track.tokens = float(s.cooldown_burst)
        else:
            refill = (t - track.counted_at) / s.cooldown_seconds
            track.tokens = min(float(s.cooldown_burst), track.tokens + max(refill, 0.0))
        track.counted_at = t
        if track.tokens < 1:
            return False
        track.tokens -= 1
        return True

    def _give_token(self, track: Track) -> None:
        track.tokens = min(float(self.settings.cooldown_burst), track.tokens + 1)

    def _repeats(self, track: Track, shape: frozenset[int], t: float) -> bool:
        window, threshold = self.settings.repeat_window_seconds, self.settings.repeat_similarity
        # Shared with any one text <= bits set for the shape, and the estimate against any
        # one is at most shared / min(SKETCH, len(shape)): most messages stop here.
        if track.shared_bits(shape) < threshold * min(SKETCH, len(shape)):
            return False
        return any(
            t - when <= window and at_least_as_similar(shape, hashes(earlier), threshold)
            for when, earlier, _ in track.texts
        )

    def copies_needed(self, fact: ActivityFact) -> bool:
        """Whether judging `fact` reads or adds to the chat's copy memory (as `_remember`
        decides), so that a shared backend loads that memory only when it is used."""
        if fact.media_id and fact.kind not in SHARED_MEDIA:
            return True
        return bool(fact.text) and content_length(fact.text) >= self.settings.copy_min_length

    def refund(self, fact: ActivityFact, amount: int, *, keep_cooldown: bool = False) -> None:
        """Give back a reservation whose award failed, or was a redelivery already counted."""
        self.refund_on(self.track(fact.chat_id, fact.user_id), fact, amount, keep_cooldown)

    def refund_on(
        self, track: Track, fact: ActivityFact, amount: int, keep_cooldown: bool = False
    ) -> None:
        if not keep_cooldown:
            self._give_token(track)
            # A failed award may be retried by a redelivery: judge it afresh then.
            track.verdicts.pop(fact.message_id, None)
            # Nor may its own text count as an earlier message it repeats.
            track.forget(fact.message_id)
        track.today = max((track.today or 0) - amount, 0)

    def capped(self, fact: ActivityFact, amount: int, total: int, refusal: Refusal) -> Verdict:
        """The ledger refused the award of `fact` for the day's cap (another instance, or an
        engagement bonus, earned the rest of the day first): the message ends refused, as
        the gate refuses one at the cap, and the day's total becomes the ledger's `total`."""
        track = self.track(fact.chat_id, fact.user_id)
        return self.capped_on(track, fact, amount, total, refusal)

    def capped_on(
        self, track: Track, fact: ActivityFact, amount: int, total: int, refusal: Refusal
    ) -> Verdict:
        self._give_token(track)
        # Other messages of the person may be reserved and not committed yet: they stay.
        track.today = max((track.today or 0) - amount, total)
        verdict = Verdict(refusal=refusal)
        if fact.message_id in track.verdicts:
            track.verdicts[fact.message_id] = verdict
        return verdict
