"""`botloom chat`: the same bot — dialogs, model, state — in the terminal, without HTTP."""

from __future__ import annotations

import asyncio
import getpass
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from botbuilder.core import BotAdapter, TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
    ResourceResponse,
)

from bot.app import Runtime
from bot.turns.error_handler import on_turn_error
from dialogs.memory.user_store import USER_IDENTITY_KEY

CHANNEL_ID = "console"
TYPING = "bot is typing…"


class ConsoleAdapter(BotAdapter):
    """A BotAdapter whose channel is a text stream: replies are written, typing is shown as '…'."""

    def __init__(
        self,
        output: TextIO,
        user_id: str,
        conversation_id: str,
        recorder: Callable[[Activity], None] | None = None,
    ) -> None:
        super().__init__(on_turn_error=on_turn_error)
        self._output = output
        self._recorder = recorder  # sees every activity in and out (botloom chat --record)
        self.user = ChannelAccount(id=user_id, name=user_id, role="user")
        self._bot = ChannelAccount(id="botloom", name="botloom", role="bot")
        self._conversation = ConversationAccount(id=conversation_id)
        self._typing_shown = False

    def activity(self, activity_type: str, **fields: object) -> Activity:
        return Activity(
            type=activity_type,
            id=str(uuid.uuid4()),
            channel_id=CHANNEL_ID,
            service_url="console://",
            from_property=self.user,
            recipient=self._bot,
            conversation=self._conversation,
            locale="en-US",
            **fields,
        )

    async def process(self, activity: Activity, logic: Callable[[TurnContext], Awaitable]) -> None:
        """Run a turn; the terminal's user is who they say (the OS account running botloom), so
        their memory follows them across conversations."""
        if self._recorder is not None:
            self._recorder(activity)
        context = TurnContext(self, activity)
        context.turn_state[USER_IDENTITY_KEY] = f"{CHANNEL_ID}/users/{self.user.id}"
        await self.run_pipeline(context, logic)

    async def send_activities(
        self, context: TurnContext, activities: list[Activity]
    ) -> list[ResourceResponse]:
        for activity in activities:
            if self._recorder is not None:
                self._recorder(activity)
            if activity.type == ActivityTypes.message:
                self._write_message(activity)
            elif activity.type == ActivityTypes.typing and not self._typing_shown:
                self._output.write(TYPING + "\r")
                self._typing_shown = True
            self._output.flush()
        return [ResourceResponse(id=str(uuid.uuid4())) for _ in activities]

    def _write_message(self, activity: Activity) -> None:
        if self._typing_shown:  # blank the indicator line before the reply
            self._output.write(" " * len(TYPING) + "\r")
            self._typing_shown = False
        self._output.write(f"bot> {activity.text or ''}\n")
        actions = activity.suggested_actions.actions if activity.suggested_actions else []
        if actions:
            self._output.write("     [" + " | ".join(str(a.title) for a in actions) + "]\n")

    async def update_activity(self, context: TurnContext, activity: Activity) -> ResourceResponse:
        raise NotImplementedError("the console cannot edit a sent message")

    async def delete_activity(self, context: TurnContext, reference: ConversationReference) -> None:
        raise NotImplementedError("the console cannot delete a sent message")


async def chat(
    runtime: Runtime,
    *,
    input_stream: TextIO = sys.stdin,
    output: TextIO = sys.stdout,
    recorder: Callable[[Activity], None] | None = None,
    conversation_id: str | None = None,
) -> None:
    """Talk to the bot until end of input or /quit. The conversation id is stable per OS user
    (unless `conversation_id` is given), so the history survives restarts like a channel
    conversation does. `recorder` is called with every activity in and out."""
    user_id = getpass.getuser()
    conversation_id = conversation_id or f"console-{user_id}"
    adapter = ConsoleAdapter(output, user_id, conversation_id=conversation_id, recorder=recorder)
    if not runtime.model.ready:
        output.write(f"Loading the model ({runtime.model.name})…\n")
        output.flush()
    await runtime.model.wait_ready()
    if runtime.tools is not None:  # the MCP servers: one that is down does not stop the chat
        runtime.tools.start()
        await runtime.tools.servers.wait_tried(20.0)
    await adapter.process(
        adapter.activity(ActivityTypes.conversation_update, members_added=[adapter.user]),
        runtime.bot.on_turn,
    )
    while True:
        output.write("you> ")
        output.flush()
        line = await asyncio.to_thread(input_stream.readline)
        if not line:
            output.write("\n")
            return
        text = line.strip()
        if text in ("/quit", "/exit"):
            return
        if text.startswith("/file ") or text == "/file":
            message = _file_message(adapter, text.removeprefix("/file").strip().strip("'\""))
            if message is None:
                output.write("bot> Usage: /file PATH (a file on this computer)\n")
            else:
                await adapter.process(message, runtime.bot.on_turn)
        elif text:
            await adapter.process(
                adapter.activity(ActivityTypes.message, text=text), runtime.bot.on_turn
            )


def _file_message(adapter: ConsoleAdapter, path: str) -> Activity | None:
    """`/file PATH`: a message with that local file attached (read like a channel's upload),
    or None when there is no such file."""
    file = Path(path).expanduser()
    if not path or not file.is_file():
        return None
    attachment = Attachment(content_type="", content_url=file.resolve().as_uri(), name=file.name)
    return adapter.activity(ActivityTypes.message, attachments=[attachment])
