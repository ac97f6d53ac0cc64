"""Files users attach in a conversation: what the dialogs ask of them, and the words for them.

bot/files implements `ConversationFiles` (it knows the channels' attachment shapes, fetches and
reads the files and keeps them in the bot's storage); the dialogs only see what was read, what was
refused and why, a `Retriever` over the conversation's files, and a way to forget them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from botbuilder.core import TurnContext

from dialogs.knowledge.passages import Retriever


class Refusal(enum.Enum):
    """Why a file was not read."""

    IMAGE = "image"  # no vision model
    ARCHIVE = "archive"  # zip, 7z, rar, tar...
    KIND = "kind"  # another file type no reader handles
    TOO_LARGE = "too large"  # over BOTLOOM_MAX_UPLOAD_MB
    UNREADABLE = "unreadable"  # encrypted, corrupt, no text, took too long to read
    NOT_ALLOWED = "not allowed"  # its URL is on an origin the bot may not fetch from
    UNAVAILABLE = "unavailable"  # the download failed or timed out


@dataclass(frozen=True)
class ReadFile:
    name: str
    pages: int | None  # for a PDF
    chunks: int


@dataclass(frozen=True)
class RefusedFile:
    name: str
    refusal: Refusal
    detail: str = ""  # the reader's reason, for an unreadable file


@dataclass(frozen=True)
class FilesReceived:
    read: list[ReadFile] = field(default_factory=list)
    refused: list[RefusedFile] = field(default_factory=list)


Acknowledge = Callable[[FilesReceived], str]


class ConversationFiles(Protocol):
    """The files of the turn's conversation (never another's)."""

    kinds: str  # the kinds of files read, for the user ("PDF, Word (.docx), ...")
    limit_mb: float  # the largest file read

    def attached(self, turn_context: TurnContext) -> bool:
        """Whether the turn's message carries files (not cards, nor Teams' HTML copy of the
        text)."""
        ...

    async def receive(self, turn_context: TurnContext, acknowledge: Acknowledge) -> FilesReceived:
        """Fetch, read and keep the turn's files, showing progress where the channel can, and
        then send `acknowledge(outcome)` to the user."""
        ...

    def retriever(self, turn_context: TurnContext) -> Retriever:
        """Searches the conversation's files, the same way the knowledge index is searched."""
        ...

    async def forget(self, turn_context: TurnContext) -> int:
        """Remove the conversation's files; how many there were."""
        ...


def acknowledgement(received: FilesReceived, kinds: str, limit_mb: float, *, question: bool) -> str:
    """What the user is told once the files are read: which are ready (and, without a question,
    what to do next), and why each refused one was not read."""
    lines = []
    if received.read:
        names = _names([f.name for f in received.read])
        if question:
            lines.append(f"I've read {names}.")
        else:
            lines.append(f"I've read {names}. Ask me anything about it.")
    for refused in received.refused:
        lines.append(refusal_text(refused, kinds, limit_mb))
    return "\n\n".join(lines)


def refusal_text(refused: RefusedFile, kinds: str, limit_mb: float) -> str:
    name, reads = refused.name, f"I can read {kinds} files up to {limit_mb:g} MB."
    match refused.refusal:
        case Refusal.IMAGE:
            return f"Sorry, I can't read images such as {name}: I only read text. {reads}"
        case Refusal.ARCHIVE:
            return (
                f"Sorry, I can't open archives such as {name}. Please send the files in it. {reads}"
            )
        case Refusal.TOO_LARGE:
            return f"Sorry, {name} is larger than I can read. {reads}"
        case Refusal.UNREADABLE:
            why = f" ({refused.detail})" if refused.detail else ""
            return f"Sorry, I couldn't read {name}{why}. {reads}"
        case Refusal.NOT_ALLOWED:
            return f"Sorry, I may not download {name} from where it is stored."
        case Refusal.UNAVAILABLE:
            return f"Sorry, I couldn't download {name}. Please try again."
    return f"Sorry, I can't read {name}. {reads}"


FORGOT_FILES = "Done: I've forgotten the files of this conversation."
NO_FILES = "There are no files in this conversation."


def forgot_text(count: int) -> str:
    return FORGOT_FILES if count else NO_FILES


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
