"""`.transcript` files: JSON arrays of Bot Framework activities, as the Emulator saves them.

Loading turns the user's activities into steps to send and the bot's into expectations: a
message's text is matched exactly, its suggested actions, attachments and attachment layout when
it has them; typing as `[Typing]`; trace activities are skipped. Ids and timestamps are never
compared, so a recorded conversation replays however long ago it was recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationAccount
from msrest.exceptions import DeserializationError

from bot.scripted.chatdown import DEFAULT_CHANNEL
from bot.scripted.errors import ScriptError
from bot.scripted.expectations import AttachmentExpectation, TextExpectation
from bot.scripted.steps import ExpectActivity, ExpectMessage, ExpectTyping, Script, Send, Step

SKIPPED = {ActivityTypes.trace}
FROM_THE_CHANNEL = {ActivityTypes.conversation_update, ActivityTypes.installation_update}


def load_transcript(path: Path) -> Script:
    """Read the transcript at `path`; raises ScriptError (file:line) when it is malformed."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ScriptError(path, None, f"cannot read the transcript: {error}") from None
    items = _activities(text, path)
    defaults = _Defaults.infer(items, path)
    steps: list[Step] = []
    for index, (line, item) in enumerate(items, start=1):
        if item["type"] in SKIPPED:
            continue
        sender = _sender(item)
        if sender is None:
            reason = f"activity #{index}: cannot tell who sent it; give from.role (user or bot)"
            raise ScriptError(path, line, reason)
        if sender == "user":
            steps.append(Send(line, defaults.inbound(item, path, line)))
        else:
            steps.append(_expectation(item, line))
    return Script(path, steps, end_line=len(text.splitlines()))


def _activities(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The array's activities, each with the line where it starts."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ScriptError(path, error.lineno, f"invalid JSON: {error.msg}") from None
    if not isinstance(data, list):
        raise ScriptError(path, 1, "a transcript is a JSON array of activities")
    decoder, position, items = json.JSONDecoder(), text.index("[") + 1, []
    for index, item in enumerate(data, start=1):
        while text[position] in " \t\r\n,":
            position += 1
        line = text.count("\n", 0, position) + 1
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise ScriptError(path, line, f"activity #{index} is not an object with a type")
        items.append((line, item))
        _, position = decoder.raw_decode(text, position)
    return items


def _sender(item: dict[str, Any]) -> str | None:
    """ "user" for what the bot receives, "bot" for what it sends, None when unknown."""
    if item["type"] in FROM_THE_CHANNEL:
        return "user"
    role = (item.get("from") or {}).get("role")
    if role in ("user", "bot"):
        return str(role)
    role = (item.get("recipient") or {}).get("role")
    return {"bot": "user", "user": "bot"}.get(str(role))


def _expectation(item: dict[str, Any], line: int) -> ExpectMessage | ExpectTyping | ExpectActivity:
    if item["type"] == ActivityTypes.typing:
        return ExpectTyping(line)
    if item["type"] != ActivityTypes.message:
        return ExpectActivity(line, item["type"], item.get("name"))
    actions = (item.get("suggestedActions") or {}).get("actions") or []
    attachments = [
        AttachmentExpectation(
            a.get("contentType"), a.get("contentUrl"), a.get("name"), a.get("content")
        )
        for a in item.get("attachments") or []
    ]
    return ExpectMessage(
        line,
        TextExpectation.exact(item.get("text")),
        attachments=tuple(attachments) or None,
        suggestions=tuple(str(a.get("title")) for a in actions) or None,
        attachment_layout=item.get("attachmentLayout"),
    )


@dataclass(frozen=True)
class _Defaults:
    """Who the bot and the user are, for activities that leave it out (chatdown output does)."""

    bot: ChannelAccount
    user: ChannelAccount
    channel: str
    conversation: str

    @classmethod
    def infer(cls, items: list[tuple[int, dict[str, Any]]], path: Path) -> _Defaults:
        accounts: dict[str, dict[str, Any]] = {}
        for _, item in items:
            for key in ("from", "recipient"):
                account = item.get(key) or {}
                if account.get("role") in ("user", "bot"):
                    accounts.setdefault(account["role"], account)
        channel = next((i["channelId"] for _, i in items if i.get("channelId")), DEFAULT_CHANNEL)
        conversation = next(
            (i["conversation"]["id"] for _, i in items if (i.get("conversation") or {}).get("id")),
            path.stem,
        )
        bot, user = (
            ChannelAccount.deserialize(
                accounts.get(role) or {"id": role, "name": role, "role": role}
            )
            for role in ("bot", "user")
        )
        return cls(bot, user, channel, conversation)

    def inbound(self, item: dict[str, Any], path: Path, line: int) -> Activity:
        try:
            activity = Activity.deserialize(item)
        except DeserializationError as error:
            raise ScriptError(path, line, f"not a valid activity: {error}") from None
        activity.channel_id = activity.channel_id or self.channel
        activity.conversation = activity.conversation or ConversationAccount(id=self.conversation)
        activity.from_property = activity.from_property or self.user
        activity.recipient = activity.recipient or self.bot
        activity.service_url = activity.service_url or "https://botloom.test/"
        activity.id = activity.id or f"{path.stem}-{line}"
        return activity


def activity_json(activity: Activity) -> dict[str, Any]:
    """An activity as a transcript stores it (camelCase JSON), with a timestamp."""
    data: dict[str, Any] = activity.serialize()
    data.setdefault("timestamp", datetime.now(UTC).isoformat(timespec="milliseconds"))
    return data


def write_transcript(path: Path, activities: list[dict[str, Any]]) -> None:
    """Write `activities` as an Emulator-style transcript (a JSON array)."""
    path.write_text(json.dumps(activities, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
