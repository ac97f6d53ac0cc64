"""A reply as the dialogs hand it to the channel layer, which renders it for its channel.

Dialogs never build wire formats (streaminfo activities, schema.org entities, Markdown reference
lines). They say what the reply is (`Reply`: its text, the passages its [n] markers cite, whether
the model wrote it) and feed the model's text to a `ReplyStream`; bot/channels/replies.py streams
it where the channel streams, sends one message where it does not, and adds the AI label,
feedback buttons and citations as the channel shows them.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from botbuilder.core import TurnContext

from dialogs.knowledge.passages import Passage
from models import ModelError

INTERRUPTED_NOTE = "(Sorry, my reply was interrupted.)"


@dataclass(frozen=True)
class Reply:
    """One reply, channel-neutral. `citations` are the passages its [1]..[n] markers name, in
    marker order; `generated` marks a model's reply (the AI label and, in Teams, the feedback
    buttons)."""

    text: str
    citations: Sequence[Passage] = ()
    generated: bool = False


class StreamOutcome(enum.Enum):
    COMPLETED = "completed"  # the model finished its reply
    MODEL_FAILED = "model failed"  # the model raised a ModelError (see StreamResult.error)
    USER_STOPPED = "user stopped"  # the channel refused an update: the user pressed Stop
    TIME_LIMIT = "time limit"  # the stream reached the channel's time limit
    STREAM_ENDED = "stream ended"  # the channel ended the stream (another 403 or 4xx)
    SEND_FAILED = "send failed"  # an update could not be delivered (a 5xx)


@dataclass(frozen=True)
class StreamResult:
    text: str  # what the user was shown, or will be shown, of the model's text (unstripped)
    outcome: StreamOutcome
    error: ModelError | None = None


class ReplyStream(Protocol):
    """One reply in the making: `pump` runs the model into it, `finish` sends the final reply."""

    async def pump(self, open_pieces: Callable[[], AsyncIterator[str]]) -> StreamResult:
        """Run the model (`open_pieces()` starts it) until it ends or the channel stops the
        reply; exceptions other than ModelError propagate."""
        ...

    async def finish(self, reply: Reply) -> None:
        """Send the final reply (once; later calls do nothing)."""
        ...


class ReplyChannel(Protocol):
    """How the turn's channel shows replies (bot/channels/replies.py implements it)."""

    def open(
        self, turn_context: TurnContext, *, show_text: bool = True, informative: str | None = None
    ) -> AbstractAsyncContextManager[ReplyStream]:
        """A reply for this turn; `show_text` False streams no text before the final reply (a
        reply checked, and perhaps replaced, once complete); `informative` replaces the
        channel's "Thinking…" update. Leaving the block without `finish` still closes a stream
        the channel opened."""
        ...

    async def send(self, turn_context: TurnContext, reply: Reply) -> None:
        """Send a complete reply in one go."""
        ...


def with_note(text: str, note: str) -> str:
    """What was produced, then a short note on its own paragraph (the note alone if nothing was)."""
    text = text.strip()
    return f"{text}\n\n{note}" if text else note
