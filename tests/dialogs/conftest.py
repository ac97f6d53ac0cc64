from __future__ import annotations

from dataclasses import dataclass

import pytest
from botbuilder.core import AutoSaveStateMiddleware, ConversationState, MemoryStorage, UserState
from botbuilder.testing import DialogTestClient

from bot.channels.replies import ChannelReplies
from dialogs.chat_dialog import ChatDialog, ChatOptions
from dialogs.feedback_dialog import FeedbackDialog
from dialogs.knowledge.cited import CitedPassages
from dialogs.knowledge.meaning import MeaningRanker
from dialogs.knowledge.passages import Retriever
from dialogs.main_dialog import MainDialog
from dialogs.memory.history import ConversationMemory
from models import GenerationParams
from models.fake import FakeChatModel


@dataclass
class DialogHarness:
    client: DialogTestClient
    model: FakeChatModel
    storage: MemoryStorage
    user_state: UserState
    memory: ConversationMemory

    async def say(self, text: str | None, **fields: object) -> list[str]:
        """Send a message; return the texts of every reply it produced."""
        from botbuilder.schema import Activity, ActivityTypes

        activity = Activity(type=ActivityTypes.message, text=text, **fields)
        first = await self.client.send_activity(activity)
        replies = [first] if first is not None else []
        while (reply := self.client.get_next_reply()) is not None:
            replies.append(reply)
        return [r.text for r in replies if r.type == "message"]

    async def stored_history(self) -> list[dict[str, str]]:
        key = next(k for k in self.storage.memory if "/conversations/" in k)
        return (await self.storage.read([key]))[key]["history"]


def make_harness(
    model: FakeChatModel,
    options: ChatOptions | None = None,
    retriever: Retriever | None = None,
    ranker: MeaningRanker | None = None,
) -> DialogHarness:
    """With a `ranker`, passages are reranked by meaning and the cited ones kept for the next
    turn, as the app wires it."""
    storage = MemoryStorage()
    conversation_state = ConversationState(storage)
    user_state = UserState(storage)
    memory = ConversationMemory(conversation_state)
    options = options or ChatOptions("You are a test.", 2048, GenerationParams(max_new_tokens=50))
    cited = CitedPassages(conversation_state) if ranker else None
    chat = ChatDialog(
        model, memory, options, ChannelReplies(), retriever=retriever, ranker=ranker, cited=cited
    )
    root = MainDialog(chat, FeedbackDialog(user_state), memory)
    client = DialogTestClient(
        "emulator",
        root,
        conversation_state=conversation_state,
        middlewares=[AutoSaveStateMiddleware([user_state])],
    )
    return DialogHarness(client, model, storage, user_state, memory)


@pytest.fixture
def harness() -> DialogHarness:
    return make_harness(FakeChatModel())
