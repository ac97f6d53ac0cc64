"""A conversation script as data: what the user sends and what the bot is expected to answer.

Both formats (chatdown `.chat` and `.transcript`) load into a `Script`: a list of steps, each
with the line of the file it came from, so every error and failure can name `file:line`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from botbuilder.schema import Activity

from bot.scripted.expectations import (
    AttachmentExpectation,
    TextExpectation,
    invoke_status,
    invoke_text,
    normalize,
)


@dataclass(frozen=True)
class Send:
    """An activity the user (or the channel) sends to the bot; `delay_ms` is waited first.

    With `press` (a button's title) the activity is only the sender's frame: the runner fills in
    the press of that button on the latest Adaptive Card the bot sent (press.py)."""

    line: int
    activity: Activity
    delay_ms: int = 0
    press: str | None = None


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


@dataclass(frozen=True)
class ExpectInvokeResponse:
    """The answer to an invoke (Teams' `adaptiveCard/action`): its status, and the text its body
    shows (a card's TextBlocks, or a message) where the script writes any."""

    line: int
    status: int
    text: TextExpectation

    def describe(self) -> str:
        text = f" {self.text.describe()}" if self.text.written else ""
        return f"[InvokeResponse={self.status}]{text}"

    def mismatches(self, activity: Activity) -> list[str]:
        """What differs between `activity` (an invokeResponse) and this expectation."""
        found = []
        if invoke_status(activity) != self.status:
            found.append("status")
        if self.text.written and not self.text.matches(invoke_text(activity)):
            found.append("text")
        return found


@dataclass(frozen=True)
class ExpectToolCalls:
    """The tools that ran since the previous check (or the start), in order, as `server/tool`:
    read from the script's audit log when the step is reached."""

    line: int
    tools: tuple[str, ...]

    def describe(self) -> str:
        return f"[ToolCalls={', '.join(self.tools)}]"


Expectation = ExpectMessage | ExpectTyping | ExpectActivity | ExpectInvokeResponse
Step = Send | Expectation | ExpectToolCalls


@dataclass(frozen=True)
class Script:
    """A parsed conversation: `steps` in file order; `end_line` is the file's last line."""

    path: Path
    steps: list[Step] = field(default_factory=list)
    end_line: int = 0
    mcp_config: Path | None = None  # `mcp=`: the script's MCP servers (an mcpServers file)
