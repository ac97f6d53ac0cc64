"""The files stage of a turn's answer: files attached to the message are read into the
conversation's collection (the user is told when they are ready, or why not), and every later
question searches the conversation's files before the knowledge index, through the knowledge
stage's retrieval, grounding and citations (the citation names the file)."""

from __future__ import annotations

from botbuilder.core import TurnContext

from dialogs.answer.stages import TurnDraft
from dialogs.files import ConversationFiles, FilesReceived, acknowledgement


class FilesStage:
    """Adds the conversation's files to the places the knowledge stage searches; never answers
    by itself. `receive` is what the chat dialog runs first for a message with files."""

    def __init__(self, files: ConversationFiles) -> None:
        self._files = files

    def attached(self, turn_context: TurnContext) -> bool:
        return self._files.attached(turn_context)

    async def receive(self, turn_context: TurnContext, *, question: bool) -> FilesReceived:
        """Read the message's files; the user is told which are ready and which were not read
        (and why) as soon as they are."""
        files = self._files

        def acknowledge(received: FilesReceived) -> str:
            return acknowledgement(received, files.kinds, files.limit_mb, question=question)

        return await files.receive(turn_context, acknowledge)

    async def prepare(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        draft.sources.append(self._files.retriever(turn_context))

    async def after_reply(self, turn_context: TurnContext, draft: TurnDraft) -> None:
        return None
