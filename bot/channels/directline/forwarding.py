"""The local Direct Line forwards user activities to the bot as a channel would: POSTed to this
app's own /api/messages on loopback, one at a time per conversation, after a conversationUpdate
for a user the bot has not met yet. When the server chose the conversation's user (and bound it
into the token), the POST carries the process's secret (bot/security/local_secret.py), so the bot
may trust that user id; a failed delivery becomes a note in the conversation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from bot.channels.directline.store import BOT_ACCOUNT, Activity, Conversation
from bot.security.local_secret import LOCAL_CHANNEL_HEADER, LocalSecret

logger = logging.getLogger(__name__)

CHANNEL_ID = "directline"
FORWARD_TIMEOUT_S = 30.0


class BotForwarder:
    """Background deliveries to the bot's endpoint `messages_path`; `stop` and `close` at the
    end."""

    def __init__(self, messages_path: str, secret: LocalSecret) -> None:
        self._messages_path = messages_path
        self._secret = secret
        self._session: aiohttp.ClientSession | None = None
        self._forwards: set[asyncio.Task[None]] = set()

    def forward(
        self,
        conversation: Conversation,
        user: dict[str, Any],
        service_url: str,
        activity: Activity | None,
    ) -> None:
        """Deliver `activity` (None: only the user's arrival) in the background."""
        task = asyncio.create_task(self._deliver(conversation, user, service_url, activity))
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)

    async def stop(self) -> None:
        """Cancel the deliveries under way."""
        for task in list(self._forwards):
            task.cancel()
        if self._forwards:
            await asyncio.wait(self._forwards)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(
        self,
        conversation: Conversation,
        user: dict[str, Any],
        service_url: str,
        activity: Activity | None,
    ) -> None:
        """POST the activity to the bot, after telling it about a user it has not met yet."""
        async with conversation.turn_order:
            if user["id"] not in conversation.users:
                conversation.users.add(user["id"])
                joined = {
                    "type": "conversationUpdate",
                    "id": f"{conversation.id}|join-{len(conversation.users)}",
                    "channelId": CHANNEL_ID,
                    "serviceUrl": service_url,
                    "conversation": {"id": conversation.id},
                    "from": user,
                    "recipient": dict(BOT_ACCOUNT),
                    "membersAdded": [user],
                }
                await self._post_to_bot(conversation, joined)
            if activity is not None:
                await self._post_to_bot(conversation, activity)

    async def _post_to_bot(self, conversation: Conversation, activity: Activity) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = activity["serviceUrl"] + self._messages_path
        headers = {LOCAL_CHANNEL_HEADER: self._secret.token} if conversation.vouched else {}
        problem = None
        try:
            async with self._session.post(
                url,
                json=activity,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S),
            ) as response:
                if response.status >= 300:
                    problem = f"HTTP {response.status}: {(await response.text())[:200]}"
        except (aiohttp.ClientError, TimeoutError) as error:
            problem = type(error).__name__
        if problem is not None:
            logger.warning(
                "local Direct Line could not deliver conversation=%s: %s", conversation.id, problem
            )
            note = {
                "type": "message",
                "from": dict(BOT_ACCOUNT),
                "text": f"(botloom could not take that message: {problem})",
            }
            conversation.add(note)
