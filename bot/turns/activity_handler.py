"""The activity handler: welcomes (with prompt starters), typing, Teams @mentions and group chats,
feedback (Teams' buttons, reactions), the dialogs, state saved each turn."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from botbuilder.core import (
    ActivityHandler,
    ConversationState,
    InvokeResponse,
    TurnContext,
    UserState,
)
from botbuilder.dialogs import Dialog, DialogExtensions
from botbuilder.schema import Activity, ChannelAccount, MessageReaction

from bot.proactive import ConversationReferences
from bot.turns.feedback_store import FeedbackStore
from bot.turns.prompt_starters import PromptStarter, welcome_with_starters
from bot.turns.teams_rules import addressed_to_bot, feedback_click, is_group_conversation
from bot.turns.typing_indicator import TypingIndicator

if TYPE_CHECKING:
    from bot.tools.clicks import ApprovalClicks

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
        feedback: FeedbackStore | None = None,
        starters: tuple[PromptStarter, ...] = (),
        references: ConversationReferences | None = None,
        tool_clicks: ApprovalClicks | None = None,
    ) -> None:
        self._dialog = dialog
        self._conversation_state = conversation_state
        self._user_state = user_state
        self._dialog_state = conversation_state.create_property("DialogState")
        self._answered_ids = conversation_state.create_property("AnsweredActivityIds")
        self._typing_interval = typing_interval
        self._feedback = feedback
        self._starters = starters
        self._references = references
        self._tool_clicks = tool_clicks  # presses of a tool approval card

    async def on_turn(self, turn_context: TurnContext) -> None:
        activity_id = turn_context.activity.id
        answered: list[str] = await self._answered_ids.get(turn_context, list)
        if activity_id and activity_id in answered:
            logger.info("activity %s was answered before; skipped", activity_id)
            return
        await super().on_turn(turn_context)
        if self._references is not None:
            await self._references.remember(turn_context)
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
                await turn_context.send_activity(self._welcome(turn_context.activity))

    def _welcome(self, activity: Activity) -> Activity:
        if is_group_conversation(activity):  # starters are for one-to-one chats
            return welcome_with_starters(WELCOME_TEXT, (), activity.channel_id)
        return welcome_with_starters(WELCOME_TEXT, self._starters, activity.channel_id)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if not addressed_to_bot(activity):
            return  # Teams delivers every group message with resource-specific consent
        strip_bot_mention(activity)
        if self._tool_clicks is not None and await self._tool_clicks.on_message(turn_context):
            return
        async with TypingIndicator(turn_context, self._typing_interval):
            await DialogExtensions.run_dialog(self._dialog, turn_context, self._dialog_state)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        """A click on Teams' feedback buttons is stored and answered 200 with an empty body
        (Teams shows an error for anything else); other invokes go to botbuilder's handling."""
        activity = turn_context.activity
        if self._tool_clicks is not None:
            answered = await self._tool_clicks.on_invoke(turn_context)
            if answered is not None:
                return answered
        click = feedback_click(activity)
        if click is None:
            return await super().on_invoke_activity(turn_context)
        if self._feedback is not None:
            await self._feedback.record(
                source="teams-button",
                channel=activity.channel_id,
                conversation=activity.conversation.id if activity.conversation else None,
                reply_id=activity.reply_to_id,
                reaction=click.reaction,
                text=click.text,
            )
        return InvokeResponse(status=200)

    async def on_reactions_added(
        self, message_reactions: list[MessageReaction], turn_context: TurnContext
    ) -> None:
        """A reaction on one of the bot's replies counts as feedback (Teams' like is "like"): one
        entry for each kind of reaction the activity adds, however often it lists it."""
        activity = turn_context.activity
        if self._feedback is None or not activity.reply_to_id:
            return
        for kind in dict.fromkeys(str(reaction.type or "") for reaction in message_reactions):
            await self._feedback.record(
                source="reaction",
                channel=activity.channel_id,
                conversation=activity.conversation.id if activity.conversation else None,
                reply_id=activity.reply_to_id,
                reaction=kind,
            )


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
