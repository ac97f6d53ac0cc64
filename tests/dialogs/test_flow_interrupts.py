"""Commands typed in the middle of a flow (/feedback) do what they do outside one: `/forget files`
forgets the conversation's files (not the memory's facts about files) and the flow goes on;
`/reset` forgets the conversation and ends the flow."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from botbuilder.core import TurnContext

from bot.channels.replies import ChannelReplies
from dialogs.chat_dialog import ChatDialog
from dialogs.feedback_dialog import FeedbackDialog
from dialogs.files import FORGOT_FILES, Acknowledge, FilesReceived
from dialogs.knowledge.passages import Retriever
from dialogs.main_dialog import RESET_TEXT, MainDialog
from dialogs.memory.commands import MemoryCommands
from dialogs.memory.history import ConversationMemory
from models.fake import FakeChatModel
from tests.dialogs.memory_harness import OPTIONS, MemoryBot

RATING = "How were my answers?"


class FakeFiles:
    """A conversation's files, only counted: `forget` says how many there were."""

    kinds = "text"
    limit_mb = 1.0

    def __init__(self, count: int) -> None:
        self.count = count

    def attached(self, turn_context: TurnContext) -> bool:
        return False

    async def receive(self, turn_context: TurnContext, acknowledge: Acknowledge) -> FilesReceived:
        raise AssertionError("no file is sent in these tests")

    def retriever(self, turn_context: TurnContext) -> Retriever:
        raise AssertionError("no file is searched in these tests")

    async def forget(self, turn_context: TurnContext) -> int:
        count, self.count = self.count, 0
        return count


@dataclass
class FlowBot:
    talk: MemoryBot
    files: FakeFiles
    model: FakeChatModel


@pytest.fixture
def bot() -> FlowBot:
    model = FakeChatModel()
    talk = MemoryBot(model)
    files = FakeFiles(2)
    memory = ConversationMemory(talk.conversation_state)
    talk.root = MainDialog(
        ChatDialog(model, memory, OPTIONS, ChannelReplies()),
        FeedbackDialog(talk.user_state),
        memory,
        MemoryCommands(talk.user_memory),
        files=files,
    )
    return FlowBot(talk, files, model)


async def test_forget_files_in_a_flow_forgets_the_files_and_the_flow_goes_on(
    bot: FlowBot,
) -> None:
    await bot.talk.say("/remember I keep my files on the NAS")
    assert (await bot.talk.say("/feedback"))[0].startswith(RATING)
    replies = await bot.talk.say("/forget files")
    assert replies[0] == FORGOT_FILES and bot.files.count == 0
    assert replies[1].startswith(RATING), "the flow asks again"
    assert "files on the NAS" in " ".join(await bot.talk.say("/memory"))  # the fact is kept
    assert await bot.talk.say("Great") == ["Anything you'd like to add?"]


async def test_reset_in_a_flow_forgets_the_conversation_and_ends_the_flow(bot: FlowBot) -> None:
    assert await bot.talk.say("hello") == ["fake: hello"]
    await bot.talk.say("/feedback")
    assert await bot.talk.say("/reset") == [RESET_TEXT]
    assert bot.files.count == 0
    assert await bot.talk.say("Great") == ["fake: Great"]  # the flow is over: this is chat
    assert [m.content for m in bot.model.prompts[-1]] == ["You are a test.", "Great"]
