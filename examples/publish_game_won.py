"""Publish a `game.won` event to the bot over NATS JetStream, as another service would.

A game server (or any Python service) runs this when someone wins; the bot, configured
with `[events] bus = "nats"`, turns the event into points. The event id is the service's
own stable id for what happened (here: the match), so publishing the same win again, by a
retry or a second run, never gives points twice: JetStream drops the copy within its
duplicate window (the reply says `duplicate`), and past it the bot's ledger does. (A
service that retries later should send the same body: the same id with other content is
refused by the bot as a conflict, in one log line, and never counted twice either.)

    pip install nats-py
    python examples/publish_game_won.py --chat -1001234567890 --user 42 --match m-2026-11-25-7

Needs nothing from this repository, only nats-py: the event is plain JSON
(`id`, `type`, `occurred_at`, `chat_id`, `user_id`, `payload`) on the subject
`<subject_prefix>.game.won`, with the header `Nats-Msg-Id` set to the event id.
Exit code 0: stored (or a duplicate of one stored); 1: NATS refused or did not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

import nats
import nats.errors
import nats.js.errors


def event(args: argparse.Namespace) -> dict[str, object]:
    """The bot's Event shape; unknown fields are refused by the bot, so send only these."""
    return {
        "id": f"game.won:{args.match}",
        "type": "game.won",
        "occurred_at": datetime.now(UTC).isoformat(),
        "chat_id": args.chat,
        "user_id": args.user,
        "payload": {"reason": args.reason, "match": args.match},
    }


async def publish(args: argparse.Namespace) -> int:
    body = event(args)
    failures: list[Exception] = []

    async def remember(exc: Exception) -> None:
        # nats-py would log each failed attempt with a traceback; it is said once below.
        failures.append(exc)

    try:
        client = await nats.connect(
            args.url,
            connect_timeout=3,
            allow_reconnect=False,
            # nats-py never gives up with 0 attempts; 1 means two quick ones.
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            error_cb=remember,
        )
    except Exception as exc:
        cause = failures[-1] if failures else exc
        print(f"NATS at {args.url} is not reachable: {cause or type(cause).__name__}.")
        return 1
    try:
        ack = await client.jetstream().publish(
            f"{args.subject_prefix}.game.won",
            json.dumps(body).encode(),
            timeout=5,
            headers={"Nats-Msg-Id": str(body["id"])},
        )
    except nats.js.errors.NoStreamResponseError:
        print(
            f"No stream takes {args.subject_prefix}.game.won: start the bot with"
            ' [events] bus = "nats" once (it creates the stream), or check --subject-prefix.'
        )
        return 1
    except (nats.errors.Error, TimeoutError) as exc:
        print(f"NATS did not store the event: {exc or type(exc).__name__}.")
        return 1
    finally:
        await client.close()
    state = "a duplicate, dropped (already stored)" if ack.duplicate else "stored"
    print(f"event {body['id']}: {state} in stream {ack.stream} at sequence {ack.seq}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="nats://127.0.0.1:4222", help="the NATS server")
    parser.add_argument(
        "--subject-prefix", default="bot.events", help="the bot's [events] subject_prefix"
    )
    parser.add_argument("--chat", type=int, required=True, help="the Telegram chat id")
    parser.add_argument("--user", type=int, required=True, help="the winner's Telegram user id")
    parser.add_argument(
        "--match", required=True, help="your stable id of the match: the same win, the same id"
    )
    parser.add_argument("--reason", default="won a game", help="shown in /history")
    return asyncio.run(publish(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
