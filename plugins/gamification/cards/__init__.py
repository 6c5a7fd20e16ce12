"""Rank cards: a picture of a person's standing in a chat, drawn with Pillow from bundled
fonts. Pure drawing: no Telegram, no ledger; the Telegram layer hands in CardData."""

from plugins.gamification.cards.cache import CardCache
from plugins.gamification.cards.card import (
    CardData,
    CardLabels,
    CardLayout,
    RenderedCard,
    layout,
    render_card,
)

__all__ = [
    "CardCache",
    "CardData",
    "CardLabels",
    "CardLayout",
    "RenderedCard",
    "layout",
    "render_card",
]
