"""Proactive messages: `botloom notify --conversation ID TEXT` (and `notify`) sends a message into
a conversation the bot has seen, from its stored conversation reference, through the same
outbound path (and retries) as replies.

A reference is stored (key ``conversation-references/<conversation id>``) the first time the bot
sees a conversation and whenever its service URL changes. To skip the storage's read on every
turn, each process remembers the references it has written for its MAX_KNOWN most recently seen
conversations (least recently seen forgotten first; a forgotten one costs one read when it comes
back). Teams delivers a proactive message
only where the bot is installed: in the user's personal scope, or in the team or group chat.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from botbuilder.core import MessageFactory, Storage, TurnContext
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import ConversationReference

from bot.channels.connector_client import RetryingCloudAdapter
from bot.settings import Settings

logger = logging.getLogger(__name__)


class UnknownConversation(LookupError):
    """No stored reference for that conversation id (the bot never saw it)."""


def reference_key(conversation_id: str) -> str:
    return f"conversation-references/{conversation_id}"


MAX_KNOWN = 10_000


class ConversationReferences:
    """Stores each conversation's reference; `remember` writes only when it is new or changed.
    `max_known`: how many conversations' written references this process remembers."""

    def __init__(self, storage: Storage, *, max_known: int = MAX_KNOWN) -> None:
        self._storage = storage
        self._max_known = max_known
        # conversation id -> service URL written, least recently seen first
        self._known: OrderedDict[str, str] = OrderedDict()

    @property
    def remembered(self) -> int:
        """How many conversations' written references this process remembers."""
        return len(self._known)

    async def remember(self, turn_context: TurnContext) -> None:
        """Store the turn's conversation reference if it is new; a failure is logged only."""
        try:
            await self._remember(turn_context)
        except Exception:
            logger.warning("could not store the conversation reference", exc_info=True)

    async def _remember(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.conversation is None or not activity.service_url:
            return
        conversation_id = activity.conversation.id
        if self._known.get(conversation_id) == activity.service_url:
            self._known.move_to_end(conversation_id)
            return
        key = reference_key(conversation_id)
        stored = (await self._storage.read([key])).get(key)
        if not stored or stored.get("reference", {}).get("serviceUrl") != activity.service_url:
            reference = TurnContext.get_conversation_reference(activity).serialize()
            await self._storage.write({key: {"reference": reference}})
        self._known[conversation_id] = activity.service_url
        self._known.move_to_end(conversation_id)
        while len(self._known) > self._max_known:
            self._known.popitem(last=False)

    async def get(self, conversation_id: str) -> ConversationReference:
        key = reference_key(conversation_id)
        stored: dict[str, Any] | None = (await self._storage.read([key])).get(key)
        if not stored:
            raise UnknownConversation(conversation_id)
        return ConversationReference().deserialize(stored["reference"])


async def notify(
    settings: Settings,
    conversation_id: str,
    text: str,
    *,
    storage: Storage,
    adapter: RetryingCloudAdapter | None = None,
) -> None:
    """Send `text` into the conversation. Raises UnknownConversation when the bot never saw it,
    and ConnectorError when the channel refuses the message (after retries)."""
    reference = await ConversationReferences(storage).get(conversation_id)
    own = adapter is None
    if adapter is None:
        adapter = RetryingCloudAdapter(
            ConfigurationBotFrameworkAuthentication(settings.bot_framework_config())
        )

    async def send(turn_context: TurnContext) -> None:
        turn_context.activity.id = None  # a new message, not a reply to the continuation event
        await turn_context.send_activity(MessageFactory.text(text))

    try:
        await adapter.continue_conversation(reference, send, settings.app_id or None)
    finally:
        if own:
            await adapter.close()
