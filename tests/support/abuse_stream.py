"""A scripted chat for comparing anti-abuse backends: every rule the gate has, met often.

Several people in two chats write sentences, repeat and near-repeat themselves, copy each
other's long messages, burst, answer shortly ("ok", replies), send letter soup, photos and
the same sticker again, thank each other (pairs again within the cooldown, and back), are
engaged by others, and have updates delivered twice; over a day and a half, so cooldowns,
windows and the day's cap all turn over. Seeded: the same stream every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.farming import sentence
from plugins.gamification.domain.activity import ActivityFact, ThanksFact

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CHATS = (-1001, -1002)
SOUP = "qzxv wprt kjhg fdsl mnbv xcvz"


@dataclass(frozen=True, slots=True)
class Step:
    """At `at`: a message or thanks to score (`fact`), or an engagement to count."""

    at: datetime
    fact: ActivityFact | ThanksFact | None = None
    # (chat, author, responder): one of the author's messages drew a response.
    engaged: tuple[int, int, int] | None = None


def build_stream(seed: int = 2026, steps: int = 420, people: int = 5) -> list[Step]:
    rng = random.Random(seed)
    out: list[Step] = []
    t = 0.0
    ids = dict.fromkeys(CHATS, 100)
    said: dict[tuple[int, int], list[str]] = {}
    long_texts: dict[int, list[tuple[int, str]]] = {chat: [] for chat in CHATS}
    last: dict[int, tuple[int, int, datetime]] = {}  # chat -> (author, message id, when)
    facts: list[ActivityFact] = []
    thanked: list[tuple[int, int, int, datetime]] = []

    def moment() -> datetime:
        return START + timedelta(seconds=t)

    def message(chat: int, user: int, text: str, **extra: object) -> ActivityFact:
        ids[chat] += 1
        fact = ActivityFact(
            chat_id=chat, user_id=user, message_id=ids[chat], kind=str(extra.pop("kind", "text")),
            text=text, sent_at=moment(), **extra,  # type: ignore[arg-type]
        )  # fmt: skip
        said.setdefault((chat, user), []).append(text)
        if len(text) >= 40:
            long_texts[chat].append((user, text))
        last[chat] = (user, fact.message_id, fact.sent_at)
        facts.append(fact)
        return fact

    while len(out) < steps:
        # Mostly quick turns, sometimes a pause past the cooldown, now and then hours.
        roll = rng.random()
        t += rng.choice((1, 2, 4, 8)) if roll < 0.45 else rng.uniform(20, 400)
        if roll > 0.97:
            t += rng.uniform(3, 9) * 3600
        chat, user = rng.choice(CHATS), rng.randint(1, people)
        kind = rng.random()
        if kind < 0.30:
            step = Step(moment(), message(chat, user, sentence(rng)))
        elif kind < 0.38 and said.get((chat, user)):
            again = rng.choice(said[(chat, user)])
            step = Step(
                moment(), message(chat, user, again.upper() if rng.random() < 0.5 else again)
            )
        elif kind < 0.44 and any(u != user for u, _ in long_texts[chat]):
            text = rng.choice([x for u, x in long_texts[chat] if u != user])
            step = Step(moment(), message(chat, user, text.lower()))
        elif kind < 0.52 and chat in last and last[chat][0] != user:
            author, target, _ = last[chat]
            reply = rng.choice(("ok", "yes!", "lol", "same", "+1 agreed"))
            step = Step(
                moment(),
                message(chat, user, reply, reply_to_message=target, reply_to_user=author),
            )
        elif kind < 0.56:
            step = Step(moment(), message(chat, user, rng.choice(("ok", "hm", "...", "k"))))
        elif kind < 0.60:
            burst = [
                Step(START + timedelta(seconds=t + i * 0.5), message(chat, user, sentence(rng)))
                for i in range(rng.randint(6, 11))
            ]
            t += 6
            out += burst
            continue
        elif kind < 0.63:
            step = Step(moment(), message(chat, user, SOUP))
        elif kind < 0.68:
            media = rng.choice(("photo-1", "photo-2", f"photo-{rng.randint(3, 99)}"))
            step = Step(moment(), message(chat, user, "", kind="photo", media_id=media))
        elif kind < 0.71:
            step = Step(moment(), message(chat, user, "", kind="sticker", media_id="sticker-1"))
        elif kind < 0.80 and chat in last and last[chat][0] != user:
            author, target, when = last[chat]
            if thanked and rng.random() < 0.4:  # the same pair again, or the other way
                chat, user, author, when = thanked[-1]
                if rng.random() < 0.5:
                    user, author = author, user
            ids[chat] += 1
            thanks = ThanksFact(chat, user, author, False, ids[chat], when, moment())
            thanked.append((chat, user, author, when))
            step = Step(moment(), thanks)
        elif kind < 0.88 and facts:
            earlier = rng.choice(facts[-8:])  # delivered again
            step = Step(moment(), earlier)
        elif kind < 0.95:
            responder = rng.choice([p for p in range(1, people + 1) if p != user])
            step = Step(moment(), engaged=(chat, user, responder))
        else:
            step = Step(moment(), message(chat, user, sentence(rng, 12, 20)))
        out.append(step)
    return out
