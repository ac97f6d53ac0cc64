"""How a streamed reply ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from models import ModelError

INTERRUPTED_NOTE = "(Sorry, my reply was interrupted.)"


class StreamOutcome(enum.Enum):
    COMPLETED = "completed"  # the model finished its reply
    MODEL_FAILED = "model failed"  # the model raised a ModelError (see StreamResult.error)
    USER_STOPPED = "user stopped"  # the channel refused an update: the user pressed Stop
    TIME_LIMIT = "time limit"  # the stream reached the channel's time limit
    STREAM_ENDED = "stream ended"  # the channel ended the stream (another 403 or 4xx)
    SEND_FAILED = "send failed"  # an update could not be delivered (a 5xx)


@dataclass(frozen=True)
class StreamResult:
    text: str  # everything the model produced, unstripped
    outcome: StreamOutcome
    error: ModelError | None = None


def with_note(text: str, note: str) -> str:
    """What was produced, then a short note on its own paragraph (the note alone if nothing was)."""
    text = text.strip()
    return f"{text}\n\n{note}" if text else note
