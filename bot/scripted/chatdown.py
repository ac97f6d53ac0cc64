"""Chatdown `.chat` files → a `Script`.

The format is the Bot Framework tools' chatdown: header lines (`user=Joe`, `users=Joe,Sue`,
`bot=LulaBot`, `channelId=msteams`; botloom's `mcp=servers.json`), then turns that start with
`user:`, `bot:`, a user's name or `bot->Joe:`; a turn runs until the next one, so messages can
span lines. Commands in brackets: `[Typing]`, `[Delay=ms]`, `[Attachment=path-or-url
contentType]`, `[AttachmentLayout=carousel]`, `[Suggestions=a|b]` and
`[ConversationUpdate=MembersAdded=Joe,Sue]` (which may span lines).
Brackets that are not commands are text, so `bot: /[a-z]+/` is a regular expression.

botloom adds tools (bot/scripted/tools.py): `mcp=PATH` (relative to the script's folder) runs the
script with that mcpServers file's servers; `user: [Press=Approve]` presses the button titled
Approve on the latest Adaptive Card the bot sent (press.py); `bot: [ToolCalls=shop/lookup_order,
shop/cancel_order]` (`[ToolCalls=]`: none) states the tools that ran since the previous check, in
order; `bot: [InvokeResponse=200] text` states the answer to an invoke and the text its body shows.

User turns become activities to send; bot turns become expectations (see expectations.py).
Anything the runner cannot honour is a `ScriptError` naming the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationAccount,
)

from bot.scripted import chatdown_values as values
from bot.scripted.attachments import AttachmentSpec
from bot.scripted.chatdown_tokens import Command, tokens
from bot.scripted.chatdown_values import DEFAULT_CHANNEL
from bot.scripted.errors import ScriptError
from bot.scripted.expectations import AttachmentExpectation, TextExpectation, normalize
from bot.scripted.steps import (
    ExpectInvokeResponse,
    ExpectMessage,
    ExpectToolCalls,
    ExpectTyping,
    Script,
    Send,
    Step,
)

T = TypeVar("T")


@dataclass
class _Pending:
    """The message being assembled from a turn's text and commands."""

    line: int
    text: str = ""
    attachments: list[tuple[int, str]] = field(default_factory=list)
    suggestions: tuple[str, ...] | None = None
    layout: str | None = None
    delay_ms: int = 0
    invoke_status: int | None = None  # [InvokeResponse=200]: the text is the body's

    def empty(self) -> bool:
        stated = self.text.strip() or self.attachments
        return not stated and self.suggestions is None and self.invoke_status is None


def load_chat(path: Path) -> Script:
    """Parse the `.chat` file at `path`; raises ScriptError (file:line) when it is malformed."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ScriptError(path, None, f"cannot read the script: {error}") from None
    return parse_chat(text, path)


def parse_chat(text: str, path: Path) -> Script:
    lines = text.replace("\r\n", "\n").split("\n")
    return _Parser(path, lines).parse()


class _Parser:
    def __init__(self, path: Path, lines: list[str]) -> None:
        self.path = path
        self.lines = lines
        self.steps: list[Step] = []
        self.channel = DEFAULT_CHANNEL
        self.bot = ChannelAccount(id="bot", name="bot", role="bot")
        self.users: dict[str, ChannelAccount] = {}
        self.user: ChannelAccount | None = None  # who `user:` means: the last user who spoke
        self.conversation = ConversationAccount(id=path.stem)
        self.recipient: str | None = None  # the current bot turn's `bot->Joe:`
        self.sent = 0
        self.mcp: Path | None = None

    def parse(self) -> Script:
        start = self._read_header()
        turn = self._turn_pattern()
        speaker: str | None = None
        recipient: str | None = None
        body: list[tuple[int, str]] = []
        first = start + 1
        for number, line in enumerate(self.lines[start:], start=start + 1):
            match = turn.match(line)
            if match is None:
                body.append((number, line))
                continue
            self._turn(speaker, recipient, first, body)
            speaker, recipient, first = match.group(1), match.group(2), number
            body = [(number, line[match.end() :])]
        self._turn(speaker, recipient, first, body)
        end = len("\n".join(self.lines).splitlines())
        return Script(self.path, self.steps, end_line=end, mcp_config=self.mcp)

    def _read_header(self) -> int:
        """Read the header options; return the body's index."""
        header = values.read_header(self.path, self.lines)
        if header.bot is not None:
            self.bot = ChannelAccount(id=header.bot, name=header.bot, role="bot")
        for name in header.users:
            self._account(name)
        if not self.users:
            self._account("user")
        self.channel, self.mcp = header.channel, header.mcp
        self.user = next(iter(self.users.values()))
        return header.end

    def _turn_pattern(self) -> re.Pattern[str]:
        users = "|".join(re.escape(str(u.name)) for u in self.users.values())
        speakers = "|".join(re.escape(name) for name in (str(self.bot.name), "bot", "user"))
        return re.compile(rf"^({users}|{speakers})(?:->({users}|user))?:", re.IGNORECASE)

    def _account(self, name: str) -> ChannelAccount:
        if name.lower() in ("bot", str(self.bot.name).lower()):
            return self.bot
        if name.lower() not in self.users:
            self.users[name.lower()] = ChannelAccount(id=name, name=name, role="user")
        return self.users[name.lower()]

    # --- one turn -------------------------------------------------------------------------

    def _turn(
        self, speaker: str | None, recipient: str | None, line: int, body: list[tuple[int, str]]
    ) -> None:
        is_bot = speaker is not None and speaker.lower() in ("bot", str(self.bot.name).lower())
        if speaker is not None and not is_bot:
            if recipient is not None:
                raise ScriptError(self.path, line, "only bot lines name a recipient (bot->Joe:)")
            if speaker.lower() != "user":
                self.user = self._account(speaker)
        self.recipient = recipient
        produced = len(self.steps)
        pending = _Pending(line)
        for number, token in tokens(self.path, body):
            if isinstance(token, str):
                if token.strip() and speaker is None:
                    raise ScriptError(
                        self.path, number, "text before the first turn: start with user: or bot:"
                    )
                if token.strip() and not pending.text.strip():
                    pending.line = number
                pending.text += token
            else:
                pending = self._command(token, number, pending, is_bot, speaker is None)
        self._flush(pending, is_bot)
        if speaker is not None and len(self.steps) == produced:
            what = "the expected reply" if is_bot else "the message"
            raise ScriptError(self.path, line, f"empty {speaker}: turn; write {what} after it")

    def _command(
        self, command: Command, line: int, pending: _Pending, is_bot: bool, preamble: bool
    ) -> _Pending:
        value = command.value
        if command.name == "conversationupdate":
            self._flush(pending, is_bot)
            self.steps.append(Send(line, self._conversation_update(value, line)))
            return _Pending(line)
        if preamble:
            reason = "only [ConversationUpdate=…] may come before the first turn"
            raise ScriptError(self.path, line, reason)
        if command.name in ("typing", "press", "toolcalls", "invokeresponse"):
            self._flush(pending, is_bot)
            return self._step_command(command, line, is_bot)
        if command.name == "delay":
            pending.delay_ms = self._read(line, values.delay_ms, value)
        elif command.name == "attachment":
            if not value:
                raise ScriptError(self.path, line, "write [Attachment=path-or-url contentType]")
            pending.attachments.append((line, value))
        elif command.name == "attachmentlayout":
            pending.layout = self._read(line, values.layout, value)
        elif command.name == "suggestions":
            self._bot_only("[Suggestions=…]", line, is_bot)
            pending.suggestions = tuple(s.strip() for s in (value or "").split("|"))
        return pending

    def _step_command(self, command: Command, line: int, is_bot: bool) -> _Pending:
        """A command that is a step of its own: [Typing], [Press=Title] (a user's),
        [ToolCalls=…] and [InvokeResponse=status] (the bot's; the text after it is the body's)."""
        value = command.value
        if command.name == "typing":
            typing = ExpectTyping(line) if is_bot else Send(line, self._activity("typing"))
            self.steps.append(typing)
        elif command.name == "press":
            if is_bot:
                raise ScriptError(self.path, line, "[Press=…] belongs in a user's turn")
            title = self._read(line, values.press_title, value)
            self.steps.append(Send(line, self._activity(ActivityTypes.message), press=title))
        elif command.name == "invokeresponse":
            self._bot_only("[InvokeResponse=…]", line, is_bot)
            return _Pending(line, invoke_status=self._read(line, values.invoke_status, value))
        else:
            self._bot_only("[ToolCalls=…]", line, is_bot)
            if self.mcp is None:
                raise ScriptError(self.path, line, "[ToolCalls=…] needs an mcp= header line")
            self.steps.append(ExpectToolCalls(line, self._read(line, values.tool_calls, value)))
        return _Pending(line)

    def _bot_only(self, command: str, line: int, is_bot: bool) -> None:
        if not is_bot:
            raise ScriptError(self.path, line, f"{command} belongs in a bot: turn")

    def _read(self, line: int, read: Callable[..., T], *args: object) -> T:
        """`read(*args)`, its ValueError a ScriptError at `line`."""
        try:
            return read(*args)
        except ValueError as error:
            raise ScriptError(self.path, line, str(error)) from None

    def _flush(self, pending: _Pending, is_bot: bool) -> None:
        if pending.empty():
            return
        if is_bot:
            self.steps.append(self._expectation(pending))
            return
        activity = self._activity(ActivityTypes.message, text=normalize(pending.text) or None)
        sent = [self._read(n, self._attachment, v) for n, v in pending.attachments]
        activity.attachments = sent or None
        activity.attachment_layout = pending.layout
        self.steps.append(Send(pending.line, activity, delay_ms=pending.delay_ms))

    def _expectation(self, pending: _Pending) -> ExpectMessage | ExpectInvokeResponse:
        try:
            text = TextExpectation.parse(pending.text)
        except re.error as error:
            reason = f"invalid regular expression: {error}"
            raise ScriptError(self.path, pending.line, reason) from None
        if pending.invoke_status is not None:
            if pending.attachments or pending.suggestions is not None or pending.layout:
                reason = "[InvokeResponse=…] states a status and text only"
                raise ScriptError(self.path, pending.line, reason)
            return ExpectInvokeResponse(pending.line, pending.invoke_status, text)
        attachments = tuple(self._read(n, self._expected, v) for n, v in pending.attachments)
        recipient = self.recipient
        if recipient is not None and recipient.lower() == "user":
            recipient = str(self.user.name) if self.user else None
        return ExpectMessage(
            pending.line,
            text,
            attachments=attachments or None,
            suggestions=pending.suggestions,
            attachment_layout=pending.layout,
            recipient=recipient,
        )

    # --- activities -----------------------------------------------------------------------

    def _activity(self, activity_type: str, **fields: object) -> Activity:
        self.sent += 1
        return Activity(
            type=activity_type,
            id=f"{self.conversation.id}-{self.sent}",
            channel_id=self.channel,
            service_url="https://botloom.test/",
            from_property=self.user,
            recipient=self.bot,
            conversation=self.conversation,
            locale="en-US",
            **fields,
        )

    def _conversation_update(self, value: str | None, line: int) -> Activity:
        added, removed = self._read(line, values.members, value)
        activity = self._activity(ActivityTypes.conversation_update)
        activity.members_added = [self._account(name) for name in added] or None
        activity.members_removed = [self._account(name) for name in removed] or None
        return activity

    def _attachment(self, value: str) -> Attachment:
        return AttachmentSpec.parse(value, self.path.parent).attachment()

    def _expected(self, value: str) -> AttachmentExpectation:
        return AttachmentSpec.parse(value, self.path.parent).expectation()
