"""Talk to a running bot the way the Bot Framework Emulator does, and print what comes back.

    python -m tests.emulator_smoke [http://127.0.0.1:3978] [message ...]

No auth header, channelId "emulator", and its own connector on loopback as serviceUrl. Without
messages it runs the default script: join, "hello", /help, /reset and the /feedback flow.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp

from tests.activities import conversation_update, message
from tests.connector import FakeConnector

DEFAULT_SCRIPT = ["hello", "/help", "/reset", "/feedback", "Great", "Quick and friendly", "yes"]


async def main(bot_url: str, script: list[str]) -> int:
    connector = FakeConnector()
    await connector.start()
    conversation = f"smoke-{int(time.time())}"
    endpoint = f"{bot_url.rstrip('/')}/api/messages"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                endpoint,
                json=conversation_update(
                    ["user-1"], service_url=connector.url, conversation=conversation
                ),
            ) as response:
                print(f"conversationUpdate -> HTTP {response.status}")
            welcome = await connector.wait_for_messages(1, conversation, timeout=30)
            print(f"  bot: {welcome[-1]['text']}")
            for text in script:
                seen = len(connector.activities)
                count = len(connector.messages(conversation))
                started = time.perf_counter()
                async with session.post(
                    endpoint,
                    json=message(text, service_url=connector.url, conversation=conversation),
                ) as response:
                    print(f"user: {text!r} -> HTTP {response.status}")
                replies = await connector.wait_for_messages(count + 1, conversation, timeout=120)
                elapsed = time.perf_counter() - started
                kinds = [a["type"] for a in connector.activities[seen:] if a["type"] != "trace"]
                print(f"  activities: {' -> '.join(kinds)}")
                print(f"  bot ({elapsed:.2f} s): {replies[-1]['text']}")
    finally:
        await connector.close()
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    url = args.pop(0) if args and args[0].startswith("http") else "http://127.0.0.1:3978"
    sys.exit(asyncio.run(main(url, args or DEFAULT_SCRIPT)))
