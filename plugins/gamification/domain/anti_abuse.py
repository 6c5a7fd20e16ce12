"""The anti-abuse gate: cooldowns, length, repeats, bursts and daily caps, with reason codes.

Per-user short-term state (recent timestamps and texts) lives in a bounded LRU map: it
never grows past `tracked_users` however many people write. What must survive a restart
(freezes, suspicions, points earned today) lives in the database; the gate only caches it.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from array import array
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from plugins.gamification.domain.activity import ActivityFact
from plugins.gamification.domain.config import AntiAbuseSection

TEXT_KINDS = frozenset({"text"})
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
SKETCH = 16
# Bits of the per-person filter of remembered hashes (a power of two).
FILTER_BITS = 4096
# Verdicts remembered per person, for updates delivered again (a webhook retry comes
# within minutes); an older repeat still meets the ledger's idempotency key.
VERDICTS = 16


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


@dataclass(frozen=True, slots=True)
class Verdict:
    """Allowed with `amount` (possibly clipped to the daily cap), or refused with a reason."""

    amount: int = 0
    refusal: Refusal | None = None
    suspicious: bool = False
    redelivery: bool = False

    @property
    def allowed(self) -> bool:
        return self.refusal is None


@dataclass(slots=True)
class _Track:
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
    last_scored: float | None = None
    # Recent verdicts by message id: a redelivered update gets the same verdict again
    # (and, if allowed, the same amount, so the ledger sees an exact repeat and ignores it)
    # instead of counting twice toward bursts, repeats and refusals.
    # (At most VERDICTS, oldest first.)
    verdicts: dict[int, Verdict] = field(default_factory=dict)
    day: str = ""
    today: int | None = None
    flagged_at: float | None = None

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
            self.bits = bytearray(FILTER_BITS // 8)
            for _, packed, _ in self.texts:
                self._mark(unpack(packed))
            self.stale = 0


def unpack(packed: bytes) -> frozenset[int]:
    """A sketch as remembered (see _Track.texts), back as a frozenset."""
    return frozenset(memoryview(packed).cast("q"))


def fingerprint(text: str) -> frozenset[int]:
    """A bounded sketch of the text's character trigrams (case, accents, punctuation and
    spacing removed): the SKETCH smallest trigram hashes (all of them for short texts).

    A fixed-size sketch keeps the repeat memory small however long the messages are, and
    still estimates the similarity of two texts well (bottom-k MinHash).
    """
    text = text[:2000]
    if text.isascii():
        # Nothing to decompose: skip the Unicode normalisation, the costly part.
        plain = _NOT_WORD.sub("", text.lower())[:600]
    else:
        folded = unicodedata.normalize("NFKD", text.casefold())
        plain = _NOT_WORD.sub("", "".join(ch for ch in folded if not unicodedata.combining(ch)))
        plain = plain[:600]
    codes = list(map(ord, plain))
    if len(codes) < 3:
        return frozenset({hash(tuple(codes))})
    # Trigrams as tuples of code points: the hash of a tuple of ints is not salted per
    # process like a str's, so the same messages get the same verdicts after a restart;
    # and it is computed without a Python call per trigram.
    hashes = set(map(hash, zip(codes, codes[1:], codes[2:], strict=False)))
    if len(hashes) > SKETCH:
        return frozenset(sorted(hashes)[:SKETCH])
    return frozenset(hashes)


def similarity(a: frozenset[int], b: frozenset[int]) -> float:
    """Estimated Jaccard similarity of two sketches: 1.0 for the same text, ~0 if unrelated."""
    if not a or not b:
        return 0.0
    # Sorting two sketches of at most SKETCH values is cheaper than heapq.nsmallest here.
    union = sorted(a | b)[:SKETCH]
    both = a & b
    return sum(1 for h in union if h in both) / len(union)


def at_least_as_similar(a: frozenset[int], b: frozenset[int], threshold: float) -> bool:
    """similarity(a, b) >= threshold (for a threshold above 0), mostly without computing it.

    The estimate counts shared hashes among the smallest of the union, so it is at most
    (shared hashes) / (size of that part of the union); most pairs of messages share too
    few to reach the threshold, and are told apart by two set operations.
    """
    both = a & b
    if len(both) < threshold * min(SKETCH, len(a) + len(b) - len(both)):
        return False
    return similarity(a, b) >= threshold


def meaningful_length(text: str) -> int:
    """Letters and digits, with a run of one repeated character counted once.

    Punctuation, spaces, emoji and invisible characters are not content: "ok...",
    "a a a", "a\u200ba", "k.k.k" and "!!!!" are padding, whatever their length.
    """
    length, previous = 0, ""
    for ch in text:
        if not ch.isalnum():
            continue
        if ch != previous:
            length += 1
            previous = ch
    return length


class AntiAbuseGate:
    """Decides whether an activity message scores; all time comes in through `now`."""

    def __init__(self, settings: AntiAbuseSection) -> None:
        self.settings = settings
        self._tracks: OrderedDict[tuple[int, int], _Track] = OrderedDict()
        self.frozen: set[tuple[int, int]] = set()

    def __len__(self) -> int:
        return len(self._tracks)

    def _track(self, chat_id: int, user_id: int) -> _Track:
        key = (chat_id, user_id)
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track()
            if len(self._tracks) > self.settings.tracked_users:
                self._tracks.popitem(last=False)
        else:
            self._tracks.move_to_end(key)
        return track

    def needs_daily_total(self, fact: ActivityFact, day: str) -> bool:
        """True when the caller must load today's total from the ledger before `judge`."""
        track = self._track(fact.chat_id, fact.user_id)
        return track.day != day or track.today is None

    def set_daily_total(self, fact: ActivityFact, day: str, total: int) -> None:
        track = self._track(fact.chat_id, fact.user_id)
        # Another message of the same user may have loaded and reserved meanwhile.
        if track.day != day or track.today is None:
            track.day, track.today = day, total

    def judge(self, fact: ActivityFact, amount: int, now: datetime, day: str) -> Verdict:
        """Refuse with the first reason that applies, cheapest checks first.

        Every message is remembered for burst and repeat detection, scored or not, so
        alternating spam and padding cannot slip between the checks.
        """
        track = self._track(fact.chat_id, fact.user_id)
        verdicts = track.verdicts
        earlier = verdicts.get(fact.message_id)
        if earlier is not None:
            return replace(earlier, redelivery=True, suspicious=False)
        verdict = self._judge(track, fact, amount, now.timestamp(), day)
        verdicts[fact.message_id] = verdict
        if len(verdicts) > VERDICTS:
            del verdicts[next(iter(verdicts))]
        return verdict

    def _judge(
        self, track: _Track, fact: ActivityFact, amount: int, t: float, day: str
    ) -> Verdict:
        s = self.settings
        key = (fact.chat_id, fact.user_id)
        while track.seen and track.seen[0] <= t - s.burst_seconds:
            track.seen.popleft()
        track.seen.append(t)
        while len(track.seen) > s.burst_messages + 1:
            track.seen.popleft()
        shape = fingerprint(fact.text) if fact.kind in TEXT_KINDS else None
        repeated = shape is not None and self._repeats(track, shape, t)
        if shape is not None:
            track.remember(t, shape, fact.message_id)
            while len(track.texts) > s.repeat_memory:
                track.forget_oldest()

        if key in self.frozen:
            return Verdict(refusal=Refusal.FROZEN)
        if len(track.seen) > s.burst_messages:
            first = track.flagged_at is None or t - track.flagged_at > s.burst_seconds
            track.flagged_at = t
            return Verdict(refusal=Refusal.BURST, suspicious=first)
        if fact.kind in TEXT_KINDS and meaningful_length(fact.text) < s.min_length:
            return Verdict(refusal=Refusal.TOO_SHORT)
        if repeated:
            return Verdict(refusal=Refusal.REPEAT)
        if track.last_scored is not None and t - track.last_scored < s.cooldown_seconds:
            return Verdict(refusal=Refusal.COOLDOWN)
        if track.day != day:
            track.day, track.today = day, 0
        today = track.today or 0
        remaining = s.daily_cap - today
        if remaining <= 0:
            return Verdict(refusal=Refusal.DAILY_CAP)
        # Reserve now: concurrent messages of one user are judged before either award
        # commits, and must not both pass the cooldown. `refund` undoes a failed award.
        granted = min(amount, remaining)
        track.last_scored, track.today = t, today + granted
        return Verdict(amount=granted)

    def _repeats(self, track: _Track, shape: frozenset[int], t: float) -> bool:
        window, threshold = self.settings.repeat_window_seconds, self.settings.repeat_similarity
        # Shared with any one text <= bits set for the shape, and the estimate against any
        # one is at most shared / min(SKETCH, len(shape)): most messages stop here.
        if track.shared_bits(shape) < threshold * min(SKETCH, len(shape)):
            return False
        return any(
            t - when <= window and at_least_as_similar(shape, unpack(earlier), threshold)
            for when, earlier, _ in track.texts
        )

    def refund(self, fact: ActivityFact, amount: int, *, keep_cooldown: bool = False) -> None:
        """Give back a reservation whose award failed, or was a redelivery already counted."""
        track = self._track(fact.chat_id, fact.user_id)
        if not keep_cooldown:
            track.last_scored = None
            # A failed award may be retried by a redelivery: judge it afresh then.
            track.verdicts.pop(fact.message_id, None)
            # Nor may its own text count as an earlier message it repeats.
            track.forget(fact.message_id)
        track.today = max((track.today or 0) - amount, 0)
