"""`botloom feedback export` and `botloom notify`: operator commands on the bot's storage."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TextIO

from bot.settings import Settings
from bot.storage import StorageUnavailable, create_backend
from bot.turns.feedback_store import export_feedback
from models.api import close_resource


def parse_since(value: str | None) -> datetime | None:
    """An ISO 8601 date or date-time (naive means UTC); ValueError when it is neither."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def write_feedback(settings: Settings, since: datetime | None, out: TextIO) -> int:
    """Write every feedback entry (at or after `since`) as one JSON object a line; the count."""
    backend = create_backend(settings.storage, namespace=settings.storage_namespace, pool_size=2)
    await backend.open()
    storage = backend.storage
    count = 0
    try:
        async for entry in export_feedback(storage, since):
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            count += 1
    finally:
        await close_resource(storage)
    return count


async def run_ops_command(settings: Settings, args: argparse.Namespace) -> int:
    """Exit status 0 when done, 2 for a bad argument or an unreachable store, 1 when the channel
    refused the notification."""
    from bot.channels.connector_client import ConnectorError
    from bot.proactive import UnknownConversation, notify

    try:
        if args.command == "feedback":
            since = parse_since(args.since)
            if args.out is None:
                count = await write_feedback(settings, since, sys.stdout)
            else:
                with args.out.open("w", encoding="utf-8") as out:
                    count = await write_feedback(settings, since, out)
            print(f"botloom: {count} feedback entries", file=sys.stderr)
            return 0
        backend = create_backend(settings.storage, namespace=settings.storage_namespace)
        await backend.open()
        await notify(settings, args.conversation, args.text, storage=backend.storage)
        return 0
    except ValueError as error:
        print(f"botloom: --since: {error}", file=sys.stderr)
    except StorageUnavailable as error:
        print(f"botloom: {error}", file=sys.stderr)
    except UnknownConversation as error:
        print(f"botloom: no conversation {error} is known to this bot", file=sys.stderr)
    except ConnectorError as error:
        print(f"botloom: the channel refused the message: {error}", file=sys.stderr)
        return 1
    return 2
