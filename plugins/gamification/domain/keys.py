"""Idempotency keys: one namespace per source, so no two sources can collide."""

from __future__ import annotations


def message_key(chat_id: int, message_id: int) -> str:
    """A chat message scored for activity or thanks."""
    return f"msg:{chat_id}:{message_id}"


def engagement_key(chat_id: int, message_id: int) -> str:
    """The engagement bonus of a chat message: at most one per message."""
    return f"eng:{chat_id}:{message_id}"


def reaction_key(chat_id: int, message_id: int, reactor_id: int) -> str:
    """Points one member's reaction gave a message's author: at most once per member."""
    return f"rct:{chat_id}:{message_id}:{reactor_id}"


def admin_key(chat_id: int, message_id: int) -> str:
    """An admin command, identified by the command message itself."""
    return f"adm:{chat_id}:{message_id}"


def event_key(event_id: str) -> str:
    """A bus event, identified by its event id."""
    return f"evt:{event_id}"


def thanks_key(chat_id: int, message_id: int) -> str:
    """A thanks reply; apart from msg: because the same message also scores as activity."""
    return f"thx:{chat_id}:{message_id}"


def grant_key(file_digest: str, user_id: int) -> str:
    """One row of a grant file (`python -m bot grant`): the file's digest names the
    operation, and a file holds at most one row per person."""
    return f"grt:{file_digest}:{user_id}"
