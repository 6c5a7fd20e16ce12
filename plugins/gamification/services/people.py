"""People: who the bot has seen, for @username targets and display names that never ping."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from plugins.gamification.domain.clock import Clock, format_utc
from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.records import KnownPerson

KNOWN_USERS_CACHE = 50_000


@dataclass(frozen=True, slots=True)
class Person:
    user_id: int
    username: str | None
    full_name: str
    is_bot: bool = False


def _person(known: KnownPerson | None) -> Person | None:
    if known is None:
        return None
    return Person(known.user_id, known.username, known.full_name, known.is_bot)


class People:
    """The people directory: a bounded cache in front of the stored known users."""

    def __init__(self, store: LedgerStorage, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._people: OrderedDict[int, Person] = OrderedDict()
        # People remembered whose row could not be written (yet).
        self._unsaved: set[int] = set()
        self._usernames: dict[str, int] = {}

    def remember(self, person: Person) -> None:
        """Keep who we have seen, for @username targets and names; writes only on change."""
        known = self._people.get(person.user_id)
        if known == person and (not self._unsaved or person.user_id not in self._unsaved):
            self._people.move_to_end(person.user_id)
            return
        self._people[person.user_id] = person
        self._unsaved.discard(person.user_id)
        if person.username:
            self._usernames[person.username.casefold()] = person.user_id
        if len(self._people) > KNOWN_USERS_CACHE:
            _, dropped = self._people.popitem(last=False)
            self._unsaved.discard(dropped.user_id)
            if dropped.username:
                self._usernames.pop(dropped.username.casefold(), None)
        # Not awaited: names are a convenience, and a message must not wait for a commit
        # to be remembered. The writer logs a failure; the person's next message writes
        # the name again (a locked or full database fails these writes for a while).
        self._store.remember_person_later(
            KnownPerson(person.user_id, person.username, person.full_name, person.is_bot),
            format_utc(self._clock.now()),
            on_failure=lambda: self._unsaved.add(person.user_id),
        )

    async def person(self, user_id: int) -> Person | None:
        known = self._people.get(user_id)
        if known is not None:
            return known
        return _person(await self._store.known_person(user_id))

    async def find_username(self, username: str) -> Person | None:
        # Memory first: the person may have been seen a moment ago, before their row is
        # committed.
        user_id = self._usernames.get(username.lstrip("@").casefold())
        known = self._people.get(user_id) if user_id is not None else None
        if (
            known is not None
            and known.username
            and known.username.casefold() == (username.lstrip("@").casefold())
        ):
            return known
        return _person(await self._store.known_username(username.lstrip("@")))

    async def name_of(self, user_id: int) -> str:
        """A display name that never pings: the full name, else the id."""
        known = await self.person(user_id)
        return known.full_name if known and known.full_name else f"user {user_id}"
