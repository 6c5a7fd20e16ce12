"""The anti-abuse gate's state as compact bytes, for a store shared by several instances.

A person's state in a chat is two values: what the rate, burst, repeat and redelivery rules
remember (`encode_recent`: hours at most) and the engagement record with the day's total
(`encode_record`: days). A chat's state is its presence (`encode_presence`) and its copy
memory (`encode_copies`). Every list has a fixed cap (the gate's own), times are 8-byte
floats and sketches 8-byte hashes, so the bytes per person and per chat are bounded; the
README gives the figures.

Entries whose window has passed at `now` are left out: no later judgement can read them
(times only move forward), so the verdicts are the ones the state in memory would give. The
repeat filter's bits are not stored: they are rebuilt from the texts, which is exact, since
the filter only ever rules out texts that cannot repeat.

Pure: bytes in, bytes out, no I/O. A value that cannot be decoded (another program's data
under the same key, a newer format) raises `CodecError`; the caller starts afresh.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from plugins.gamification.domain.anti_abuse import RESPONDERS, VERDICTS, Refusal, Track, Verdict
from plugins.gamification.domain.clock import format_utc, parse_utc
from plugins.gamification.domain.config import AntiAbuseSection
from plugins.gamification.domain.conversation import INDEXED, PRESENCE, ChatTrack
from plugins.gamification.domain.models import Multiplier

FORMAT = 1
REFUSALS = tuple(Refusal)
_CODE = {refusal: code for code, refusal in enumerate(REFUSALS, 1)}
_NONE = math.nan
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_B = struct.Struct("<B")
_H = struct.Struct("<H")
_I = struct.Struct("<I")
_Q = struct.Struct("<q")
_TEXT = struct.Struct("<dqB")  # time, message id, hashes
_VERDICT = struct.Struct("<qqBBB")  # message id, amount, refusal, flags, multipliers
_SEEN = struct.Struct("<dq")  # time, author
_ENTRY = struct.Struct("<dqB")  # time, author, hashes
_RECENT = struct.Struct("<Bddd")  # format, tokens, counted at, flagged at


class CodecError(ValueError):
    """The bytes are not gate state this version can read."""


def _hashes(packed: bytes) -> bytes:
    """Sketch hashes as stored (little-endian), from the in-memory packing (native)."""
    if sys.byteorder == "little":
        return packed
    swapped = array("q", packed)
    swapped.byteswap()
    return swapped.tobytes()


_native = _hashes  # the same swap, the other way


def _sorted(packed: bytes) -> bytes:
    return array("q", sorted(memoryview(packed).cast("q"))).tobytes()


def _maybe(value: float | None) -> float:
    return _NONE if value is None else value


def _unmaybe(value: float) -> float | None:
    return None if math.isnan(value) else value


class _Reader:
    """Reads the fields back in order; any shortfall or nonsense is a CodecError."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.at = 0

    def take(self, layout: struct.Struct) -> tuple[Any, ...]:
        try:
            values = layout.unpack_from(self.data, self.at)
        except struct.error as exc:
            raise CodecError(f"truncated gate state ({exc})") from None
        self.at += layout.size
        return values

    def one(self, layout: struct.Struct) -> int:
        (value,) = self.take(layout)
        return int(value)

    def raw(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise CodecError("truncated gate state")
        chunk = bytes(self.data[self.at : self.at + size])
        self.at += size
        return chunk

    def text(self) -> str:
        try:
            return self.raw(self.one(_H)).decode("utf-8")
        except UnicodeDecodeError:
            raise CodecError("gate state with a broken text") from None

    def end(self) -> None:
        if self.at != len(self.data):
            raise CodecError("gate state with trailing bytes")


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return _H.pack(len(data)) + data


def _day(day: str) -> bytes:
    """A day as the gate keys it: usually a ledger timestamp (8 bytes), else its text."""
    if len(day) == 27:
        try:
            moment = parse_utc(day)
        except ValueError:
            pass
        else:
            if format_utc(moment) == day:
                return b"\x01" + _Q.pack((moment - _EPOCH) // _MICROSECOND)
    return b"\x02" + _text(day)


def _read_day(reader: _Reader) -> str:
    tag = reader.one(_B)
    if tag == 1:
        try:
            return format_utc(_EPOCH + reader.one(_Q) * _MICROSECOND)
        except OverflowError:
            raise CodecError("gate state with a day out of range") from None
    if tag == 2:
        return reader.text()
    raise CodecError("gate state with an unknown day")


# -- a person's recent state --------------------------------------------------------------


def encode_recent(track: Track, settings: AntiAbuseSection, now: float) -> bytes:
    """Tokens, bursts, texts for repeats and the verdicts of redelivered messages."""
    seen = [t for t in track.seen if t > now - settings.burst_seconds]
    seen = seen[-(settings.burst_messages + 1) :]
    parts = [
        _RECENT.pack(FORMAT, track.tokens, _maybe(track.counted_at), _maybe(track.flagged_at)),
        _H.pack(len(seen)),
        struct.pack(f"<{len(seen)}d", *seen),
    ]
    texts = [e for e in track.texts if now - e[0] <= settings.repeat_window_seconds]
    texts = texts[-settings.repeat_memory :]
    parts.append(_B.pack(len(texts)))
    for when, packed, message_id in texts:
        parts.append(_TEXT.pack(when, message_id, len(packed) // 8))
        parts.append(_hashes(packed))
    verdicts = list(track.verdicts.items())[-VERDICTS:]
    parts.append(_B.pack(len(verdicts)))
    for message_id, verdict in verdicts:
        code = 0 if verdict.refusal is None else _CODE[verdict.refusal]
        flags = 1 if verdict.suspicious else 0
        parts.append(
            _VERDICT.pack(message_id, verdict.amount, code, flags, len(verdict.multipliers))
        )
        for multiplier in verdict.multipliers:
            parts.append(_text(multiplier.name))
            parts.append(_text(str(multiplier.factor)))
    return b"".join(parts)


def decode_recent(data: bytes, track: Track) -> None:
    """Fill `track`'s recent state from `encode_recent`'s bytes."""
    reader = _Reader(data)
    version, tokens, counted_at, flagged_at = reader.take(_RECENT)
    if version != FORMAT:
        raise CodecError(f"gate state of format {version}, not {FORMAT}")
    track.tokens, track.counted_at = tokens, _unmaybe(counted_at)
    track.flagged_at = _unmaybe(flagged_at)
    count = reader.one(_H)
    track.seen = deque(struct.unpack(f"<{count}d", reader.raw(8 * count)))
    texts: deque[tuple[float, bytes, int]] = deque()
    for _ in range(reader.one(_B)):
        when, message_id, hashes = reader.take(_TEXT)
        texts.append((when, _native(reader.raw(8 * hashes)), message_id))
    track.texts = texts
    track.rebuild_filter()
    verdicts: dict[int, Verdict] = {}
    for _ in range(reader.one(_B)):
        message_id, amount, code, flags, count = reader.take(_VERDICT)
        if code > len(REFUSALS):
            raise CodecError("gate state with an unknown refusal")
        multipliers = []
        for _ in range(count):
            name = reader.text()
            try:
                factor = Decimal(reader.text())
            except InvalidOperation:
                raise CodecError("gate state with a broken factor") from None
            multipliers.append(Multiplier(name, factor))
        verdicts[message_id] = Verdict(
            amount=amount,
            refusal=REFUSALS[code - 1] if code else None,
            suspicious=bool(flags & 1),
            multipliers=tuple(multipliers),
        )
    track.verdicts = verdicts
    reader.end()


# -- a person's record --------------------------------------------------------------------


def encode_record(track: Track, settings: AntiAbuseSection) -> bytes:
    """The day and its total, messages sent per day, engaged messages and their responders."""
    parts = [_B.pack(FORMAT), _day(track.day)]
    parts.append(b"\x00" if track.today is None else b"\x01" + _Q.pack(track.today))
    responders = sorted(track.responders)[:RESPONDERS]
    parts.append(_Q.pack(track.engaged))
    parts.append(_B.pack(len(responders)))
    parts.append(struct.pack(f"<{len(responders)}q", *responders))
    sent = list(track.sent)[-settings.engagement_days :]
    parts.append(_B.pack(len(sent)))
    for day, count in sent:
        parts.append(_day(day))
        parts.append(_I.pack(count))
    return b"".join(parts)


def decode_record(data: bytes, track: Track) -> None:
    reader = _Reader(data)
    if reader.one(_B) != FORMAT:
        raise CodecError("gate state of another format")
    track.day = _read_day(reader)
    track.today = reader.one(_Q) if reader.one(_B) else None
    track.engaged = reader.one(_Q)
    count = reader.one(_B)
    track.responders = set(struct.unpack(f"<{count}q", reader.raw(8 * count)))
    track.sent = deque([_read_day(reader), reader.one(_I)] for _ in range(reader.one(_B)))
    reader.end()


# -- a chat -------------------------------------------------------------------------------


def encode_presence(
    chat: ChatTrack, settings: AntiAbuseSection, now: float
) -> tuple[bytes, list[int]]:
    """Who wrote lately, within the longest window that asks (presence, answers); and those
    people, whose standing the next judgement asks about."""
    window = max(settings.presence_seconds, settings.answer_seconds)
    seen = [(t, user) for t, user in chat.seen if now - t <= window][-PRESENCE:]
    data = _B.pack(FORMAT) + _B.pack(len(seen)) + b"".join(_SEEN.pack(*s) for s in seen)
    return data, sorted({user for _, user in seen})


def decode_presence(data: bytes, chat: ChatTrack) -> None:
    reader = _Reader(data)
    if reader.one(_B) != FORMAT:
        raise CodecError("chat state of another format")
    seen: deque[tuple[float, int]] = deque()
    for _ in range(reader.one(_B)):
        when, user = reader.take(_SEEN)
        seen.append((when, user))
    chat.seen = seen
    reader.end()


def encode_copies(chat: ChatTrack, settings: AntiAbuseSection, now: float) -> bytes:
    """The sketches of the chat's copyable messages within `copy_window_seconds`."""
    entries = [e for e in chat.entries if now - e[1] <= settings.copy_window_seconds]
    entries = entries[-settings.copy_memory :]
    parts = [_B.pack(FORMAT), _Q.pack(chat.serial), _H.pack(len(entries))]
    for _, when, user, packed in entries:
        parts.append(_ENTRY.pack(when, user, len(packed) // 8))
        parts.append(_hashes(_sorted(packed)))
    return b"".join(parts)


def decode_copies(data: bytes, chat: ChatTrack) -> None:
    """Fill the chat's copy memory and rebuild its index (entries are numbered up to
    `serial` without gaps, as ChatTrack.remember numbers them)."""
    reader = _Reader(data)
    if reader.one(_B) != FORMAT:
        raise CodecError("chat state of another format")
    serial = reader.one(_Q)
    count = reader.one(_H)
    entries: deque[tuple[int, float, int, bytes]] = deque()
    index: dict[int, list[int]] = {}
    for number in range(serial - count + 1, serial + 1):
        when, user, hashes = reader.take(_ENTRY)
        packed = _native(reader.raw(8 * hashes))
        entries.append((number, when, user, packed))
        # Stored in ascending order: the first INDEXED are the smallest, as remember's.
        for h in memoryview(packed).cast("q")[:INDEXED]:
            index.setdefault(h, []).append(number)
    chat.serial, chat.entries, chat.index = serial, entries, index
    reader.end()
