"""A bot of dialogs with user memory on one MemoryStorage, spoken to by several users in several
conversations (DialogTestClient has one of each). By default each turn's sender is vouched for
as bot/ does for a channel that vouches (Teams by `aadObjectId`); `vouched=False` is a sender no
one vouches for (the Emulator, a Web Chat page)."""

from __future__ import annotations

from botbuilder.core import ConversationState, MemoryStorage, Storage, TurnContext, UserState
from botbuilder.core.adapters import TestAdapter
from botbuilder.dialogs import DialogExtensions
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationAccount,
)

from bot.channels.replies import ChannelReplies
from bot.channels.streaming import StreamOptions
from dialogs.chat_dialog import ChatDialog, ChatOptions
from dialogs.feedback_dialog import FeedbackDialog
from dialogs.main_dialog import MainDialog
from dialogs.memory.commands import MemoryCommands
from dialogs.memory.history import ConversationMemory
from dialogs.memory.meaning import FactMeaning
from dialogs.memory.model_facts import ModelFacts
from dialogs.memory.user_store import USER_IDENTITY_KEY, UserMemory
from models import ChatModel, GenerationParams

OPTIONS = ChatOptions("You are a test.", 2048, GenerationParams(max_new_tokens=50))
FAST_STREAM = StreamOptions(teams_interval_s=0.01, directline_interval_s=0.01)


class MemoryBot:
    """`say` runs one turn as `user` in `conversation`; returns the texts of the replies (and
    keeps every activity sent in `sent`)."""

    def __init__(
        self,
        model: ChatModel,
        *,
        memory_on: bool = True,
        options: ChatOptions = OPTIONS,
        storage: Storage | None = None,
        model_facts: bool = False,
        meaning: FactMeaning | None = None,
    ) -> None:
        self.storage = storage or MemoryStorage()
        self.conversation_state = ConversationState(self.storage)
        self.user_state = UserState(self.storage)
        memory = ConversationMemory(self.conversation_state)
        self.user_memory = UserMemory(self.storage) if memory_on else None
        extractor = ModelFacts(model) if model_facts else None
        replies = ChannelReplies(FAST_STREAM)
        chat = ChatDialog(
            model,
            memory,
            options,
            replies,
            user_memory=self.user_memory,
            model_facts=extractor,
            meaning=meaning,
        )
        self.root = MainDialog(
            chat, FeedbackDialog(self.user_state), memory, MemoryCommands(self.user_memory)
        )
        self.dialog_state = self.conversation_state.create_property("DialogState")
        self.sent: list[Activity] = []

    async def say(
        self,
        text: str,
        *,
        user: str = "u1",
        conversation: str = "c1",
        channel: str = "emulator",
        aad: str | None = None,
        conversation_type: str | None = None,
        vouched: bool = True,
    ) -> list[str]:
        template = Activity(  # (TestAdapter takes only the channel from a ConversationReference)
            channel_id=channel,
            service_url="http://127.0.0.1:9/",
            conversation=ConversationAccount(id=conversation, conversation_type=conversation_type),
            from_property=ChannelAccount(id=user, name=user, aad_object_id=aad),
            recipient=ChannelAccount(id="bot", name="bot"),
        )
        adapter = TestAdapter(template_or_conversation=template)

        identity = None
        if vouched:
            identity = f"msteams/users/aad:{aad}" if aad else f"{channel}/users/{user}"

        async def logic(turn_context: TurnContext) -> None:
            if identity is not None:
                turn_context.turn_state[USER_IDENTITY_KEY] = identity
            await DialogExtensions.run_dialog(self.root, turn_context, self.dialog_state)
            await self.conversation_state.save_changes(turn_context)
            await self.user_state.save_changes(turn_context)

        await adapter.process_activity(Activity(type="message", text=text), logic)
        self.sent.extend(adapter.activity_buffer)
        return [a.text for a in adapter.activity_buffer if a.type == "message"]
