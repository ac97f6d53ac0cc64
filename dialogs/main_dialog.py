"""The root dialog: routes commands, runs flows, lets `help` and `cancel` interrupt anything."""

from __future__ import annotations

from botbuilder.core import TurnContext
from botbuilder.dialogs import (
    ComponentDialog,
    DialogContext,
    DialogTurnResult,
    DialogTurnStatus,
    WaterfallDialog,
    WaterfallStepContext,
)

from dialogs.chat_dialog import ChatDialog
from dialogs.feedback_dialog import FeedbackDialog
from dialogs.files import ConversationFiles, forgot_text
from dialogs.memory.commands import MemoryCommands
from dialogs.memory.history import ConversationMemory
from dialogs.tools.commands import ToolCommands

HELP_TEXT = (
    "Here is what I understand:\n\n"
    "- just type a message to chat with me\n"
    "- /help: this list\n"
    "- /reset: forget our conversation so far\n"
    "- /feedback: tell us how I'm doing\n"
    "- /memory: what I keep about you; /forget clears it; /remember <something> adds to it\n"
    "- /forget files: forget the files you sent in this conversation\n"
    "- /tools: what I can do for you with tools, and which ask for your approval\n"
    "- help or cancel: at any time, even in the middle of /feedback"
)
RESET_TEXT = "Done: I've forgotten our conversation. What shall we talk about?"
CANCELLED_TEXT = "Cancelled."
NO_TOOLS_TEXT = "I have no tools set up here, so I can only chat and answer questions."
NOTHING_TO_CANCEL = "There is nothing to cancel."


def command_of(turn_context: TurnContext) -> str:
    """What the message asks for, lower-cased: a slash command's first word ("/help me" is
    "/help"), else the whole text ("help me write a poem" is for the model); "" for messages
    without text (e.g. card submits)."""
    text = (turn_context.activity.text or "").strip().lower()
    return text.split()[0] if text.startswith("/") else text


def _forgets_files(turn_context: TurnContext) -> bool:
    return " ".join((turn_context.activity.text or "").lower().split()) == "/forget files"


class MainDialog(ComponentDialog):
    """Routes each message: a /command, an interruption, or the chat dialog."""

    def __init__(
        self,
        chat: ChatDialog,
        feedback: FeedbackDialog,
        memory: ConversationMemory,
        memory_commands: MemoryCommands | None = None,
        files: ConversationFiles | None = None,
        tool_commands: ToolCommands | None = None,
    ) -> None:
        super().__init__(MainDialog.__name__)
        self._files = files
        self._memory = memory
        self._memory_commands = memory_commands or MemoryCommands(None)
        self._tool_commands = tool_commands
        self._chat_id = chat.id
        self._feedback_id = feedback.id
        self.add_dialog(chat)
        self.add_dialog(feedback)
        self.add_dialog(WaterfallDialog("route", [self._route]))
        self.initial_dialog_id = "route"

    async def on_continue_dialog(self, inner_dc: DialogContext) -> DialogTurnResult:
        interrupted = await self._interrupt(inner_dc)
        if interrupted is not None:
            return interrupted
        return await super().on_continue_dialog(inner_dc)

    async def _interrupt(self, inner_dc: DialogContext) -> DialogTurnResult | None:
        """`help` shows help and keeps the flow waiting; `cancel` ends every flow."""
        command = command_of(inner_dc.context)
        if command in ("help", "/help", "?"):
            await inner_dc.context.send_activity(HELP_TEXT)
            await inner_dc.reprompt_dialog()
            return DialogTurnResult(DialogTurnStatus.Waiting)
        if command in ("cancel", "/cancel", "quit", "stop"):
            await inner_dc.context.send_activity(CANCELLED_TEXT)
            return await inner_dc.cancel_all_dialogs()
        if await self._memory_commands.run(inner_dc.context, command):  # the flow goes on
            await inner_dc.reprompt_dialog()
            return DialogTurnResult(DialogTurnStatus.Waiting)
        return None

    async def _route(self, step: WaterfallStepContext) -> DialogTurnResult:
        command = command_of(step.context)
        if command in ("/help", "help", "?"):
            await step.context.send_activity(HELP_TEXT)
            return await step.end_dialog()
        if command in ("cancel", "/cancel"):
            await step.context.send_activity(NOTHING_TO_CANCEL)
            return await step.end_dialog()
        if command == "/reset":
            await self._memory.clear(step.context)
            if self._files is not None:
                await self._files.forget(step.context)
            await step.context.send_activity(RESET_TEXT)
            return await step.end_dialog()
        if command == "/feedback":
            return await step.replace_dialog(self._feedback_id)
        if self._files is not None and _forgets_files(step.context):
            await step.context.send_activity(forgot_text(await self._files.forget(step.context)))
            return await step.end_dialog()
        if await self._memory_commands.run(step.context, command):
            return await step.end_dialog()
        if self._tool_commands is not None and await self._tool_commands.run(step.context, command):
            return await step.end_dialog()
        if command == "/tools":  # no BOTLOOM_MCP_CONFIG
            await step.context.send_activity(NO_TOOLS_TEXT)
            return await step.end_dialog()
        if command.startswith("/"):
            await step.context.send_activity(f"I don't know the command {command}. Try /help.")
            return await step.end_dialog()
        return await step.replace_dialog(self._chat_id)
