"""A conversation script as data: what the user sends and what the bot is expected to answer.

Both formats (chatdown `.chat` and `.transcript`) load into a `Script`: a list of steps, each
with the line of the file it came from, so every error and failure can name `file:line`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from botbuilder.schema import Activity

from bot.scripted.expectations import AttachmentExpectation, TextExpectation, normalize


@dataclass(frozen=True)
class Send:
    """An activity the user (or the channel) sends to the bot; `delay_ms` is waited first."""

    line: int
    activity: Activity
    delay_ms: int = 0


@dataclass(frozen=True)
class ExpectMessage:
    """The bot's next message. Text is always checked; the other fields only when not None."""

    line: int
    text: TextExpectation
    attachments: tuple[AttachmentExpectation, ...] | None = None
    suggestions: tuple[str, ...] | None = None
    attachment_layout: str | None = None
    recipient: str | None = None

    def describe(self) -> str:
        """The expectation as the script states it."""
        parts = [self.text.describe()] if self.text.written else []
        parts += [a.describe() for a in self.attachments or ()]
        if self.attachment_layout is not None:
            parts.append(f"[AttachmentLayout={self.attachment_layout}]")
        if self.suggestions is not None:
            parts.append("[Suggestions=" + "|".join(self.suggestions) + "]")
        if self.recipient is not None:
            parts.append(f"(to {self.recipient})")
        return "\n".join(parts) or "(an empty message)"

    def mismatches(self, activity: Activity) -> list[str]:
        """What differs between `activity` (a message) and this expectation; empty if it matches."""
        found = []
        if not self.text.matches(activity.text):
            found.append("text")
        if self.attachments is not None:
            sent = activity.attachments or []
            if len(sent) != len(self.attachments) or not all(
                want.matches(got) for want, got in zip(self.attachments, sent, strict=False)
            ):
                found.append("attachments")
        if self.attachment_layout is not None and (
            normalize(activity.attachment_layout).lower() != self.attachment_layout.lower()
        ):
            found.append("attachment layout")
        if self.suggestions is not None:
            actions = activity.suggested_actions.actions if activity.suggested_actions else []
            if tuple(str(a.title) for a in actions) != self.suggestions:
                found.append("suggested actions")
        if self.recipient is not None:
            to = activity.recipient
            if to is None or self.recipient.lower() not in {
                str(to.id).lower(),
                str(to.name).lower(),
            }:
                found.append("recipient")
        return found


@dataclass(frozen=True)
class ExpectTyping:
    """One or more typing activities from the bot (the indicator repeats while a reply is slow)."""

    line: int


@dataclass(frozen=True)
class ExpectActivity:
    """Another kind of activity from the bot (an event, endOfConversation…): type and name."""

    line: int
    type: str
    name: str | None = None


Expectation = ExpectMessage | ExpectTyping | ExpectActivity
Step = Send | Expectation


@dataclass(frozen=True)
class Script:
    """A parsed conversation: `steps` in file order; `end_line` is the file's last line."""

    path: Path
    steps: list[Step] = field(default_factory=list)
    end_line: int = 0
