"""The gate's state as bytes: judging on state decoded afresh before every message gives the
verdicts of the state kept in memory, every value is bounded, and garbage is refused."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from benchmarks.farming import sentence
from plugins.gamification.domain import gate_codec as codec
from plugins.gamification.domain.activity import ActivityFact
from plugins.gamification.domain.anti_abuse import AntiAbuseGate, Refusal, Track, Verdict
from plugins.gamification.domain.config import AntiAbuseSection
from plugins.gamification.domain.conversation import ChatTrack
from plugins.gamification.domain.models import Multiplier

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()


class Stored:
    """A store of encoded state, as the shared backend keeps it (without Redis)."""

    def __init__(self, settings: AntiAbuseSection) -> None:
        self.settings = settings
        self.values: dict[tuple[object, ...], bytes] = {}
        self.standing: dict[tuple[int, int], bool] = {}

    def load(self, chat_id: int, user_id: int) -> tuple[Track, ChatTrack]:
        track, chat = Track(), ChatTrack(self.settings.copy_memory)
        if (data := self.values.get(("recent", chat_id, user_id))) is not None:
            codec.decode_recent(data, track)
        if (data := self.values.get(("record", chat_id, user_id))) is not None:
            codec.decode_record(data, track)
        if (data := self.values.get(("presence", chat_id))) is not None:
            codec.decode_presence(data, chat)
        if (data := self.values.get(("copies", chat_id))) is not None:
            codec.decode_copies(data, chat)
        return track, chat

    def save(
        self, gate: AntiAbuseGate, chat_id: int, user_id: int, track: Track, chat: ChatTrack,
        t: float,
    ) -> None:  # fmt: skip
        s = self.settings
        self.values[("recent", chat_id, user_id)] = codec.encode_recent(track, s, t)
        self.values[("record", chat_id, user_id)] = codec.encode_record(track, s)
        self.values[("presence", chat_id)] = codec.encode_presence(chat, s, t)[0]
        self.values[("copies", chat_id)] = codec.encode_copies(chat, s, t)
        self.standing[(chat_id, user_id)] = gate.standing(track)


class View:
    def __init__(self, chat: ChatTrack, stored: Stored, chat_id: int) -> None:
        self._chat, self._stored, self._chat_id = chat, stored, chat_id

    def chat(self, chat_id: int) -> ChatTrack:
        return self._chat

    def in_good_standing(self, chat_id: int, user_id: int) -> bool:
        return self._stored.standing.get((chat_id, user_id), False)


@pytest.mark.parametrize("seed", [1])
def test_state_decoded_before_each_message_judges_as_state_kept_in_memory(seed: int) -> None:
    settings = AntiAbuseSection(daily_cap=200, engaged_share=0.1)
    memory, shared = AntiAbuseGate(settings), AntiAbuseGate(settings)
    stored = Stored(settings)
    rng = random.Random(seed)
    texts = [sentence(rng) for _ in range(30)]
    ids = itertools.count(1)
    t, verdicts = T0, Counter()
    for _ in range(1000):
        t += rng.choice((0.5, 1, 2, 5, 30, 400, 4000))
        chat_id, user = rng.choice((-1, -2)), 1 if rng.random() < 0.4 else rng.randint(2, 6)
        text = rng.choice(texts) if rng.random() < 0.4 else sentence(rng)
        text = "ok" if rng.random() < 0.1 else text
        message_id = next(ids)
        if rng.random() < 0.05:
            message_id -= rng.randint(1, 3)  # delivered again
        moment = datetime.fromtimestamp(t, UTC)
        fact = ActivityFact(
            chat_id, user, message_id, "text", text, moment,
            reply_to_user=rng.choice((None, None, rng.randint(1, 6))),
        )  # fmt: skip
        day = moment.strftime("%Y-%m-%dT00:00:00.000000Z")
        if memory.needs_daily_total(fact, day):
            memory.set_daily_total(fact, day, 0)
        expected = memory.judge(fact, 20, moment, day)
        track, chat = stored.load(chat_id, user)
        if shared.needs_total(track, day):
            shared.load_total(track, day, 0)
        got = shared.judge_on(View(chat, stored, chat_id), track, fact, 20, t, day)
        assert got == expected
        verdicts[got.refusal] += 1
        if rng.random() < 0.3:
            memory.engaged(chat_id, user, day, 100 + user)
            shared.engaged_on(track, day, 100 + user)
        stored.save(shared, chat_id, user, track, chat, t)
    assert len(verdicts) >= 7, verdicts  # allowed, and six reasons or more


def test_every_field_comes_back() -> None:
    settings = AntiAbuseSection()
    track = Track(tokens=1.25, counted_at=T0, day="2026-11-25T00:00:00.000000Z", today=35)
    track.seen.extend([T0 - 1, T0])
    track.remember(T0, frozenset({1, -2, 2**62}), 7)
    track.flagged_at = T0 - 3
    factors = (Multiplier("weekend", Decimal("1.50")), Multiplier("short", Decimal("0.5")))
    track.verdicts[7] = Verdict(amount=12, multipliers=factors)
    track.verdicts[8] = Verdict(refusal=Refusal.BURST, suspicious=True)
    track.responders, track.engaged = {4, 5}, 3
    track.sent.extend([["2026-11-24T00:00:00.000000Z", 4], ["a day of a test", 2]])
    back = Track()
    codec.decode_recent(codec.encode_recent(track, settings, T0), back)
    codec.decode_record(codec.encode_record(track, settings), back)
    for name in ("tokens", "counted_at", "day", "today", "seen", "texts", "flagged_at",
                 "verdicts", "responders", "engaged", "sent", "bits"):  # fmt: skip
        assert getattr(back, name) == getattr(track, name), name


def test_lists_are_capped_and_old_entries_left_out() -> None:
    settings = AntiAbuseSection(repeat_memory=5, burst_messages=3)
    track = Track()
    for n in range(40):
        track.remember(T0 + n, frozenset(range(n, n + 16)), n)
        track.verdicts[n] = Verdict(amount=n)
        track.seen.append(T0 + n)
    data = codec.encode_recent(track, settings, T0 + 40)
    back = Track()
    codec.decode_recent(data, back)
    assert [m for _, _, m in back.texts] == [35, 36, 37, 38, 39]
    assert len(back.verdicts) == 16
    assert list(back.seen) == [T0 + 36, T0 + 37, T0 + 38, T0 + 39]
    # An hour later the burst window and (with a 10-minute window) the texts are past.
    later = AntiAbuseSection(repeat_memory=5, burst_messages=3, repeat_window_seconds=600)
    codec.decode_recent(codec.encode_recent(track, later, T0 + 3600), back)
    assert (list(back.texts), list(back.seen)) == ([], [])


@pytest.mark.parametrize(
    "data", [b"", b"\x02", b"\x01\x05", b"\x01" + b"\xff" * 40, b"garbage that is no state"]
)
def test_garbage_is_a_codec_error(data: bytes) -> None:
    for decode in (codec.decode_recent, codec.decode_record):
        with pytest.raises(codec.CodecError):
            decode(data, Track())
    for decode_chat in (codec.decode_presence, codec.decode_copies):
        with pytest.raises(codec.CodecError):
            decode_chat(data, ChatTrack(10))
