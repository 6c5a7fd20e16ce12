"""The engagement book's records as short text, for a store several instances share.

A remembered message is `"author at base engaged reactors"` (reactors comma-separated, the
field empty when there are none); the Lua scripts that add and take back a reaction edit
that text in place (services/redis_keys.py), so it stays text, not bytes. `at` is written
with `repr`, which reads back as the very same float in Python and in Lua, so the window
checks on either side agree to the last bit. A member's day of giving is
`"day engaged reactions pairs reaction_pairs"`, each pair list `author:count,...` or `-`.

Pure: text in, text out, no I/O. A value that cannot be read raises `CodecError`.
"""

from __future__ import annotations

from plugins.gamification.domain.engagement import Giver, Posted
from plugins.gamification.domain.gate_codec import CodecError

# A message remembers at most this many members' reactions (pending or settled) in the
# shared store, which bounds its bytes; later reactors on it are not counted there.
MAX_REACTORS = 64


def encode_posted(posted: Posted) -> str:
    reactors = ",".join(map(str, sorted(posted.reactors)))
    return f"{posted.author} {posted.at!r} {posted.base} {int(posted.engaged)} {reactors}"


def decode_posted(text: str) -> Posted:
    parts = text.split(" ")
    if len(parts) != 5 or parts[3] not in ("0", "1"):
        raise CodecError(f"not a remembered message: {text[:40]!r}")
    try:
        reactors = {int(r) for r in parts[4].split(",")} if parts[4] else set()
        return Posted(int(parts[0]), float(parts[1]), int(parts[2]), parts[3] == "1", reactors)
    except ValueError as exc:
        raise CodecError(f"not a remembered message: {text[:40]!r}") from exc


def _pairs(pairs: dict[int, int]) -> str:
    return ",".join(f"{author}:{count}" for author, count in pairs.items()) or "-"


def _read_pairs(text: str) -> dict[int, int]:
    if text == "-":
        return {}
    out: dict[int, int] = {}
    for item in text.split(","):
        author, count = item.split(":")
        out[int(author)] = int(count)
    return out


def encode_giver(giver: Giver) -> str:
    return (
        f"{giver.day or '-'} {giver.engaged} {giver.reactions}"
        f" {_pairs(giver.pairs)} {_pairs(giver.reaction_pairs)}"
    )


def decode_giver(text: str) -> Giver:
    parts = text.split(" ")
    if len(parts) != 5:
        raise CodecError(f"not a member's day of giving: {text[:40]!r}")
    try:
        return Giver(
            "" if parts[0] == "-" else parts[0],
            int(parts[1]),
            _read_pairs(parts[3]),
            int(parts[2]),
            _read_pairs(parts[4]),
        )
    except ValueError as exc:
        raise CodecError(f"not a member's day of giving: {text[:40]!r}") from exc
