"""The chat pages on the web: where they live, whether a chat's are public, who changed it.

Nothing here runs for an ordinary group message: the scoring path never reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from plugins.gamification.domain.clock import format_utc
from plugins.gamification.engine import PointsEngine
from plugins.gamification.storage.records import AdminAction

# A chat as a Mini App start parameter (Telegram allows A-Z a-z 0-9 _ - there): "c-100123".
_CHAT_TOKEN = re.compile(r"^c(-?[0-9]{1,19})$")


def chat_token(chat_id: int) -> str:
    return f"c{chat_id}"


def parse_chat_token(token: str) -> int | None:
    """The chat id in a start parameter, or None when it is not one of ours."""
    found = _CHAT_TOKEN.match(token)
    if found is None:
        return None
    value = int(found.group(1))
    return value if -(2**63) <= value < 2**63 else None


@dataclass(frozen=True, slots=True)
class WebOptions:
    """Where the bot serves its pages, and how Telegram opens them as a Mini App.

    `public_url`: the pages' public base URL (https, no trailing slash needed); the Mini App's
    URL to give @BotFather is `<public_url>/app`. `app_short_name`: the Mini App made with
    /newapp (its link is t.me/<bot>/<name>); empty: groups' buttons lead through the private
    chat with the bot, whose `web_app` button opens the pages.
    `init_data_max_age`: seconds a Mini App's signed launch data stays valid.
    `member_cache_seconds`: how long a getChatMember answer is trusted.
    """

    public_url: str
    app_short_name: str = ""
    init_data_max_age: float = 86_400.0
    member_cache_seconds: float = 60.0

    @property
    def base(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def app_url(self) -> str:
        return f"{self.base}/app"

    def board_url(self, chat_id: int) -> str:
        return f"{self.base}/c/{chat_id}"

    def web_app_url(self, chat_id: int) -> str:
        """The Mini App's URL for a `web_app` button (private chats only) on this chat."""
        return f"{self.app_url}?chat={chat_token(chat_id)}"

    def group_link(self, bot_username: str, chat_id: int) -> str:
        """The t.me link a group's button opens: the named Mini App on this chat's pages;
        without a name, the private chat with the bot, whose /start answers with a
        `web_app` button (which needs nothing set up with @BotFather)."""
        bot = quote(bot_username)
        if self.app_short_name:
            return (
                f"https://t.me/{bot}/{quote(self.app_short_name)}?startapp={chat_token(chat_id)}"
            )
        return f"https://t.me/{bot}?start={chat_token(chat_id)}"


class WebAccess:
    """Whether a chat's pages are public: off until its admins turn it on, kept in the
    ledger's `web_access` table (shared by every instance), each change audited."""

    def __init__(self, engine: PointsEngine) -> None:
        self._engine = engine

    async def is_public(self, chat_id: int) -> bool:
        return await self._engine.store.web_public(chat_id)

    async def set_public(self, chat_id: int, public: bool, actor_id: int) -> bool:
        """Make the pages public or not; False (and nothing written) when they already were,
        so a command delivered twice leaves one audit row."""
        store = self._engine.store
        if await store.web_public(chat_id) == public:
            return False
        audit = AdminAction(
            chat_id, actor_id, "web", None, "public on" if public else "public off"
        )
        await store.set_web_public(chat_id, public, format_utc(self._engine.clock.now()), audit)
        return True
