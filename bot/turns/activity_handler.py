"""The activity handler: welcomes, typing, Teams @mentions, the dialogs, state saved each turn."""

from __future__ import annotations

import logging

from botbuilder.core import ActivityHandler, ConversationState, TurnContext, UserState
from botbuilder.dialogs import Dialog, DialogExtensions
from botbuilder.schema import Activity, ChannelAccount

from bot.turns.typing_indicator import TypingIndicator

logger = logging.getLogger(__name__)

# Activity ids of a conversation's latest turns, saved with its state: a turn run again (its
# replica died after saving, before removing it from the inbox; a channel's late retry) is
# recognised and skipped.
ANSWERED_IDS = 32

WELCOME_TEXT = (
    "Hi, I'm botloom, an assistant running on a self-hosted language model. "
    "Ask me anything, or type /help to see what else I can do."
)


class AssistantBot(ActivityHandler):
    """Routes messages to the root dialog; other activity types it does not handle are ignored."""

    def __init__(
        self,
        dialog: Dialog,
        conversation_state: ConversationState,
        user_state: UserState,
        *,
        typing_interval: float = 3.0,
    ) -> None:
        self._dialog = dialog
        self._conversation_state = conversation_state
        self._user_state = user_state
        self._dialog_state = conversation_state.create_property("DialogState")
        self._answered_ids = conversation_state.create_property("AnsweredActivityIds")
        self._typing_interval = typing_interval

    async def on_turn(self, turn_context: TurnContext) -> None:
        activity_id = turn_context.activity.id
        answered: list[str] = await self._answered_ids.get(turn_context, list)
        if activity_id and activity_id in answered:
            logger.info("activity %s was answered before; skipped", activity_id)
            return
        await super().on_turn(turn_context)
        if activity_id:
            await self._answered_ids.set(turn_context, [*answered, activity_id][-ANSWERED_IDS:])
        await self._conversation_state.save_changes(turn_context)
        await self._user_state.save_changes(turn_context)

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        for member in members_added:
            if member.id != bot_id:
                await turn_context.send_activity(WELCOME_TEXT)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        strip_bot_mention(turn_context.activity)
        async with TypingIndicator(turn_context, self._typing_interval):
            await DialogExtensions.run_dialog(self._dialog, turn_context, self._dialog_state)


def strip_bot_mention(activity: Activity) -> None:
    """Remove the bot's own @mention (Teams group chats send "<at>bot</at> question").

    Tolerates malformed mention entities and messages without text.
    """
    if not activity.text or not activity.entities or activity.recipient is None:
        return
    text = activity.text
    for entity in activity.entities:
        if (entity.type or "").lower() != "mention":
            continue
        props = entity.additional_properties or {}
        mentioned = props.get("mentioned") or {}
        if isinstance(mentioned, dict) and mentioned.get("id") == activity.recipient.id:
            mention_text = props.get("text") or ""
            if isinstance(mention_text, str) and mention_text:
                text = text.replace(mention_text, "")
    if text != activity.text:
        activity.text = text.strip()
