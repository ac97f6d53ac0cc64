"""A typed yes/no answers a tool's approval only right after the bot asked it: not after another
exchange, a command or /reset (which rejects the approval); the same for a call's missing
arguments. Through the root dialog, with the test MCP server and a fake model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from botbuilder.core import ConversationState, MemoryStorage, UserState
from botbuilder.schema import Activity, ActivityTypes
from botbuilder.testing import DialogTestClient

from bot.channels.replies import ChannelReplies
from bot.tools.runner import McpToolRunner
from dialogs.answer.tool_stage import ToolStage
from dialogs.chat_dialog import ChatDialog, ChatOptions
from dialogs.feedback_dialog import FeedbackDialog
from dialogs.main_dialog import RESET_TEXT, MainDialog
from dialogs.memory.history import ConversationMemory
from models import GenerationParams
from models.fake import FakeChatModel
from tests.tools.support import lines, make_runner, stdio_config
from tests.tools.test_servers import wait_up
from tests.tools.test_tool_chat import NamedRouter

QUESTION = "I'll run note once you approve it (see above)."


@dataclass
class ToolBot:
    client: DialogTestClient
    runner: McpToolRunner
    router: NamedRouter
    notes: Path
    audit: Path

    async def say(self, text: str) -> list[str]:
        """The texts the bot answered `text` with."""
        activity = Activity(type=ActivityTypes.message, text=text)
        first = await self.client.send_activity(activity)
        replies = [first] if first is not None else []
        while (reply := self.client.get_next_reply()) is not None:
            replies.append(reply)
        return [r.text for r in replies if r.type == "message" and r.text]

    def audited(self) -> list[tuple[str, str]]:
        """(tool, approval) of each audited call: run, or rejected."""
        entries = [json.loads(line) for line in lines(self.audit)]
        return [(e["tool"], e["approval"]) for e in entries]


@pytest.fixture
async def bot(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ToolBot]:
    """The root dialog with the tool stage (parametrized False: without it, the chat alone)."""
    wired = getattr(request, "param", True)
    notes = tmp_path / "notes"
    audit = tmp_path / "audit.jsonl"
    runner = make_runner([stdio_config(notes)], audit)
    runner.servers.start()
    try:
        await wait_up(runner, "test")
        storage = MemoryStorage()
        state = ConversationState(storage)
        memory = ConversationMemory(state)
        router = NamedRouter({"text": "hello"})
        stage = ToolStage(runner, router, state.create_property("ToolCallWaiting"))
        options = ChatOptions("You are a test.", 2048, GenerationParams(max_new_tokens=50))
        chat = ChatDialog(FakeChatModel(), memory, options, ChannelReplies(), tool_stage=stage)
        feedback = FeedbackDialog(UserState(storage))
        root = MainDialog(chat, feedback, memory, tool_stage=stage if wired else None)
        client = DialogTestClient("emulator", root, conversation_state=state)
        yield ToolBot(client, runner, router, notes, audit)
    finally:
        await runner.servers.close()


async def test_yes_right_after_the_question_runs_it(bot: ToolBot) -> None:
    assert (await bot.say("note hello"))[-1] == QUESTION
    assert await bot.say("yes") == ["Done. noted: hello\n\nTool: test/note"]
    assert lines(bot.notes) == ["hello"]


async def test_yes_after_another_exchange_runs_nothing(bot: ToolBot) -> None:
    await bot.say("note hello")
    assert await bot.say("want more detail?") == ["fake: want more detail?"]
    assert await bot.say("yes") == ["fake: yes"]  # answers the model, not the approval
    assert lines(bot.notes) == [] and bot.audited() == []  # still pending: its card decides


async def test_yes_after_a_command_runs_nothing(bot: ToolBot) -> None:
    await bot.say("note hello")
    await bot.say("/help")
    assert await bot.say("y") == ["fake: y"]
    assert lines(bot.notes) == []


async def test_reset_rejects_the_approval(bot: ToolBot) -> None:
    await bot.say("note hello")
    assert await bot.say("/reset") == [RESET_TEXT]
    assert await bot.say("yes") == ["fake: yes"]
    assert lines(bot.notes) == [] and bot.audited() == [("note", "rejected")]


@pytest.mark.parametrize(("between", "echoed"), [([], ["echo"]), (["/reset"], [])])
async def test_only_the_next_message_fills_a_call_waiting_for_arguments(
    bot: ToolBot, between: list[str], echoed: list[str]
) -> None:
    bot.router.arguments = {}
    assert await bot.say("echo please") == ["To repeat the text back, I need the text. What is it?"]
    for text in between:
        await bot.say(text)
    bot.router.arguments = {"text": "hello there"}
    await bot.say("hello there")
    assert [tool for tool, _ in bot.audited()] == echoed


@pytest.mark.parametrize("bot", [False], indirect=True)
async def test_the_history_alone_ends_the_question_after_another_exchange_or_reset(
    bot: ToolBot,
) -> None:
    await bot.say("note hello")
    await bot.say("tell me more")
    assert await bot.say("yes") == ["fake: yes"]
    await bot.say("note hello")
    await bot.say("/reset")
    assert await bot.say("yes") == ["fake: yes"]
    assert lines(bot.notes) == []
