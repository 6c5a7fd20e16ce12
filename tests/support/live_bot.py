"""Helpers for driving `python -m bot run` against a local Bot API server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:TEST-token-that-must-never-be-logged"
CHAT = {"id": -100777, "type": "supergroup", "title": "Local"}
ALICE = {"id": 501, "is_bot": False, "first_name": "Alice", "username": "alice"}
MOD = {"id": 502, "is_bot": False, "first_name": "Mod"}

# Common English words: each person's sentence of its own draws from them (one template
# from many people would be copying).
WORDS_TEXT = """
time year people way day man thing woman life child world school state family student
group country problem hand part place case week company system program question work
number night point home water room mother area money story fact month lot right study
book eye job word business issue side kind head house service friend father power hour
game line end member law car city community name president team minute idea kid body
information back parent face others level office door health person art war history
party result change morning reason research girl guy moment air teacher force
education foot boy age policy music market sense nation plan college interest death
experience effect class control care field development role effort rate heart drug
show leader light voice wife police mind price report decision son view relationship
town road arm difference value building action model season society tax director
position player record paper space ground form event official matter center couple
site project
"""
WORDS = tuple(WORDS_TEXT.split())


def message(message_id: int, user: dict[str, Any], text: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": CHAT,
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
