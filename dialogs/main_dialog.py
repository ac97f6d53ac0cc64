"""The root dialog: routes commands, runs flows, lets `help`, `cancel`, `/reset`, `/forget files`
and the memory commands interrupt anything."""

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

from dialogs.answer.tool_stage import ToolStage
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
        tool_stage: ToolStage | None = None,
    ) -> None:
        super().__init__(MainDialog.__name__)
        self._tool_stage = tool_stage  # its open question ends on any turn not for the chat
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
        if self._tool_stage is not None:  # a flow's turn answers the flow, not the tool's question
            await self._tool_stage.forget(inner_dc.context)
        interrupted = await self._interrupt(inner_dc)
        if interrupted is not None:
            return interrupted
        return await super().on_continue_dialog(inner_dc)

    async def _interrupt(self, inner_dc: DialogContext) -> DialogTurnResult | None:
        """`help` shows help and keeps the flow waiting; `cancel` ends every flow, `/reset` too
        (after forgetting the conversation); `/forget files` and the memory commands run as
        outside a flow and the flow goes on."""
        context = inner_dc.context
        command = command_of(context)
        if command in ("help", "/help", "?"):
            await context.send_activity(HELP_TEXT)
            await inner_dc.reprompt_dialog()
            return DialogTurnResult(DialogTurnStatus.Waiting)
        if command in ("cancel", "/cancel", "quit", "stop"):
            await context.send_activity(CANCELLED_TEXT)
            return await inner_dc.cancel_all_dialogs()
        if command == "/reset":
            await self._reset(context)
            return await inner_dc.cancel_all_dialogs()
        if await self._forget_or_remember(context, command):  # the flow goes on
            await inner_dc.reprompt_dialog()
            return DialogTurnResult(DialogTurnStatus.Waiting)
        return None

    async def _reset(self, context: TurnContext) -> None:
        """Forget the conversation: its history, files and the tool question or approval."""
        await self._memory.clear(context)
        if self._files is not None:
            await self._files.forget(context)
        if self._tool_stage is not None:
            await self._tool_stage.forget(context, reject=True)
        await context.send_activity(RESET_TEXT)

    async def _forget_or_remember(self, context: TurnContext, command: str) -> bool:
        """`/forget files` or a memory command, answered; False for any other message."""
        if self._files is not None and _forgets_files(context):
            await context.send_activity(forgot_text(await self._files.forget(context)))
            return True
        return await self._memory_commands.run(context, command)

    async def _route(self, step: WaterfallStepContext) -> DialogTurnResult:
        context = step.context
        command = command_of(context)
        for_chat = command != "/feedback" and not await self._command(context, command)
        if self._tool_stage is not None and not (for_chat and command):
            await self._tool_stage.forget(context)  # this turn does not answer the tools' question
        if command == "/feedback":
            return await step.replace_dialog(self._feedback_id)
        if for_chat:
            return await step.replace_dialog(self._chat_id)
        return await step.end_dialog()

    async def _command(self, context: TurnContext, command: str) -> bool:
        """Answer a command (help, cancel, /reset, /memory, ... and unknown /commands); False
        for a message for the chat."""
        if command in ("/help", "help", "?"):
            await context.send_activity(HELP_TEXT)
            return True
        if command in ("cancel", "/cancel"):
            await context.send_activity(NOTHING_TO_CANCEL)
            return True
        if command == "/reset":
            await self._reset(context)
            return True
        if await self._forget_or_remember(context, command):
            return True
        if self._tool_commands is not None and await self._tool_commands.run(context, command):
            return True
        if command.startswith("/"):
            unknown = f"I don't know the command {command}. Try /help."
            await context.send_activity(NO_TOOLS_TEXT if command == "/tools" else unknown)
            return True
        return False
