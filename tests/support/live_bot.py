"""Helpers for driving `python -m bot run` against a local Bot API server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks.farming import WORDS

__all__ = ["WORDS", "message", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:TEST-token-that-must-never-be-logged"
CHAT = {"id": -100777, "type": "supergroup", "title": "Local"}
ALICE = {"id": 501, "is_bot": False, "first_name": "Alice", "username": "alice"}
MOD = {"id": 502, "is_bot": False, "first_name": "Mod"}


def message(
    message_id: int, user: dict[str, Any], text: str, chat: dict[str, Any] = CHAT
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": chat,
        "from": user,
        "text": text,
    }
    if text.startswith("/"):
        body["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return body


async def wait_for(condition: Any, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
