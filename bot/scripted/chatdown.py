"""Chatdown `.chat` files → a `Script`.

The format is the Bot Framework tools' chatdown: header lines (`user=Joe`, `users=Joe,Sue`,
`bot=LulaBot`, `channelId=msteams`), then turns that start with `user:`, `bot:`, a user's name or
`bot->Joe:`; a turn runs until the next one, so messages can span lines. Commands in brackets:
`[Typing]`, `[Delay=ms]`, `[Attachment=path-or-url contentType]`, `[AttachmentLayout=carousel]`,
`[Suggestions=a|b]` and `[ConversationUpdate=MembersAdded=Joe,Sue]` (which may span lines).
Brackets that are not commands are text, so `bot: /[a-z]+/` is a regular expression.

User turns become activities to send; bot turns become expectations (see expectations.py).
Anything the runner cannot honour is a `ScriptError` naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationAccount,
)

from bot.scripted.attachments import AttachmentSpec
from bot.scripted.chatdown_tokens import Command, tokens
from bot.scripted.errors import ScriptError
from bot.scripted.expectations import AttachmentExpectation, TextExpectation, normalize
from bot.scripted.steps import ExpectMessage, ExpectTyping, Script, Send, Step

DEFAULT_CHANNEL = "test"
_HEADER = re.compile(r"^(bot|user|users|channelId)=(.*)$")


@dataclass
class _Pending:
    """The message being assembled from a turn's text and commands."""

    line: int
    text: str = ""
    attachments: list[tuple[int, str]] = field(default_factory=list)
    suggestions: tuple[str, ...] | None = None
    layout: str | None = None
    delay_ms: int = 0

    def empty(self) -> bool:
        return not self.text.strip() and not self.attachments and self.suggestions is None


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
        return Script(self.path, self.steps, end_line=len("\n".join(self.lines).splitlines()))

    def _read_header(self) -> int:
        """Read the header options (blank lines may separate them); return the body's index."""
        index = 0
        while index < len(self.lines):
            match = _HEADER.match(self.lines[index].strip())
            if match is None and self.lines[index].strip():
                break
            index += 1
            if match is None:
                continue
            option, value = match.group(1), match.group(2).strip()
            if not value or "=" in value:
                raise ScriptError(self.path, index, f"malformed header: write {option}=<value>")
            if option in ("user", "users"):
                for name in value.split(","):
                    self._account(name.strip())
            elif option == "bot":
                self.bot = ChannelAccount(id=value, name=value, role="bot")
            else:
                self.channel = value
        if not self.users:
            self._account("user")
        self.user = next(iter(self.users.values()))
        return index

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
        if command.name == "conversationupdate":
            self._flush(pending, is_bot)
            self.steps.append(Send(line, self._conversation_update(command, line)))
            return _Pending(line)
        if preamble:
            reason = "only [ConversationUpdate=…] may come before the first turn"
            raise ScriptError(self.path, line, reason)
        if command.name == "typing":
            self._flush(pending, is_bot)
            self.steps.append(
                ExpectTyping(line) if is_bot else Send(line, self._activity(ActivityTypes.typing))
            )
            return _Pending(line)
        if command.name == "delay":
            pending.delay_ms = self._delay(command, line)
        elif command.name == "attachment":
            if not command.value:
                raise ScriptError(self.path, line, "write [Attachment=path-or-url contentType]")
            pending.attachments.append((line, command.value))
        elif command.name == "attachmentlayout":
            if (command.value or "").lower() not in ("carousel", "list"):
                raise ScriptError(self.path, line, "[AttachmentLayout=…] is carousel or list")
            pending.layout = (command.value or "").lower()
        elif command.name == "suggestions":
            if not is_bot:
                raise ScriptError(self.path, line, "[Suggestions=…] belongs in a bot: turn")
            pending.suggestions = tuple(s.strip() for s in (command.value or "").split("|"))
        return pending

    def _flush(self, pending: _Pending, is_bot: bool) -> None:
        if pending.empty():
            return
        if is_bot:
            self.steps.append(self._expectation(pending))
            return
        activity = self._activity(ActivityTypes.message, text=normalize(pending.text) or None)
        activity.attachments = [self._attachment(ln, v) for ln, v in pending.attachments] or None
        activity.attachment_layout = pending.layout
        self.steps.append(Send(pending.line, activity, delay_ms=pending.delay_ms))

    def _expectation(self, pending: _Pending) -> ExpectMessage:
        try:
            text = TextExpectation.parse(pending.text)
        except re.error as error:
            reason = f"invalid regular expression: {error}"
            raise ScriptError(self.path, pending.line, reason) from None
        attachments = tuple(self._expected_attachment(ln, v) for ln, v in pending.attachments)
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

    def _conversation_update(self, command: Command, line: int) -> Activity:
        activity = self._activity(ActivityTypes.conversation_update)
        for part in (command.value or "").split("\n"):
            key, _, names = part.partition("=")
            key = key.strip().lower()
            members = [self._account(n.strip()) for n in names.split(",") if n.strip()]
            if key in ("membersadded", "added") and members:
                activity.members_added = [*(activity.members_added or []), *members]
            elif key in ("membersremoved", "removed") and members:
                activity.members_removed = [*(activity.members_removed or []), *members]
            elif key or names.strip():
                reason = "write [ConversationUpdate=MembersAdded=a,b] (or MembersRemoved=…)"
                raise ScriptError(self.path, line, reason)
        if not activity.members_added and not activity.members_removed:
            raise ScriptError(self.path, line, "[ConversationUpdate=…] adds or removes no one")
        return activity

    def _delay(self, command: Command, line: int) -> int:
        try:
            delay = int(command.value or "")
        except ValueError:
            delay = -1
        if delay < 0:
            raise ScriptError(self.path, line, "write [Delay=<milliseconds>], e.g. [Delay=500]")
        return delay

    def _attachment(self, line: int, value: str) -> Attachment:
        try:
            return AttachmentSpec.parse(value, self.path.parent).attachment()
        except ValueError as error:
            raise ScriptError(self.path, line, str(error)) from None

    def _expected_attachment(self, line: int, value: str) -> AttachmentExpectation:
        try:
            return AttachmentSpec.parse(value, self.path.parent).expectation()
        except ValueError as error:
            raise ScriptError(self.path, line, str(error)) from None
